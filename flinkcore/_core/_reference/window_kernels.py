"""Pure-Python reference of ``flinkcore._core.window_kernels`` (same semantics, dicts and lists).

Snapshots here are pickled Python state, not the native byte format: what the tests compare is
behaviour (what fires, when, with which values), and that a snapshot restores it.
"""

from __future__ import annotations

import math
import pickle

import numpy as np

AGGREGATES = ("sum", "count", "min", "max", "mean", "first", "last")
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1


def parse_aggs(aggs):
    out = []
    for spec in aggs:
        if not isinstance(spec, (tuple, list)) or len(spec) not in (2, 3):
            raise ValueError(f"an aggregate is (function, column_index[, name]), got {spec!r}")
        func, column = spec[0], spec[1]
        if func not in AGGREGATES:
            raise ValueError(f"unknown aggregate function {func!r}; one of {', '.join(AGGREGATES)}")
        if column is None and func == "count":
            column = 0
        if not isinstance(column, (int, np.integer)) or column < 0:
            raise ValueError(f"aggregate column must be an index >= 0, got {column!r}")
        name = spec[2] if len(spec) == 3 else f"{func}_{column}"
        out.append((func, int(column), name))
    names = [n for _, _, n in out]
    if len(set(names)) != len(names) or {"key", "window_start", "window_end"} & set(names):
        raise ValueError(
            f"aggregate output names must be unique and not key/window_start/window_end: {names}"
        )
    return out


def window_start(ts: int, offset: int, slide: int) -> int:
    if slide <= 0:
        raise ValueError(f"slide must be > 0, got {slide}")
    return max(ts - (ts - offset) % slide, INT64_MIN)  # Python's % floors


def _end(start: int, size: int) -> int:
    return min(start + size, INT64_MAX)


def _cleanup(max_ts: int, lateness: int) -> int:
    return min(max_ts + lateness, INT64_MAX)


def _jmin(a: float, b: float) -> float:
    if math.isnan(a):
        return a
    if math.isnan(b):
        return b
    if a == 0.0 and b == 0.0:
        return a if math.copysign(1, a) < 0 else b
    return a if a < b else b


def _jmax(a: float, b: float) -> float:
    if math.isnan(a):
        return a
    if math.isnan(b):
        return b
    if a == 0.0 and b == 0.0:
        return b if math.copysign(1, a) < 0 else a
    return a if a > b else b


class _Acc:
    """Accumulators of one window: count, per-aggregate value, arrival order of first/last."""

    __slots__ = ("count", "vals", "first_seq", "last_seq", "dirty")

    def __init__(self, aggs, row, seq):
        self.count = 1
        self.vals = [0.0 if f == "count" else row[c] for f, c, _ in aggs]
        self.first_seq = self.last_seq = seq
        self.dirty = True

    def add(self, aggs, row, seq):
        for k, (f, c, _) in enumerate(aggs):
            v = row[c] if f != "count" else 0.0
            if f in ("sum", "mean"):
                self.vals[k] += v
            elif f == "min":
                self.vals[k] = _jmin(self.vals[k], v)
            elif f == "max":
                self.vals[k] = _jmax(self.vals[k], v)
            elif f == "last":
                self.vals[k] = v
        self.count += 1
        self.last_seq = seq
        self.dirty = True

    def merge(self, aggs, other):
        for k, (f, _, _) in enumerate(aggs):
            if f in ("sum", "mean"):
                self.vals[k] += other.vals[k]
            elif f == "min":
                self.vals[k] = _jmin(self.vals[k], other.vals[k])
            elif f == "max":
                self.vals[k] = _jmax(self.vals[k], other.vals[k])
            elif f == "first" and other.first_seq < self.first_seq:
                self.vals[k] = other.vals[k]
            elif f == "last" and other.last_seq > self.last_seq:
                self.vals[k] = other.vals[k]
        self.count += other.count
        self.first_seq = min(self.first_seq, other.first_seq)
        self.last_seq = max(self.last_seq, other.last_seq)
        self.dirty = self.dirty or other.dirty

    def result(self, func, k):
        if func == "count":
            return self.count
        if func == "mean":
            return self.vals[k] / self.count
        return self.vals[k]


