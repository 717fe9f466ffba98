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

import operator
import random
from typing import Any

import numpy as np

from flinkcore._core import partitioner as _partitioner
from flinkcore.common.watermark import MIN_WATERMARK
from flinkcore.runtime.key_selectors import fast_key_selector
from flinkcore.runtime.operators.arrow import SchemaMemo, fixed_width, record_kind
from flinkcore.runtime.operators.base import Input, UserCodeError

try:
    from flinkcore._core.window_udf import MessageKey as _MessageKey
except ImportError:  # pragma: no cover - without the compiled window loops no MessageKey exists
    _MessageKey = None

__all__ = ["GateChannel", "InputGate", "make_writer"]


class GateChannel(Input):
    """One channel into an :class:`InputGate` (``index`` is its place there)."""

    def __init__(self, gate: InputGate, index: int) -> None:
        self.gate = gate
        self.index = index

    def bind(self) -> None:
        self.process_batch = self.gate.target.process_batch  # type: ignore[method-assign]

    @property
    def accepts_columnar(self) -> bool:  # type: ignore[override]
        """As the gate's operator input (after :meth:`InputGate.accept_columnar`: always)."""
        return bool(getattr(self.gate.target, "accepts_columnar", False))

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
        self.channels = [GateChannel(self, i) for i in range(n)]
        #: records that channels marked by :meth:`count_local` delivered since the multi-process
        #: exchange last read (and reset) it: it paces the gate's remote channels by them
        self.local_records = 0

    def accept_columnar(self) -> None:
        """Let columnar batches through to the operator input: as they are where it takes them,
        else as Rows (call after the operator opened, before :meth:`bind`)."""
        from flinkcore.runtime.columnar import columnar_input

        self.target = columnar_input(self.target)

    def bind(self) -> None:
        """Records go straight to the operator input (after the operator opened)."""
        for c in self.channels:
            c.bind()

    def count_local(self, i: int) -> None:
        """Add the records of channel ``i`` to :attr:`local_records` (after :meth:`bind`)."""
        process = self.channels[i].process_batch

        def process_batch(values: Any, timestamps: Any) -> None:
            self.local_records += len(values)
            process(values, timestamps)

        self.channels[i].process_batch = process_batch  # type: ignore[method-assign]

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

    def adapt_columnar(self, adapt: Any) -> Input:
        """For :func:`flinkcore.runtime.columnar.columnar_input`: this writer splits lists of
        records only, so it gets columnar batches as Rows."""
        from flinkcore.runtime.columnar import RowsInput

        return RowsInput(self)

    def _adapt_channels(self, adapt: Any) -> Input:
        """A writer that passes columnar batches on: its channels take them (as they are, or as
        Rows at the channel)."""
        self.channels = [adapt(c) for c in self.channels]
        return self

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
    adapt_columnar = _Broadcasting._adapt_channels

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
    adapt_columnar = _Broadcasting._adapt_channels

    def process_batch(self, values: list, timestamps: list | None) -> None:
        self.channels[0].process_batch(values, timestamps)


def _key_items(key_of: Any) -> tuple[int, int]:
    """``(tuple_index, list_index)``: the item of an exact tuple and of an exact list that the key
    selector ``key_of`` returns for them (``itemgetter(i)``: ``i`` of both; the two-phase
    exchange's ``MessageKey``: a list's first item, a tuple's ``key_index``), -1 where it must be
    called. :func:`flinkcore._core.partitioner.split_records` reads those items itself."""
    if type(key_of) is operator.itemgetter:
        args = key_of.__reduce__()[1]
        if len(args) == 1 and type(args[0]) is int and args[0] >= 0:
            return args[0], args[0]
    elif _MessageKey is not None and type(key_of) is _MessageKey:
        return max(key_of.key_index, -1), 0
    return -1, -1


#: what _Hash._columnar returns for a batch it did not split
_NOT_SPLIT = object()

#: Arrow integer types whose values are all exact as int64 (uint64 may not be: read as Python ints)
_INT64_EXACT = frozenset(("int8", "int16", "int32", "int64", "uint8", "uint16", "uint32"))


