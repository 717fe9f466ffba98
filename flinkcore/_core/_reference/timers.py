"""Pure-Python reference of ``flinkcore._core.timers``: heapq plus a dict, with lazy deletion."""

from __future__ import annotations

import heapq
import itertools


class TimerQueue:
    """Same contract as the native TimerQueue (see flinkcore._core.timers)."""

    def __init__(self) -> None:
        self._heap: list[tuple[int, int, tuple]] = []
        self._live: dict[tuple, int] = {}  # entry -> seq of its live heap item
        self._seq = itertools.count()

    @staticmethod
    def _check(ts: int) -> int:
        if not -(2**63) <= ts < 2**63:
            raise OverflowError(f"timer timestamp {ts} is outside int64")
        return int(ts)

    def register(self, ts: int, key: object, namespace: object = None) -> bool:
        entry = (self._check(ts), key, namespace)
        if entry in self._live:
            return False
        seq = next(self._seq)
        self._live[entry] = seq
        heapq.heappush(self._heap, (entry[0], seq, entry))
        return True

    def register_many(self, timestamps, keys, namespaces=None) -> int:
        ts = [int(t) for t in timestamps]
        if len(keys) != len(ts):
            raise ValueError(f"register_many got {len(ts)} timestamps but {len(keys)} keys")
        per_record = isinstance(namespaces, (list, tuple)) or hasattr(namespaces, "tolist")
        if per_record and len(namespaces) != len(ts):
            raise ValueError(f"register_many got {len(ts)} timestamps but {len(namespaces)} namespaces")
        nss = list(namespaces) if per_record else [namespaces] * len(ts)
        return sum(self.register(t, k, n) for t, k, n in zip(ts, keys, nss, strict=False))

    def delete(self, ts: int, key: object, namespace: object = None) -> bool:
        return self._live.pop((self._check(ts), key, namespace), None) is not None

    def _drop_stale(self) -> None:
        while self._heap and self._live.get(self._heap[0][2]) != self._heap[0][1]:
            heapq.heappop(self._heap)

    def pop_until(self, watermark: int):
        self._drop_stale()
        if not self._heap or self._heap[0][0] > self._check(watermark):
            return None
        _, _, entry = heapq.heappop(self._heap)
        del self._live[entry]
        return entry

    def advance(self, watermark: int) -> list:
        out = []
        while (entry := self.pop_until(watermark)) is not None:
            out.append(entry)
        return out

    def pop_batch(self, watermark: int) -> list:
        first = self.peek()
        if first is None or first > self._check(watermark):
            return []
        return self.advance(first)

    def peek(self):
        self._drop_stale()
        return self._heap[0][0] if self._heap else None

    def __len__(self) -> int:
        return len(self._live)

    def __contains__(self, entry) -> bool:
        return entry in self._live

    def snapshot(self) -> list:
        return [entry for entry, _ in sorted(self._live.items(), key=lambda kv: (kv[0][0], kv[1]))]

    def restore(self, timers) -> None:
        self.clear()
        for ts, key, namespace in timers:
            self.register(ts, key, namespace)

    def clear(self) -> None:
        self._heap.clear()
        self._live.clear()