def _columns(aggs, rows):
    """rows: [(end, key, start, acc)] sorted -> dict of numpy columns"""
    out = {
        "key": np.array([r[1] for r in rows], dtype=np.int64),
        "window_start": np.array([r[2] for r in rows], dtype=np.int64),
        "window_end": np.array([r[0] for r in rows], dtype=np.int64),
    }
    for k, (f, _, name) in enumerate(aggs):
        out[name] = np.array(
            [r[3].result(f, k) for r in rows], dtype=np.int64 if f == "count" else np.float64
        )
    return out


def _rows(keys, ts, values, aggs):
    keys = np.asarray(keys, dtype=np.int64)
    ts = np.asarray(ts, dtype=np.int64)
    if keys.ndim != 1 or ts.shape != keys.shape:
        raise ValueError(f"keys and ts must be 1-d arrays of one length, got {keys.shape} and {ts.shape}")
    if values is None:
        values = []
    elif isinstance(values, np.ndarray) and values.ndim == 1:
        values = [values]
    needed = max([c for f, c, _ in aggs if f != "count"], default=-1) + 1
    if len(values) < needed:
        raise ValueError(f"aggregates read value column {needed - 1} but update got {len(values)} columns")
    cols = [np.asarray(v, dtype=np.float64) for v in values]
    for i, c in enumerate(cols):
        if c.shape != keys.shape:
            raise ValueError(f"value column {i} has shape {c.shape}, expected {keys.shape}")
    width = max(len(cols), 1)
    for i in range(len(keys)):
        yield int(keys[i]), int(ts[i]), [float(c[i]) for c in cols] + [0.0] * (width - len(cols))


class WindowAggTable:
    def __init__(self, size, slide, offset=0, aggs=(), allowed_lateness=0):
        if size <= 0 or slide <= 0:
            raise ValueError(f"window size and slide must be > 0, got size={size}, slide={slide}")
        if allowed_lateness < 0:
            raise ValueError(f"allowed_lateness must be >= 0, got {allowed_lateness}")
        self.size, self.slide, self.offset, self.allowed_lateness = size, slide, offset, allowed_lateness
        self.aggs = parse_aggs(aggs)
        self._windows: dict[tuple[int, int], _Acc] = {}  # (key, start) -> acc
        self._seq = 0

    def _starts(self, t):
        last = window_start(t, self.offset, self.slide)
        k = 0
        while k * self.slide < self.size - (t - last):
            if last - k * self.slide < INT64_MIN:
                break
            yield last - k * self.slide
            k += 1

    def update(self, keys, ts, values=None, watermark=None, return_late=False):
        wm = INT64_MIN if watermark is None else watermark
        late = []
        for key, t, row in _rows(keys, ts, values, self.aggs):
            assigned = False
            for start in self._starts(t):
                max_ts = _end(start, self.size) - 1
                if _cleanup(max_ts, self.allowed_lateness) <= wm:
                    continue
                assigned = True
                acc = self._windows.get((key, start))
                if acc is None:
                    self._windows[(key, start)] = _Acc(self.aggs, row, self._seq)
                else:
                    acc.add(self.aggs, row, self._seq)
                self._seq += 1
            late.append(not assigned)
        return np.array(late, dtype=bool) if return_late else sum(late)

    def late_mask(self, ts, watermark):
        out = []
        for t in np.asarray(ts, dtype=np.int64).tolist():
            last = window_start(t, self.offset, self.slide)
            out.append(_cleanup(_end(last, self.size) - 1, self.allowed_lateness) <= watermark)
        return np.array(out, dtype=bool)

    def fire(self, watermark):
        rows = []
        for (key, start), acc in list(self._windows.items()):
            end = _end(start, self.size)
            if acc.dirty and end - 1 <= watermark:
                rows.append((end, key, start, acc))
        rows.sort(key=lambda r: (r[0], r[1]))
        out = _columns(self.aggs, rows)
        for r in rows:
            r[3].dirty = False
        for key, start in list(self._windows):
            if _cleanup(_end(start, self.size) - 1, self.allowed_lateness) <= watermark:
                del self._windows[(key, start)]
        return out

    def __len__(self):
        return len(self._windows)

    def snapshot(self):
        return pickle.dumps(
            (self.size, self.slide, self.offset, self.allowed_lateness, self.aggs, self._windows)
        )

    def restore(self, data, keep_keys=None, clear=True):
        size, slide, offset, lateness, aggs, windows = pickle.loads(data)
        if (size, slide, offset, lateness, aggs) != (
            self.size,
            self.slide,
            self.offset,
            self.allowed_lateness,
            self.aggs,
        ):
            raise ValueError("the snapshot is of a window table with another spec")
        if clear:
            self._windows = {}
        items = list(windows.items())
        if keep_keys is not None and items:
            mask = keep_keys(np.array([k for (k, _), _ in items], dtype=np.int64))
            items = [it for it, keep in zip(items, mask, strict=True) if keep]
        for wkey, acc in items:
            if wkey in self._windows:
                self._windows[wkey].merge(self.aggs, acc)
            else:
                self._windows[wkey] = acc