class _Hash(_Broadcasting):
    """By key group: ``murmur(stable_hash(key)) % max_parallelism``, contiguous ranges.

    Whole batches at once: the keys in one C-level ``map`` (a ``lambda v: v[c]`` selector runs as
    ``itemgetter``), then one native pass that hashes each key and appends the record to its
    channel's list; an Arrow record batch keyed by a column is split by a native scatter of its
    rows to their channels (:func:`_scatter_rows`). Each record goes where the per-record rule
    (:func:`flinkcore.state.key_groups.operator_index_of`) sends it."""

    def __init__(self, channels: list[Input], key_selector: Any, max_parallelism: int, name: str) -> None:
        super().__init__(channels)
        self.key_selector = key_selector
        self.key_of = fast_key_selector(key_selector)
        #: the item of an exact tuple and of an exact list that ``key_of`` returns (-1: none), read
        #: in C by the split (see :func:`_key_items`)
        self._key_items = _key_items(self.key_of)
        self.max_parallelism = max_parallelism
        self.name = name
        #: the column an Arrow batch is keyed by (``key_by("field")`` or ``key_by(index)``), else
        #: None (any other selector, a lambda too, sees the batch's records as Rows)
        self.field: str | int | None = None
        if isinstance(key_selector, operator.itemgetter):
            args = key_selector.__reduce__()[1]
            if len(args) == 1 and isinstance(args[0], (str, int)) and not isinstance(args[0], bool):
                self.field = args[0]

    adapt_columnar = _Broadcasting._adapt_channels

    #: ``process_batch`` returns the largest timestamp of an Arrow batch it split by a column (read
    #: right after the split read the timestamps, from the cache), else None: a
    #: timestamps-and-watermarks operator right before takes it for its generator instead of a pass
    #: of its own over the batch's timestamps, as before a columnar window (see
    #: TimestampsAndWatermarksOperator._batch_max_target)
    reports_batch_max_ts = True

    def _keys(self, values: list) -> list:
        """The key of every record; a failing key selector names its record."""
        try:
            return list(map(self.key_of, values))
        except Exception:
            pass
        ks = self.key_selector
        for v in values:
            try:
                ks(v)
            except Exception as e:
                raise UserCodeError(self.name, v, e, where="record (key selector)") from e
        return [ks(v) for v in values]

    def process_batch(self, values: Any, timestamps: Any) -> int | None:
        if type(values) is not list:
            hi = self._columnar(values, timestamps)
            if hi is not _NOT_SPLIT:
                return hi
            from flinkcore.runtime.columnar import rows_of, timestamps_list

            values, timestamps = rows_of(values), timestamps_list(timestamps)
        if not values:
            return None
        try:
            parts = _partitioner.split_records(
                values, timestamps, self.key_of, *self._key_items, self.max_parallelism, self.n
            )
        except Exception:  # a failing key selector or an unhashable key: name the record below
            parts = self._split_naming_failures(values, timestamps)
        for channel, part in zip(self.channels, parts, strict=True):
            if part is not None:
                channel.process_batch(*part)
        return None

    def _split_naming_failures(self, values: list, timestamps: Any) -> list:
        """The split of :meth:`process_batch` in two steps (keys, then their channels), so that
        a key selector that fails, or a key that cannot be hashed, names its record."""
        keys = self._keys(values)
        try:
            return _partitioner.split_by_key(values, timestamps, keys, self.max_parallelism, self.n)
        except Exception as e:  # an unhashable key: name the record
            for v, k in zip(values, keys, strict=True):
                try:
                    _partitioner.key_group(k, self.max_parallelism)
                except Exception:
                    raise UserCodeError(self.name, v, e, where="record (key selector)") from e
            raise

    def _columnar(self, values: Any, timestamps: Any) -> Any:
        """An Arrow batch keyed by one of its columns: its rows moved to their channels by a native
        scatter (no per-row Python); returns the batch's largest timestamp (None without any),
        _NOT_SPLIT when it is not keyed by a column without nulls (nothing was sent)."""
        field = self.field
        if field is None or not hasattr(values, "schema"):
            return _NOT_SPLIT
        kind = record_kind(values)
        # the column must be what the selector reads from each record: a named field of Rows,
        # a position of Rows or tuples (never a field of a scalar batch)
        if kind == b"scalar" or (kind == b"tuple" and not isinstance(field, int)):
            return _NOT_SPLIT
        if isinstance(field, int) and not -values.num_columns <= field < values.num_columns:
            return _NOT_SPLIT
        try:
            col = values.column(field)
        except (KeyError, TypeError, IndexError):
            return _NOT_SPLIT
        if col.null_count:
            return _NOT_SPLIT
        if not len(col):
            return None
        n = self.n
        ts = None if timestamps is None else np.asarray(timestamps, dtype=np.int64)
        parts = None
        if str(col.type) in _INT64_EXACT:
            keys = col.to_numpy().astype(np.int64, copy=False)
            parts = self._dense_split(values, ts, keys)
        else:
            keys = col.to_pylist()
        if parts is None:  # by key group: each row's channel as its "key" into a table of the channels
            groups = _partitioner.key_groups(keys, self.max_parallelism).astype(np.int64)
            channels = groups * n // self.max_parallelism
            identity = getattr(self, "_identity", None)
            if identity is None:
                identity = self._identity = np.arange(n, dtype=np.uint16)
            parts = _scatter_rows(values, ts, channels, identity, n)
        # before the channels take their parts: the split just read the timestamps
        hi = int(ts.max()) if ts is not None and len(ts) else None
        for channel, part in zip(self.channels, parts, strict=True):
            if part is not None:
                channel.process_batch(*part)
        return hi

    #: keys below this (and >= 0) take their channel from a table indexed by the key
    _DENSE_KEYS = 1 << 22
    #: the channel of each small non-negative int key (``table[key]``), grown as keys come (8 keys
    #: at a time)
    _key_channels: np.ndarray | None = None
    #: for 2 channels, the same table as one bit per key (100k keys in 12.5 kB: the cache keeps it
    #: between batches, where the next operator's state evicts the uint16 table)
    _key_bits: np.ndarray | None = None
    #: the last batch had a key outside [0, _DENSE_KEYS): the next checks its keys' range first
    _keys_beyond = False

    def _dense_split(self, values: Any, ts: np.ndarray | None, keys: np.ndarray) -> list | None:
        """:func:`_scatter_rows` with each key's channel from a table indexed by the key (the same
        rule, computed once per key: murmur and the range division cost more than the lookup),
        for small non-negative int keys; None otherwise (then nothing was sent)."""
        if self.n >= 1 << 16:
            return None
        if self._key_channels is not None and not self._keys_beyond:
            parts = self._scatter_by_table(values, ts, keys)
            if parts is not None:
                return parts
        lo, hi = int(keys.min()), int(keys.max())
        self._keys_beyond = lo < 0 or hi >= self._DENSE_KEYS
        if self._keys_beyond:
            return None
        table = self._key_channels
        have = 0 if table is None else len(table)
        if table is None or hi >= have:
            size = -(-max(hi + 1, 2 * have, 1024) // 8) * 8
            fresh = np.arange(have, size, dtype=np.int64)
            groups = _partitioner.key_groups(fresh, self.max_parallelism).astype(np.int64)
            more = (groups * self.n // self.max_parallelism).astype(np.uint16)
            table = more if table is None else np.concatenate([table, more])
            self._key_channels = table
            if self.n == 2:
                self._key_bits = np.packbits(table.astype(np.uint8), bitorder="little")
        return self._scatter_by_table(values, ts, keys)

    def _scatter_by_table(self, values: Any, ts: np.ndarray | None, keys: np.ndarray) -> list | None:
        if self.n == 2:
            return _scatter_rows(values, ts, keys, self._key_bits, 2, bits=True)
        return _scatter_rows(values, ts, keys, self._key_channels, self.n)


#: bytes per value of each column of a schema (0: not fixed-width), and each column's type
_schema_widths = SchemaMemo(lambda schema: ([fixed_width(t) for t in schema.types], list(schema.types)))


def _scatter_rows(
    values: Any, ts: np.ndarray | None, keys: np.ndarray, table: np.ndarray, n: int, bits: bool = False
) -> list | None:
    """Each channel's rows of an Arrow batch (and their timestamps), in arrival order: row i goes
    to channel ``table[keys[i]]`` (with ``bits``: bit ``keys[i]`` of ``table``, see
    :func:`flinkcore._core.partitioner.scatter_columns`). Per channel, a list entry ``(batch,
    timestamps)``, or None for a channel that gets no row; None when a key is beyond the table.

    Fixed-width columns without nulls are moved by the native scatter in one pass over the rows
    (per up to 4 columns of one item size), each channel's columns written into one buffer of
    Arrow's pool with room for every row (no counting pass; Arrow reads them where they are
    written); other columns by Arrow's take of each channel's row numbers. A batch whose rows all
    go to one channel goes there as it is."""
    import pyarrow as pa

    schema = values.schema
    widths, types = _schema_widths(schema)
    columns = values.columns
    rows = values.num_rows
    moving = []  # index of each moved column
    arrays = []  # its values, as a numpy view
    addresses = []  # where they are
    others = []
    for i, (c, w) in enumerate(zip(columns, widths, strict=True)):
        if w and not c.null_count:
            data = c.buffers()[1]
            moving.append(i)
            arrays.append(np.frombuffer(data, dtype=_UINT[w], count=rows, offset=c.offset * w))
            addresses.append(data.address + c.offset * w if w == 8 else -1)
        else:
            others.append(i)
    ts_at = -1  # the moved array that holds the timestamps
    if ts is not None:
        if len(ts) != rows:
            raise ValueError(f"{len(ts)} timestamps for a batch of {rows} rows")
        ts_at = _same_memory(ts, addresses)
        if ts_at < 0:  # timestamps of their own (not read zero-copy from a column): move them too
            ts_at = len(arrays)
            arrays.append(ts)
    if others:
        arrays.append(np.arange(rows, dtype=np.int64))
    # each channel's buffer: every array's room for all rows, 64-byte aligned
    offsets = []
    size = 0
    for a in arrays:
        offsets.append(size)
        size += -(-a.nbytes // 64) * 64
    # buffers of Arrow's pool: it keeps freed pages for the next batch, where a numpy array of a
    # large batch is faulted in afresh
    buffers = [pa.allocate_buffer(size) for _ in range(n)]
    counts = _partitioner.scatter_columns(
        keys, table, n, arrays, [np.frombuffer(b, dtype=np.uint8) for b in buffers], offsets, bits
    )
    if counts is None:
        return None
    counts = counts.tolist()
    parts: list = [None] * n
    if max(counts) == rows:  # one channel gets everything
        parts[counts.index(rows)] = (values, ts)
        return parts
    ts_own = ts_at >= len(moving)
    for c, m in enumerate(counts):
        if not m:
            continue
        b = buffers[c]
        out = list(columns)
        for j, i in enumerate(moving):
            out[i] = pa.Array.from_buffers(types[i], m, [None, b.slice(offsets[j], m * widths[i])])
        if others:
            import pyarrow.compute as pc

            order = pa.Array.from_buffers(pa.int64(), m, [None, b.slice(offsets[-1], m * 8)])
            for i in others:
                # the indices are rows of the batch: Arrow need not check their bounds
                out[i] = pc.take(columns[i], order, boundscheck=False)
        ts_c = None
        if ts is not None:
            ts_c = np.frombuffer(b, dtype=np.int64, count=m, offset=offsets[ts_at])
            if not ts_own:  # the column's memory, as the timestamps came: read-only
                ts_c.flags.writeable = False
        parts[c] = (pa.RecordBatch.from_arrays(out, schema=schema), ts_c)
    return parts


def _same_memory(ts: np.ndarray, addresses: list[int]) -> int:
    """The index of the moved column whose values start at ``ts`` (``addresses``: where each
    one's values start, -1 for a column of other than 8-byte items): timestamps read zero-copy
    from an int64 column of the batch, moved as that column; else -1."""
    if ts.dtype != np.int64 or not ts.flags.c_contiguous or not len(ts):
        return -1
    import pyarrow as pa

    address = pa.py_buffer(ts).address
    for i, a in enumerate(addresses):
        if a == address:
            return i
    return -1


_UINT = {1: np.uint8, 2: np.uint16, 4: np.uint32, 8: np.uint64}


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
