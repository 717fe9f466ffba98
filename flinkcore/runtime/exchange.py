"""Data exchange between tasks: partitioners (writers) and input gates (readers).

A writer splits a micro-batch over the downstream channels as its partitioner says and
broadcasts watermarks, watermark status and end of input to every channel. An
:class:`InputGate` merges the channels of one operator input: the watermark it forwards is the
minimum over channels that are active (idle channels are left out; a channel that becomes active
again counts once it caught up — Flink's StatusWatermarkValve), and end of input is forwarded
when every channel ended. In one process channels are direct calls; a multi-process executor
puts serialization behind the same :class:`~flinkcore.runtime.operators.base.Input` calls.
"""

from __future__ import annotations

import random
from typing import Any

from flinkcore._core import partitioner as _partitioner
from flinkcore.common.watermark import MIN_WATERMARK
from flinkcore.runtime.operators.base import Input, UserCodeError
from flinkcore.state.key_groups import stable_hash

__all__ = ["InputGate", "make_writer"]


class _Channel(Input):
    def __init__(self, gate: InputGate, index: int) -> None:
        self.gate = gate
        self.index = index

    def bind(self) -> None:
        self.process_batch = self.gate.target.process_batch  # type: ignore[method-assign]

    def process_batch(self, values: list, timestamps: list | None) -> None:  # replaced by bind()
        self.gate.target.process_batch(values, timestamps)

    def process_watermark(self, watermark: int) -> None:
        self.gate.on_watermark(self.index, watermark)

    def process_watermark_status(self, idle: bool) -> None:
        self.gate.on_status(self.index, idle)

    def end_input(self) -> None:
        self.gate.on_end(self.index)


class InputGate:
    """Merges ``n`` channels into one operator input."""

    def __init__(self, target: Input, n: int) -> None:
        self.target = target
        self.watermarks = [MIN_WATERMARK] * n
        self.idle = [False] * n
        self.aligned = [True] * n
        self.ended = [False] * n
        self.last = MIN_WATERMARK
        self.all_idle = False
        self.channels = [_Channel(self, i) for i in range(n)]

    def bind(self) -> None:
        """Records go straight to the operator input (after the operator opened)."""
        for c in self.channels:
            c.bind()

    def _advance(self) -> None:
        active = [
            w for w, idle, al in zip(self.watermarks, self.idle, self.aligned, strict=True) if not idle and al
        ]
        if active:
            m = min(active)
            if m > self.last:
                self.last = m
                self.target.process_watermark(m)

    def on_watermark(self, i: int, wm: int) -> None:
        if wm <= self.watermarks[i]:
            return
        self.watermarks[i] = wm
        if not self.aligned[i] and wm >= self.last:
            self.aligned[i] = True
        if not self.idle[i]:
            self._advance()

    def on_status(self, i: int, idle: bool) -> None:
        if idle == self.idle[i]:
            return
        self.idle[i] = idle
        if not idle:
            self.aligned[i] = self.watermarks[i] >= self.last
        all_idle = all(self.idle)
        if all_idle != self.all_idle:
            self.all_idle = all_idle
            self.target.process_watermark_status(all_idle)
        if idle:
            self._advance()

    def on_end(self, i: int) -> None:
        self.ended[i] = True
        if all(self.ended):
            self.target.end_input()


class _Broadcasting(Input):
    """Base of writers over several channels: in-band events go to every channel."""

    def __init__(self, channels: list[Input]) -> None:
        self.channels = channels
        self.n = len(channels)

    def process_watermark(self, watermark: int) -> None:
        for c in self.channels:
            c.process_watermark(watermark)

    def process_watermark_status(self, idle: bool) -> None:
        for c in self.channels:
            c.process_watermark_status(idle)

    def end_input(self) -> None:
        for c in self.channels:
            c.end_input()

    def _scatter(self, values: list, timestamps: list | None, idx: list[int]) -> None:
        n = self.n
        vb: list[list] = [[] for _ in range(n)]
        tb: list[list] = [[] for _ in range(n)]
        if timestamps is None:
            for v, i in zip(values, idx, strict=True):
                vb[i].append(v)
        else:
            for v, t, i in zip(values, timestamps, idx, strict=True):
                vb[i].append(v)
                tb[i].append(t)
        for c, vs, ts in zip(self.channels, vb, tb, strict=True):
            if vs:
                c.process_batch(vs, None if timestamps is None else ts)


