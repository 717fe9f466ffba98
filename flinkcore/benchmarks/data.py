"""The benchmark input of shared/WORKLOADS.md, generated exactly as specified.

Every system (flinkcore, the baselines, each peer) must see identical events, so the draw
order below is part of the contract: key, value, late, jitter, from one
``default_rng(42)``. Peers import this file by path (it needs only numpy), so keep it free of
flinkcore imports.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: Keys for W1, W2, W2-sparse and W4; W3 uses 100_000.
NKEYS = 10_000
NKEYS_W3 = 100_000
#: ``ts = i // TS_DIV``: a million events per second of event time (W2-sparse: 100 per ms).
TS_DIV = 1000
TS_DIV_SPARSE = 10

#: Workload parameters from WORKLOADS.md.
OUT_OF_ORDERNESS_MS = 100
WINDOW_MS = 1000
SESSION_GAP_MS = 500
W4_THRESHOLD = 10.0


@dataclass(frozen=True)
class Events:
    """N events as three aligned columns (int64 key, float64 value, int64 ts in ms)."""

    key: np.ndarray
    value: np.ndarray
    ts: np.ndarray

    def __len__(self) -> int:
        return len(self.key)

    def tuples(self) -> list[tuple[int, float, int]]:
        """The events as a list of Python tuples: the natural input of a per-record job."""
        return list(zip(self.key.tolist(), self.value.tolist(), self.ts.tolist(), strict=True))


def generate(n: int, nkeys: int = NKEYS, ts_div: int = TS_DIV) -> Events:
    """Generate N events with exactly WORKLOADS.md's code (seed 42, fixed draw order)."""
    rng = np.random.default_rng(42)
    key = rng.integers(0, nkeys, n, dtype=np.int64)
    value = rng.random(n)
    late = rng.random(n) < 0.1
    jitter = rng.integers(0, 51, n, dtype=np.int64)
    ts = np.arange(n, dtype=np.int64) // ts_div - np.where(late, jitter, 0)
    return Events(key, value, ts)


#: Which data each workload runs on.
WORKLOAD_DATA: dict[str, dict[str, int]] = {
    "W1": {"nkeys": NKEYS, "ts_div": TS_DIV},
    "W2": {"nkeys": NKEYS, "ts_div": TS_DIV},
    "W2-sparse": {"nkeys": NKEYS, "ts_div": TS_DIV_SPARSE},
    "W3": {"nkeys": NKEYS_W3, "ts_div": TS_DIV},
    "W4": {"nkeys": NKEYS, "ts_div": TS_DIV},
    "L1": {"nkeys": NKEYS, "ts_div": TS_DIV},
}


def events_for(workload: str, n: int) -> Events:
    """The events a workload runs on (W3: 100k keys; W2-sparse: ``ts = i // 10``)."""
    try:
        params = WORKLOAD_DATA[workload]
    except KeyError:
        raise ValueError(f"unknown workload {workload!r}; known: {', '.join(WORKLOAD_DATA)}") from None
    return generate(n, **params)
