"""Local-global session aggregation against the one-phase session operator, in one process:
several upstream channels (each a LocalSessionOperator) feed a GlobalSessionOperator through a
simulated keyed exchange with a random interleaving of the channels' batches and watermarks (the
global watermark is the minimum over channels, as the runtime's), and the one-phase
SessionWindowOperator gets the same records with the same interleaving. Every firing (between
the same two watermarks), every late record and every result must be the same, whatever the
interleaving — also for data with records at the watermark + 1 and late records, where the
results themselves depend on the interleaving. Thousands of random cases run in seconds, where
the worker-process tests can only run a few."""

from __future__ import annotations

import operator
import random

import pytest

from flinkcore.common.watermark import Watermark
from flinkcore.datastream.window import TimeWindow
from flinkcore.runtime.operators.local_sessions import GlobalSessionOperator, LocalSessionOperator
from flinkcore.runtime.operators.window import InternalWindowFunction, SessionWindowOperator, WindowStateSpec
from flinkcore.runtime.testing import (
    KeyedOneInputStreamOperatorTestHarness,
    OneInputStreamOperatorTestHarness,
)

LATE = "late"
MAX = (1 << 63) - 1


class Collect:
    """Accumulator: the records' ids (a list); merge concatenates."""

    def create_accumulator(self):
        return []

    def add(self, value, acc):
        acc.append(value[1])
        return acc

    def get_result(self, acc):
        return tuple(sorted(acc))

    def merge(self, a, b):
        return a + b


def _reduce(a, b):
    """(key, count, min id, max ts): commutative, so any merge order gives the same value."""
    return (a[0], a[1] + b[1], min(a[2], b[2]), max(a[3], b[3]))


def with_window(key, window, ctx, value):
    return [(key, window.start, window.end, value)]