class SessionWindowTable:
    def __init__(self, gap, aggs=(), allowed_lateness=0):
        if gap <= 0:
            raise ValueError(f"session gap must be > 0, got {gap}")
        if allowed_lateness < 0:
            raise ValueError(f"allowed_lateness must be >= 0, got {allowed_lateness}")
        self.gap, self.allowed_lateness = gap, allowed_lateness
        self.aggs = parse_aggs(aggs)
        self._sessions: dict[int, list[list]] = {}  # key -> sorted [[start, end, acc]]
        self._seq = 0

    def _merge_in(self, key, start, end, acc, late_if_alone):
        sessions = self._sessions.get(key, [])
        hit = [s for s in sessions if s[0] <= end and s[1] >= start]  # TimeWindow.intersects
        if not hit:
            if late_if_alone:
                return True
            sessions.append([start, end, acc])
            sessions.sort(key=lambda s: s[0])
            self._sessions[key] = sessions
            return False
        target = hit[0]
        target[2].merge(self.aggs, acc)
        target[0], target[1] = min(target[0], start), max(target[1], end)
        # chain: later sessions that now intersect the grown target
        for s in sorted(sessions, key=lambda s: s[0]):
            if s is target or s[0] < target[0]:
                continue
            if s[0] <= target[1]:
                target[2].merge(self.aggs, s[2])
                target[1] = max(target[1], s[1])
                sessions.remove(s)
        return False

    def update(self, keys, ts, values=None, watermark=None, return_late=False):
        wm = INT64_MIN if watermark is None else watermark
        late = []
        for key, t, row in _rows(keys, ts, values, self.aggs):
            end = _end(t, self.gap)
            acc = _Acc(self.aggs, row, self._seq)
            self._seq += 1
            late.append(self._merge_in(key, t, end, acc, _cleanup(end - 1, self.allowed_lateness) <= wm))
        return np.array(late, dtype=bool) if return_late else sum(late)

    def fire(self, watermark):
        rows = [
            (s[1], key, s[0], s[2])
            for key, sessions in self._sessions.items()
            for s in sessions
            if s[2].dirty and s[1] - 1 <= watermark
        ]
        rows.sort(key=lambda r: (r[0], r[1]))
        out = _columns(self.aggs, rows)
        for r in rows:
            r[3].dirty = False
        for key in list(self._sessions):
            kept = [s for s in self._sessions[key] if _cleanup(s[1] - 1, self.allowed_lateness) > watermark]
            if kept:
                self._sessions[key] = kept
            else:
                del self._sessions[key]
        return out

    def __len__(self):
        return sum(len(s) for s in self._sessions.values())

    def snapshot(self):
        return pickle.dumps((self.gap, self.allowed_lateness, self.aggs, self._seq, self._sessions))

    def restore(self, data, keep_keys=None, clear=True):
        gap, lateness, aggs, seq, sessions = pickle.loads(data)
        if (gap, lateness, aggs) != (self.gap, self.allowed_lateness, self.aggs):
            raise ValueError("the snapshot is of a window table with another spec")
        if clear:
            self._sessions = {}
        items = [(k, s) for k, ss in sessions.items() for s in ss]
        if keep_keys is not None and items:
            mask = keep_keys(np.array([k for k, _ in items], dtype=np.int64))
            items = [it for it, keep in zip(items, mask, strict=True) if keep]
        for key, (start, end, acc) in items:
            self._merge_in(key, start, end, acc, False)
        self._seq = max(self._seq, seq)
