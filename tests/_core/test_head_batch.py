"""``window_udf.head_batch``: the fused head (timestamp assigner, then an optional map) over a
batch in one compiled loop gives exactly what the unfused operators give (a list comprehension
of ``extract(value, timestamp)``, then ``list(map(pre, values))``), reports the largest int
timestamp and the others for the watermark generator, and says which record and function a
failure belongs to."""

from __future__ import annotations

import random

import pytest

from flinkcore._core.window_udf import Cursor, head_batch
from flinkcore.common.watermark import MIN_WATERMARK

I64_MAX = (1 << 63) - 1


def _twin(values, timestamps, extract, pre):
    old = timestamps if timestamps is not None else [MIN_WATERMARK] * len(values)
    ts = [extract(v, t) for v, t in zip(values, old, strict=True)]
    out = list(map(pre, values)) if pre is not None else values
    return out, ts


def _ts_of(value, timestamp):
    return value[2]


def _random_batch(rng: random.Random, n: int) -> tuple[list, list | None]:
    kinds = [
        lambda: rng.randrange(-(1 << 40), 1 << 40),
        lambda: rng.randrange(-5, 300),  # small ints (CPython's cached ones)
        lambda: rng.choice([I64_MAX, -I64_MAX - 1, 1 << 63, -(1 << 63) - 1, 1 << 80]),  # int64 edges, beyond
        lambda: rng.random() * 1000,
        lambda: None,
        lambda: True,
        lambda: "ts",
    ]
    values = []
    for _ in range(n):
        kind = rng.choices(kinds, weights=[20, 5, 2, 1, 1, 1, 1])[0]
        values.append((rng.randrange(100), rng.random(), kind()))
    timestamps = None if rng.random() < 0.5 else [rng.randrange(1000) for _ in range(n)]
    return values, timestamps


@pytest.mark.parametrize("seed", range(30))
@pytest.mark.parametrize("with_map", [False, True])
def test_equals_the_unfused_operators(seed, with_map):
    rng = random.Random(seed)
    values, timestamps = _random_batch(rng, rng.choice([0, 1, 2, 17, 1024, 3000]))
    pre = (lambda e: (e[0], 1)) if with_map else None
    seen = []

    def extract(value, timestamp):
        seen.append(timestamp)
        return _ts_of(value, timestamp)

    cur = Cursor()
    cur.reset()
    out, ts, others = head_batch(cur, values, timestamps, extract, MIN_WATERMARK, pre)
    want_out, want_ts = _twin(values, timestamps, _ts_of, pre)
    assert out == want_out
    assert ts == want_ts and all(a is b for a, b in zip(ts, want_ts, strict=True))  # the assigner's objects
    assert seen == (timestamps if timestamps is not None else [MIN_WATERMARK] * len(values))
    if pre is None:
        assert out is values
    ints = [t for t in want_ts if type(t) is int and -(1 << 63) <= t <= I64_MAX]
    assert cur.max_ts == max(ints, default=-(1 << 63))
    assert others == [t for t in want_ts if not (type(t) is int and -(1 << 63) <= t <= I64_MAX)]
    assert cur.position == len(values) and cur.stage == 1


def test_max_ts_continues_from_the_cursor():
    cur = Cursor()
    cur.reset()
    head_batch(cur, [(0, 0, 50)], None, _ts_of, MIN_WATERMARK, None)
    head_batch(cur, [(0, 0, 10)], None, _ts_of, MIN_WATERMARK, None)
    assert cur.max_ts == 50


def test_timestamps_of_another_sequence_type():
    cur = Cursor()
    cur.reset()
    values = [(1, 0, 5), (2, 0, 6)]
    _, ts, _ = head_batch(cur, values, (7, 8), lambda v, t: t, MIN_WATERMARK, None)
    assert ts == [7, 8]
    with pytest.raises(ValueError, match="differ in length"):
        head_batch(cur, values, [1], _ts_of, MIN_WATERMARK, None)


@pytest.mark.parametrize("fail_in", ["extract", "map"])
def test_failure_names_its_record_and_function(fail_in):
    values = [(k, 0.0, k) for k in range(10)]

    def extract(value, timestamp):
        if fail_in == "extract" and value[0] == 6:
            raise KeyError("no ts")
        return value[2]

    def pre(value):
        if fail_in == "map" and value[0] == 6:
            raise ZeroDivisionError("boom")
        return value[0], 1

    cur = Cursor()
    cur.reset()
    with pytest.raises(KeyError if fail_in == "extract" else ZeroDivisionError):
        head_batch(cur, values, None, extract, MIN_WATERMARK, pre)
    assert cur.position == 6
    assert cur.stage == (0 if fail_in == "extract" else 2)


def test_a_batch_that_shrinks_under_a_user_function_is_refused():
    values = [(k, 0.0, k) for k in range(5)]

    def extract(value, timestamp):
        if value[0] == 2:
            del values[3:]
        return value[2]

    cur = Cursor()
    cur.reset()
    with pytest.raises(RuntimeError, match="changed size"):
        head_batch(cur, values, None, extract, MIN_WATERMARK, None)


def test_no_reference_leaks():
    import sys

    key = object()
    values = [(key, 0.0, 1000 + i) for i in range(100)]
    before = sys.getrefcount(key)
    cur = Cursor()
    for _ in range(50):
        cur.reset()
        out, ts, others = head_batch(cur, values, None, _ts_of, MIN_WATERMARK, lambda e: (e[0], 1))
        del out, ts, others
    assert sys.getrefcount(key) == before