def channel_stream(rnd, n, keys, gap):
    """One channel: batches of 1-4 records (key, id, ts) and watermarks (max seen - bound, bound
    small: records land at the watermark + 1 and just after it), some records far behind."""
    items = []
    t = 0
    max_ts = -(1 << 40)
    bound = rnd.randint(0, 3 * gap)
    ident = rnd.randrange(1 << 30)
    batch: list = []
    for _ in range(n):
        t += rnd.randint(0, max(1, gap // 3))
        ts = t - rnd.randint(0, bound + 2)
        if rnd.random() < 0.05:
            ts = t - rnd.randint(gap, 6 * gap)
        ident += 1
        batch.append((rnd.randrange(keys), ident, ts))
        max_ts = max(max_ts, ts)
        if len(batch) >= rnd.randint(1, 4):
            items.append(("b", batch))
            batch = []
        if rnd.random() < 0.3:
            if batch:
                items.append(("b", batch))
                batch = []
            items.append(("w", max_ts - bound))
        if rnd.random() < 0.02:
            items.append(("barrier", None))
    if batch:
        items.append(("b", batch))
    return items


def _drain(h):
    """The records an operator emitted since the last drain, and its watermarks."""
    out = h.get_output()
    values = [r.value for r in out if not isinstance(r, Watermark)]
    ts = [r.timestamp for r in out if not isinstance(r, Watermark)]
    h.clear_output()
    return values, ts


def _epochs(h):
    """The window results between consecutive watermarks (each epoch sorted)."""
    epochs: list = [[]]
    for item in h.get_output():
        if isinstance(item, Watermark):
            epochs[-1].sort(key=repr)
            epochs.append([])
        else:
            epochs[-1].append((item.value, item.timestamp))
    epochs[-1].sort(key=repr)
    return epochs, sorted(repr(r) for r in h.get_side_output(LATE))


def simulate(seed, kind, adapt=()):
    rnd = random.Random(seed)
    gap = rnd.choice([3, 10, 40])
    channels = rnd.randint(2, 3)
    keys = rnd.randint(1, 5)
    streams = [channel_stream(rnd, rnd.randint(20, 200), keys, gap) for _ in range(channels)]
    if kind == "aggregate":
        agg = Collect()
        spec = WindowStateSpec("aggregating", aggregate=agg)
        local_fns = (0, agg.create_accumulator, agg.add)
    else:
        spec = WindowStateSpec("reducing", reduce=_reduce)
        local_fns = (1, None, _reduce)
        streams = [
            [(k, [(r[0], 1, r[1], r[2]) for r in v] if k == "b" else v) for k, v in s] for s in streams
        ]

    key_of = operator.itemgetter(0)
    one = KeyedOneInputStreamOperatorTestHarness(
        SessionWindowOperator(gap, spec, InternalWindowFunction(with_window), TimeWindow, late_data_tag=LATE),
        key_selector=key_of,
    )
    glob = KeyedOneInputStreamOperatorTestHarness(
        GlobalSessionOperator(gap, spec, InternalWindowFunction(with_window), TimeWindow, late_data_tag=LATE),
        key_selector=key_of,
    )
    locals_ = [
        OneInputStreamOperatorTestHarness(LocalSessionOperator(gap, *local_fns, key_of, "local", *adapt))
        for _ in streams
    ]
    for h in (one, glob, *locals_):
        h.open()
    marks = [-(1 << 63)] * channels
    current = -(1 << 63)
    pos = [0] * channels

    def to_global(c):
        values, ts = _drain(locals_[c])
        if values:
            glob.process_elements(values, ts)

    while True:
        live = [c for c in range(channels) if pos[c] < len(streams[c])]
        if not live:
            break
        c = rnd.choice(live)
        k, v = streams[c][pos[c]]
        pos[c] += 1
        if k == "b":
            ts = [r[2] for r in v] if kind == "aggregate" else [r[3] for r in v]
            one.process_elements(v, ts)
            locals_[c].process_elements(v, ts)
            to_global(c)
        elif k == "w":
            locals_[c].process_watermark(v)
            to_global(c)
            marks[c] = max(marks[c], v)
            if min(marks) > current:
                current = min(marks)
                one.process_watermark(current)
                glob.process_watermark(current)
        else:
            locals_[c].operator.prepare_snapshot_pre_barrier(1)
            assert locals_[c].operator.snapshot_operator_state() is None
            to_global(c)
    for c in range(channels):
        locals_[c].end_input()
        to_global(c)
    one.process_watermark(MAX)
    glob.process_watermark(MAX)
    return _epochs(one), _epochs(glob), locals_


@pytest.mark.parametrize("kind", ["aggregate", "reduce"])
def test_random_interleavings_equal_the_one_phase_operator(kind):
    sent = singles = 0
    for seed in range(400):
        one, two, locals_ = simulate(seed, kind)
        assert two == one, f"seed {seed}"
        sent += sum(h.operator.partials_sent for h in locals_)
        singles += sum(h.operator.singles_sent for h in locals_)
    assert singles > 0, "the data has records late at the local side"
    assert sent > 0


def test_long_sessions_send_extents_and_one_accumulator():
    """W3's shape: each key's records closer than the gap, the watermark behind by a bound. A key
    sends a cheap extent about once per gap + bound of event time (keeping its global session
    open) and its accumulator once, when the session stops growing (here: at end of input)."""
    gap, bound = 500, 100
    agg = Collect()
    h = OneInputStreamOperatorTestHarness(
        LocalSessionOperator(gap, 0, agg.create_accumulator, agg.add, operator.itemgetter(0))
    )
    h.open()
    rnd = random.Random(5)
    n = 0
    for second in range(20):
        batch = []
        for i in range(1000):
            ts = second * 1000 + i
            batch.append((rnd.randrange(10), n, ts))
            n += 1
        h.process_elements(batch, [r[2] for r in batch])
        h.process_watermark(batch[-1][2] - bound)
    op = h.operator
    assert op.singles_sent == 0
    assert op.partials_sent == 0
    # 10 keys, 20 s of event time: about 20_000 / (gap + bound) extents per key plus the first
    assert 10 * 20 <= op.extents_sent < 10 * (20_000 // (gap + bound) + 3)
    extents, _ = _drain(h)
    assert all(len(v) == 2 for v in extents)
    h.end_input()
    values, _ = _drain(h)
    assert all(len(v) == 3 for v in values)
    assert len(values) == op.partials_sent == 10
    assert sorted(i for _, _, acc in values for i in acc) == list(range(n))


@pytest.mark.parametrize("kind", ["aggregate", "reduce"])
def test_switch_to_pass_through_mid_stream_equals_the_one_phase_operator(kind):
    """Local operators that stop pre-aggregating after a few periods (with a ratio of 0 each
    switches after the first period that sent anything): the records
    they hold go on with the next watermark, later records go on alone and unchanged, late
    ones and barriers included, and every result and late record is the one-phase operator's."""
    switched = stayed = 0
    for seed in range(300):
        one, two, locals_ = simulate(seed, kind, adapt=(15, 0.0))
        assert two == one, f"seed {seed}"
        for h in locals_:
            op = h.operator
            if op.pass_through:
                assert op.pass_through_reason == "reduction"
                # the first period that sent anything switched it
                assert op.periods[-1][1] > 0
                assert all(m == 0 for _, m in op.periods[:-1])
                switched += 1
            else:
                stayed += 1
    assert switched > 100 and stayed > 0


def _dense_batches(seconds, keys, per_ms, bound):
    """W3's dense shape: each key's records much closer than the gap, a watermark per batch."""
    rnd = random.Random(keys)
    n = 0
    for second in range(seconds):
        batch = []
        for i in range(1000 * per_ms):
            ts = second * 1000 + i // per_ms
            batch.append((rnd.randrange(keys), n, ts))
            n += 1
        yield batch, batch[-1][2] - bound


def test_dense_sessions_keep_pre_aggregating():
    """Few keys, each with ~100 records per gap + bound: about one message per 60 records in
    every period, far below the ratio that switches (the default, 1/10)."""
    gap, bound = 500, 100
    agg = Collect()
    op = LocalSessionOperator(gap, 0, agg.create_accumulator, agg.add, operator.itemgetter(0), "local", 2000)
    h = OneInputStreamOperatorTestHarness(op)
    h.open()
    for batch, wm in _dense_batches(10, keys=10, per_ms=1, bound=bound):
        h.process_elements(batch, [r[2] for r in batch])
        h.process_watermark(wm)
    assert not op.pass_through
    assert len(op.periods) >= 4
    assert all(0 < messages * 10 < records for records, messages in op.periods)
    assert op.records_in == 10_000


def test_sparse_sessions_switch_and_forward_batches_as_they_came():
    """Many keys, each with a record per ~gap: about a message per record, above even the first
    period's bar. After that period the operator sends what it holds (with the accumulators) and
    from then on emits every batch as it came (the same list of the same records)."""
    gap, bound = 50, 10
    agg = Collect()
    op = LocalSessionOperator(gap, 0, agg.create_accumulator, agg.add, operator.itemgetter(0), "local", 500)
    h = OneInputStreamOperatorTestHarness(op)
    h.open()
    rnd = random.Random(3)
    t = n = 0
    while not op.pass_through:
        assert n < 5000, "did not switch"
        batch = []
        for _ in range(50):
            t += 1
            batch.append((rnd.randrange(60), n, t))
            n += 1
        h.process_elements(batch, [r[2] for r in batch])
        h.process_watermark(t - bound)
    assert op.pass_through_reason == "reduction"
    assert len(op.periods) == 1 and op.periods[0][1] * 4 > op.periods[0][0]
    assert op.pending_partials() == 0
    values, _ = _drain(h)
    # every record taken in left, in partials (with their accumulators) or alone
    ids = [i for v in values if type(v) is list and len(v) == 3 for i in v[2]]
    ids += [v[1] for v in values if type(v) is tuple]
    assert sorted(ids) == list(range(n))
    batch = [(k, n + k, t + k) for k in range(40)]
    sent = []
    op.output.collect = lambda vs, ts: sent.append((vs, ts))
    ts = [r[2] for r in batch]
    op.process_batch(batch, ts)
    assert len(sent) == 1 and sent[0][0] is batch and sent[0][1] is ts
    # a record that is a list goes wrapped (lists are the messages)
    sent.clear()
    op.process_batch([[7, "x"], (8, "y")], [t, t])
    assert sent[0][0] == [[7, [7, "x"], None, None], (8, "y")]
