"""Pure-Python and numpy versions of the workloads: the baselines and the semantic reference.

The pure-Python loops are *streaming*: they see one event at a time in input order, keep a
bounded-out-of-orderness watermark (``max_ts - bound - 1``, Flink's
``BoundedOutOfOrdernessWatermarks``) and fire a window when the watermark reaches its
``max_timestamp()`` (end - 1), exactly as a Flink job would. The numpy versions are *batch*
(whole columns at once, not streaming) and give the same results because no event in the
workload data is late. Every function returns ``(results, checksum)`` as WORKLOADS.md defines
them. Only numpy is needed, so peers can import this file by path for cross-checks.
"""

from __future__ import annotations

import heapq
import math

import numpy as np

try:  # imported as part of flinkcore or by path from a peer's venv
    from .data import OUT_OF_ORDERNESS_MS, SESSION_GAP_MS, W4_THRESHOLD, WINDOW_MS
except ImportError:  # pragma: no cover - by-path import
    from data import OUT_OF_ORDERNESS_MS, SESSION_GAP_MS, W4_THRESHOLD, WINDOW_MS  # type: ignore

Result = tuple[int, float]


# --- pure Python, streaming ---------------------------------------------------------------


def w1_python(events: list[tuple[int, float, int]]) -> Result:
    """map value*2, filter even keys, count and sum what reaches the sink."""
    count = 0
    total = 0.0
    for key, value, _ts in events:
        doubled = value * 2.0
        if key % 2 == 0:
            count += 1
            total += doubled
    return count, total


def w2_python(events: list[tuple[int, float, int]], size: int = WINDOW_MS) -> Result:
    """Keyed tumbling event-time windows, SUM and COUNT; sink counts results, adds up sums."""
    bound = OUT_OF_ORDERNESS_MS
    windows: dict[int, dict[int, list]] = {}  # window start -> key -> [sum, count]
    starts: list[int] = []  # open window starts, ascending
    results = 0
    checksum = 0.0
    max_ts = -(2**63)
    watermark = -(2**63)
    for key, value, ts in events:
        if ts > max_ts:
            max_ts = ts
            watermark = max_ts - bound - 1
            while starts and starts[0] + size - 1 <= watermark:
                for acc in windows.pop(starts.pop(0)).values():
                    results += 1
                    checksum += acc[0]
        start = ts - ts % size  # Flink's window start with offset 0 (floor for negative ts)
        if start + size - 1 <= watermark:
            continue  # late: dropped (never happens on WORKLOADS.md data)
        per_key = windows.get(start)
        if per_key is None:
            per_key = windows[start] = {}
            starts.append(start)
            starts.sort()
        acc = per_key.get(key)
        if acc is None:
            per_key[key] = [value, 1]
        else:
            acc[0] += value
            acc[1] += 1
    for start in starts:  # end of input: watermark +inf fires the rest
        for acc in windows[start].values():
            results += 1
            checksum += acc[0]
    return results, checksum


def w3_python(events: list[tuple[int, float, int]], gap: int = SESSION_GAP_MS) -> Result:
    """Keyed event-time session windows (gap 500 ms), COUNT per session.

    Sessions merge when they intersect (Flink's ``TimeWindow.intersects``: touching windows
    merge too); a session fires when the watermark reaches its end - 1. Returns
    (number of sessions, sum of their counts).
    """
    bound = OUT_OF_ORDERNESS_MS
    sessions: dict[int, list[list[int]]] = {}  # key -> [[start, end, count], ...]
    timers: list[tuple[int, int]] = []  # (end, key), stale entries skipped when popped
    results = 0
    checksum = 0
    max_ts = -(2**63)
    watermark = -(2**63)
    for key, _value, ts in events:
        if ts > max_ts:
            max_ts = ts
            watermark = max_ts - bound - 1
            while timers and timers[0][0] - 1 <= watermark:
                end, k = heapq.heappop(timers)
                open_ = sessions.get(k)
                if not open_:
                    continue
                for i, s in enumerate(open_):
                    if s[1] == end:
                        results += 1
                        checksum += s[2]
                        del open_[i]
                        break
                if not open_:
                    del sessions[k]
        start, end, count = ts, ts + gap, 1
        if end - 1 <= watermark:
            continue  # late
        open_ = sessions.setdefault(key, [])
        keep = []
        for s in open_:
            if s[0] <= end and s[1] >= start:
                start = min(start, s[0])
                end = max(end, s[1])
                count += s[2]
            else:
                keep.append(s)
        keep.append([start, end, count])
        sessions[key] = keep
        heapq.heappush(timers, (end, key))
    for open_ in sessions.values():
        for s in open_:
            results += 1
            checksum += s[2]
    return results, float(checksum)


def w4_python(events: list[tuple[int, float, int]], threshold: float = W4_THRESHOLD) -> Result:
    """Per-key running sum in keyed state; emit the sum when it passes a multiple of 10."""
    sums: dict[int, float] = {}
    results = 0
    checksum = 0.0
    for key, value, _ts in events:
        old = sums.get(key, 0.0)
        new = old + value
        sums[key] = new
        if math.floor(new / threshold) > math.floor(old / threshold):
            results += 1
            checksum += new
    return results, checksum


PYTHON: dict[str, object] = {
    "W1": w1_python,
    "W2": w2_python,
    "W2-sparse": w2_python,
    "W3": w3_python,
    "W4": w4_python,
}


# --- numpy, batch -------------------------------------------------------------------------


def w1_numpy(key: np.ndarray, value: np.ndarray, ts: np.ndarray) -> Result:
    doubled = value * 2.0
    mask = key % 2 == 0
    return int(mask.sum()), float(doubled[mask].sum())


def w2_numpy(key: np.ndarray, value: np.ndarray, ts: np.ndarray, size: int = WINDOW_MS) -> Result:
    window = ts // size  # floor division: window -1 exists
    window -= window.min()
    nkeys = int(key.max()) + 1
    cell = window * nkeys + key
    counts = np.bincount(cell)
    sums = np.bincount(cell, weights=value)
    return int(np.count_nonzero(counts)), float(sums.sum())


def w3_numpy(key: np.ndarray, value: np.ndarray, ts: np.ndarray, gap: int = SESSION_GAP_MS) -> Result:
    order = np.lexsort((ts, key))
    k = key[order]
    t = ts[order]
    new_session = np.empty(len(k), dtype=bool)
    new_session[:1] = True
    # Per key in time order a new session starts where the gap to the previous event exceeds
    # the session gap (windows [a, a+gap) and [b, b+gap) intersect iff b - a <= gap).
    np.logical_or(k[1:] != k[:-1], t[1:] - t[:-1] > gap, out=new_session[1:])
    return int(new_session.sum()), float(len(k))


def w4_numpy(key: np.ndarray, value: np.ndarray, ts: np.ndarray, threshold: float = W4_THRESHOLD) -> Result:
    order = np.argsort(key, kind="stable")  # per key, event order kept
    v = value[order]
    bounds = np.flatnonzero(np.diff(key[order])) + 1
    results = 0
    checksum = 0.0
    for chunk in np.split(v, bounds):
        running = np.cumsum(chunk)  # sequential adds: the same rounding as a streaming sum
        passed = np.floor(running / threshold)
        prev = np.concatenate(([0.0], passed[:-1]))
        hit = passed > prev
        results += int(hit.sum())
        checksum += float(running[hit].sum())
    return results, checksum


NUMPY: dict[str, object] = {
    "W1": w1_numpy,
    "W2": w2_numpy,
    "W2-sparse": w2_numpy,
    "W3": w3_numpy,
    "W4": w4_numpy,
}