class _FanOut(_Broadcasting):
    def process_batch(self, values: list, timestamps: list | None) -> None:
        for c in self.channels:
            c.process_batch(values, timestamps)


class _RoundRobin(_Broadcasting):
    def __init__(self, channels: list[Input], start: int = 0) -> None:
        super().__init__(channels)
        self.next = start % self.n

    def process_batch(self, values: list, timestamps: list | None) -> None:
        n, nxt = self.n, self.next
        for c, ch in enumerate(self.channels):
            off = (c - nxt) % n
            vs = values[off::n]
            if vs:
                ch.process_batch(vs, None if timestamps is None else timestamps[off::n])
        self.next = (nxt + len(values)) % n


class _Shuffle(_Broadcasting):
    def process_batch(self, values: list, timestamps: list | None) -> None:
        n = self.n
        self._scatter(values, timestamps, [random.randrange(n) for _ in values])


class _Global(_Broadcasting):
    def process_batch(self, values: list, timestamps: list | None) -> None:
        self.channels[0].process_batch(values, timestamps)


class _Hash(_Broadcasting):
    """By key group: ``murmur(stable_hash(key)) % max_parallelism``, contiguous ranges."""

    def __init__(self, channels: list[Input], key_selector: Any, max_parallelism: int, name: str) -> None:
        super().__init__(channels)
        self.key_selector = key_selector
        self.max_parallelism = max_parallelism
        self.name = name

    def process_batch(self, values: list, timestamps: list | None) -> None:
        ks, mp, n = self.key_selector, self.max_parallelism, self.n
        kg, op_index = _partitioner.key_group_for_hash, _partitioner.operator_index
        v = None
        try:
            idx = [op_index(kg(stable_hash(ks(v)), mp), mp, n) for v in values]
        except Exception as e:
            raise UserCodeError(self.name, v, e, where="record (key selector)") from e
        self._scatter(values, timestamps, idx)


class _Custom(_Broadcasting):
    def __init__(self, channels: list[Input], key_selector: Any, fn: Any, name: str) -> None:
        super().__init__(channels)
        self.key_selector = key_selector
        self.fn = fn
        self.name = name

    def process_batch(self, values: list, timestamps: list | None) -> None:
        ks, fn, n = self.key_selector, self.fn, self.n
        idx = []
        v = None
        try:
            for v in values:
                i = fn(ks(v), n)
                if not 0 <= i < n:
                    raise ValueError(f"the custom partitioner returned {i}, not in [0, {n})")
                idx.append(i)
        except Exception as e:
            raise UserCodeError(self.name, v, e, where="record (custom partitioner)") from e
        self._scatter(values, timestamps, idx)


def make_writer(
    partitioner: Any, channels: list[Input], subtask_index: int, max_parallelism: int, name: str
) -> Input:
    """The writer of one upstream instance over its downstream ``channels`` (in instance order)."""
    kind = partitioner.kind
    if kind == "broadcast":
        return channels[0] if len(channels) == 1 else _FanOut(channels)
    if len(channels) == 1:
        return channels[0]
    if kind in ("rebalance", "rescale"):
        return _RoundRobin(channels, subtask_index)
    if kind == "shuffle":
        return _Shuffle(channels)
    if kind == "global":
        return _Global(channels)
    if kind == "hash":
        return _Hash(channels, partitioner.key_selector, max_parallelism, name)
    if kind == "custom":
        return _Custom(channels, partitioner.key_selector, partitioner.fn, name)
    raise ValueError(f"partitioner {kind!r} cannot connect {len(channels)} channels")


def connected_targets(kind: str, upstream_index: int, p_up: int, p_down: int) -> list[int]:
    """Downstream instances one upstream instance sends to."""
    if kind == "forward":
        return [upstream_index]
    if kind == "global":
        return [0]
    if kind == "rescale":
        if p_down >= p_up:
            per = p_down // p_up
            extra = p_down % p_up
            start = upstream_index * per + min(upstream_index, extra)
            return list(range(start, start + per + (1 if upstream_index < extra else 0)))
        return [upstream_index * p_down // p_up]
    return list(range(p_down))
