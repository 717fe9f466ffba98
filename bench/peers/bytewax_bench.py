"""Bytewax (0.21) running WORKLOADS.md's W1, W2, W2-sparse, W3, W4; run in bench/peers/.venvs/bytewax.

Input: the events as a list of tuples through ``TestingSource`` (batch size 1000), run
in-process with ``run_main`` (one worker). Keys are strings (Bytewax requires it); event time
is an aware datetime from ``ts`` ms; the watermark is Bytewax's EventClock with a 100 ms wait
and a frozen system clock (see ``_windowed``).
Usage: python bytewax_bench.py WORKLOAD N [REPEATS]; prints one JSON record.
"""

from __future__ import annotations

import math
import sys
from datetime import datetime, timedelta, timezone

import bytewax.operators as op
import bytewax.operators.windowing as win
from bytewax.dataflow import Dataflow
from bytewax.outputs import DynamicSink, StatelessSinkPartition
from bytewax.testing import TestingSource, run_main
from common import Timer, emit, events_for, record

EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
BATCH = 1000


class Totals:
    def __init__(self, pick):
        self.pick = pick
        self.results = 0
        self.checksum = 0.0


class _Part(StatelessSinkPartition):
    def __init__(self, totals):
        self.totals = totals

    def write_batch(self, items):
        t = self.totals
        t.results += len(items)
        pick = t.pick
        t.checksum += sum(pick(x) for x in items)


class CountingSink(DynamicSink):
    """In-process sink that counts items and adds up one number of each."""

    def __init__(self, totals):
        self.totals = totals

    def build(self, step_id, worker_index, worker_count):
        return _Part(self.totals)


def _ts(e):
    return EPOCH + timedelta(milliseconds=e[2])


def w1(events, totals):
    flow = Dataflow("w1")
    s = op.input("in", flow, TestingSource(events, batch_size=BATCH))
    s = op.map("double", s, lambda e: (e[0], e[1] * 2.0, e[2]))
    s = op.filter("even", s, lambda e: e[0] % 2 == 0)
    totals.pick = lambda e: e[1]
    op.output("out", s, CountingSink(totals))
    return flow


def _windowed(events, totals, windower, builder, folder, merger, pick):
    flow = Dataflow("windowed")
    s = op.input("in", flow, TestingSource(events, batch_size=BATCH))
    keyed = op.key_on("key", s, lambda e: str(e[0]))
    # Bytewax's watermark also advances with *system* time since the max event was seen; on
    # replayed data that outruns event time and drops nearly everything as late. A fixed
    # "now" makes it Flink's bounded-out-of-orderness watermark: max event time - 100 ms.
    clock = win.EventClock(
        ts_getter=_ts,
        wait_for_system_duration=timedelta(milliseconds=100),
        now_getter=lambda: EPOCH,
        to_system_utc=lambda _t: None,
    )
    out = win.fold_window("window", keyed, clock, windower, builder, folder, merger)
    totals.pick = pick
    op.output("out", out.down, CountingSink(totals))
    return flow


def w2(events, totals):
    def fold(acc, e):
        acc[0] += e[1]
        acc[1] += 1
        return acc

    return _windowed(
        events,
        totals,
        win.TumblingWindower(length=timedelta(seconds=1), align_to=EPOCH),
        lambda: [0.0, 0],
        fold,
        lambda a, b: [a[0] + b[0], a[1] + b[1]],
        lambda kv: kv[1][1][0],  # (key, (window_id, [sum, count]))
    )


def w3(events, totals):
    return _windowed(
        events,
        totals,
        win.SessionWindower(gap=timedelta(milliseconds=500)),
        lambda: 0,
        lambda acc, e: acc + 1,
        lambda a, b: a + b,
        lambda kv: kv[1][1],
    )


def w4(events, totals):
    flow = Dataflow("w4")
    s = op.input("in", flow, TestingSource(events, batch_size=BATCH))
    keyed = op.key_on("key", s, lambda e: str(e[0]))

    def running_sum(state, e):
        old = state or 0.0
        new = old + e[1]
        hit = new if math.floor(new / 10.0) > math.floor(old / 10.0) else None
        return new, hit

    out = op.stateful_map("sum", keyed, running_sum)
    out = op.filter("passed", out, lambda kv: kv[1] is not None)
    totals.pick = lambda kv: kv[1]
    op.output("out", out, CountingSink(totals))
    return flow


FLOWS = {"W1": w1, "W2": w2, "W2-sparse": w2, "W3": w3, "W4": w4}


def main() -> None:
    workload, n = sys.argv[1], int(sys.argv[2])
    repeats = int(sys.argv[3]) if len(sys.argv) > 3 else 1
    ev = events_for(workload, n)
    events = ev.tuples()
    walls, cpus, rss, outcome = [], [], 0.0, None
    for _ in range(repeats):
        totals = Totals(None)
        flow = FLOWS[workload](events, totals)
        with Timer() as t:
            run_main(flow)
        walls.append(t.wall)
        cpus.append(t.cpu)
        rss = max(rss, t.rss)
        outcome = (totals.results, totals.checksum)
    from importlib.metadata import version

    import bytewax  # noqa: F401

    emit(
        record(
            workload,
            f"bytewax {version('bytewax')}",
            "udf",
            n,
            walls,
            cpus,
            outcome[0],
            outcome[1],
            rss,
            ev,
            input="TestingSource(list of tuples, batch_size=1000), run_main",
        )
    )


if __name__ == "__main__":
    main()
