"""Each kernel run in a loop must keep the process RSS flat (read from /proc/self/statm).

A warm-up lets allocator pools and caches settle; then the kernel runs many more times and the RSS may
not grow by more than a small slack. A leak of even one object per call shows up as megabytes here.
"""

import datetime as dt
import gc
import os
import pathlib
from decimal import Decimal

import numpy as np
import pytest

from flinkcore._core import partitioner, serde

STATM = pathlib.Path("/proc/self/statm")
pytestmark = pytest.mark.skipif(not STATM.exists(), reason="needs /proc/self/statm (Linux)")
PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
SLACK = 3 << 20


def rss() -> int:
    gc.collect()
    return int(STATM.read_text().split()[1]) * PAGE


def assert_flat(fn, warmup: int = 30, rounds: int = 300) -> None:
    for _ in range(warmup):
        fn()
    before = rss()
    for _ in range(rounds):
        fn()
    grown = rss() - before
    assert grown < SLACK, f"RSS grew by {grown / 1e6:.1f} MB over {rounds} rounds"


def test_partitioner_does_not_leak():
    ints = np.arange(50_000, dtype=np.int64)
    strs = np.array([f"k{i}" for i in range(5_000)])
    objs = [("a", i, 2.5, b"x", 2**70) for i in range(2_000)]

    def run():
        partitioner.key_groups(ints, 128)
        partitioner.key_groups(strs, 100)
        partitioner.key_groups(objs, 128)
        try:
            partitioner.hash_key({})
        except TypeError:
            pass

    assert_flat(run)


def test_serde_does_not_leak():
    records = [
        (i, i * 0.5, f"user-{i % 50}", None, [b"x", {"k": Decimal("1.5")}], dt.datetime(2024, 1, 1, i % 24))
        for i in range(2_000)
    ]
    bad = serde.dumps_batch(records)[:-3]
    rows = [(i, i * 0.5, f"user-{i % 50}") for i in range(2_000)]
    growing = [(0, "")] + [(i, "x" * (i % 300)) for i in range(2_000)]  # the row buffer grows
    broken = rows[:1_500] + [(1, 2.0, None)] + rows[:10]  # a row block abandoned midway
    bad_rows = serde.dumps_batch(rows)[:-5]

    def run():
        serde.loads_batch(serde.dumps_batch(records))
        for batch in (rows, growing, broken):
            serde.loads_batch(serde.dumps_batch(batch))
        try:
            serde.loads_batch(bad_rows)
        except serde.SerdeError:
            pass
        serde.loads(serde.dumps(records[:50]))
        serde.encode_key(("k", 1, 2.0))
        try:
            serde.loads_batch(bad)
        except serde.SerdeError:
            pass

    assert_flat(run)


def test_timers_do_not_leak():
    from flinkcore._core.timers import TimerQueue

    keys = [f"k{i}" for i in range(2_000)]

    def run():
        q = TimerQueue()
        q.register_many(np.arange(2_000, dtype=np.int64) % 97, keys, "ns")
        for k in keys[:500]:
            q.delete(3, k, "ns")
        for i, k in enumerate(keys[:1500]):  # most of them: dead heap entries, then a rebuild
            q.delete(i % 97, k, "ns")
        q.register_many(np.arange(1_000, dtype=np.int64) % 97, keys[:1000], "ns")
        q.restore(q.snapshot())
        q.advance(50)
        while q.pop_timers(70):  # a timestamp at a time, as FiredTimer objects
            pass
        q.pop_batch(80)
        try:
            q.register(1, ["unhashable"])
        except TypeError:
            pass
        q.advance(2**63 - 1)

    assert_flat(run)


def test_window_kernels_do_not_leak():
    from flinkcore._core.window_kernels import SessionWindowTable, WindowAggTable

    rng = np.random.default_rng(3)
    keys = rng.integers(0, 500, 20_000, dtype=np.int64)
    ts = np.sort(rng.integers(0, 100_000, 20_000, dtype=np.int64))
    vals = rng.random(20_000)
    aggs = [("sum", 0), ("count", None), ("min", 0), ("max", 0), ("mean", 0), ("first", 0), ("last", 0)]

    def run():
        for table in (
            WindowAggTable(1000, 500, 0, aggs, allowed_lateness=100),
            SessionWindowTable(300, aggs),
        ):
            for i in range(0, 20_000, 4096):
                table.update(
                    keys[i : i + 4096], ts[i : i + 4096], [vals[i : i + 4096]], watermark=int(ts[i]) - 50
                )
                table.fire(int(ts[i]) - 50)
            restored = type(table)(
                *((1000, 500, 0, aggs, 100) if isinstance(table, WindowAggTable) else (300, aggs))
            )
            restored.restore(table.snapshot(), keep_keys=lambda k: k % 2 == 0)
            try:
                restored.restore(b"garbage")
            except ValueError:
                pass
            table.fire(2**63 - 1)

    assert_flat(run, warmup=5, rounds=60)
