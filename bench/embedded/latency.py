"""L1 for the embedded push API: latency of ``job.push(event)`` for the fraud shape.

The job is a 3-operator chain with keyed ValueState, W4's logic (shared/WORKLOADS.md)::

    from_push_source -> map(parse) -> key_by(key) -> process(running sum in a ValueState, emit
    when it passes a multiple of 10) -> map(format the alert)

Each event is pushed on its own and timed with ``perf_counter_ns`` around the call (the
caller's view: the event went through every operator when ``push`` returns). Beside it, in the
same run and on the same events, the same three functions called directly with a dict as the
state (the pure-Python floor), and the cost of the two clock reads alone. Data: WORKLOADS.md's
generator (seed 42, 10k keys) as Python tuples. Then, optionally, the end-to-end latency of a
normal streaming run at 100k events/s with the default buffer timeout, measured by the
benchmark suite's own L1 function (``flinkcore.benchmarks.latency.flinkcore_latency``).

Run pinned to one core::

    taskset -c 0 .venv/bin/python bench/embedded/latency.py [--n 200000] [--repeats 3] [--e2e]
        [--no-gc] [--snapshots] [--sparse N]
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import sys
import time
from typing import Any

import numpy as np

from flinkcore.benchmarks.data import W4_THRESHOLD, events_for
from flinkcore.common import Duration, WatermarkStrategy
from flinkcore.datastream import StreamExecutionEnvironment
from flinkcore.datastream.functions import KeyedProcessFunction
from flinkcore.datastream.state import ValueStateDescriptor


def parse(e: tuple) -> tuple:
    return e[0], e[1]


def alert(a: tuple) -> tuple:
    return ("ALERT", a[0], a[1])


def crossed(total: float, value: float) -> bool:
    """The running sum passed a multiple of the threshold with this value."""
    return total // W4_THRESHOLD != (total - value) // W4_THRESHOLD


class RunningSum(KeyedProcessFunction):
    def open(self, runtime_context: Any) -> None:
        self.total = runtime_context.get_state(ValueStateDescriptor("total"))

    def process_element(self, value: tuple, ctx: Any) -> Any:
        t = (self.total.value() or 0.0) + value[1]
        self.total.update(t)
        if crossed(t, value[1]):
            yield value[0], t


def build_job(watermarks: bool = False) -> Any:
    """The fraud shape; ``watermarks``: with a bounded-out-of-orderness strategy (100 ms, the
    event's ts) after the source, so each push also checks for a due periodic emission."""
    env = StreamExecutionEnvironment.get_execution_environment()
    env.set_parallelism(1)
    stream = env.from_push_source("transactions")
    if watermarks:
        stream = stream.assign_timestamps_and_watermarks(
            WatermarkStrategy.for_bounded_out_of_orderness(Duration.of_millis(100)).with_timestamp_assigner(
                lambda e, _: e[2]
            )
        )
    stream.map(parse).key_by(lambda e: e[0]).process(RunningSum()).map(alert)
    return env.execute_embedded("L1 embedded fraud shape")


def time_embedded(events: list, watermarks: bool = False, pause_s: float = 0.0) -> tuple[np.ndarray, int]:
    """Per-push latency; ``pause_s``: sleep between pushes (sparse traffic, as a service sees)."""
    job = build_job(watermarks)
    push = job.push
    clock = time.perf_counter_ns
    sleep = time.sleep
    lat = np.empty(len(events), dtype=np.int64)
    alerts = 0
    for i, e in enumerate(events):
        t0 = clock()
        out = push(e)
        t1 = clock()
        lat[i] = t1 - t0
        alerts += len(out)
        if pause_s:
            sleep(pause_s)
    job.close()
    return lat, alerts


def time_pure_python(events: list, pause_s: float = 0.0) -> tuple[np.ndarray, int]:
    """The same three functions called directly, a dict holding the per-key sums."""
    state: dict = {}
    clock = time.perf_counter_ns
    sleep = time.sleep
    lat = np.empty(len(events), dtype=np.int64)
    alerts = 0
    for i, e in enumerate(events):
        t0 = clock()
        k, v = parse(e)
        t = state.get(k, 0.0) + v
        state[k] = t
        out = [alert((k, t))] if crossed(t, v) else []
        t1 = clock()
        lat[i] = t1 - t0
        alerts += len(out)
        if pause_s:
            sleep(pause_s)
    return lat, alerts


def time_clock(n: int) -> np.ndarray:
    clock = time.perf_counter_ns
    lat = np.empty(n, dtype=np.int64)
    for i in range(n):
        t0 = clock()
        t1 = clock()
        lat[i] = t1 - t0
    return lat


def time_snapshots(events: list, repeats: int) -> dict[str, Any]:
    """What a savepoint costs the pusher, with the state of ``events`` (10k keys): the blocking
    ``snapshot(path)``, the ``snapshot_async(path)`` call, and pushes while its files are written."""
    import tempfile

    job = build_job()
    for e in events:
        job.push(e)
    target = tempfile.mkdtemp(prefix="flinkcore-embedded-bench-")
    clock = time.perf_counter_ns
    sync_ms, call_ms, write_ms, during = [], [], [], []
    for _ in range(repeats):
        t0 = clock()
        job.snapshot(target)
        sync_ms.append((clock() - t0) / 1e6)
        t0 = clock()
        future = job.snapshot_async(target)
        t1 = clock()
        i = 0
        while not future.done():
            s0 = clock()
            job.push(events[i % len(events)])
            during.append(clock() - s0)
            i += 1
        future.result()
        call_ms.append((t1 - t0) / 1e6)
        write_ms.append((clock() - t1) / 1e6)
    job.close()
    lat = np.array(during)
    return {
        "sync snapshot ms": round(statistics.median(sync_ms), 1),
        "snapshot_async call ms": round(statistics.median(call_ms), 1),
        "snapshot_async until durable ms": round(statistics.median(write_ms), 1),
        "pushes while writing": {
            "n": len(lat),
            **pct(lat),
            "max_us": float(lat.max() / 1000) if len(lat) else None,
        },
    }


def pct(lat: np.ndarray) -> dict[str, float]:
    p = np.percentile(lat.astype(np.float64), [50, 99, 99.9]) / 1000.0
    return {"p50_us": float(p[0]), "p99_us": float(p[1]), "p999_us": float(p[2])}


def summarize(runs: list[dict[str, float]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k in runs[0]:
        vals = [r[k] for r in runs]
        out[k] = round(statistics.median(vals), 3)
        out[k + "_spread"] = [round(min(vals), 3), round(max(vals), 3)]
    return out


def e2e(rate: int, n: int) -> dict[str, Any]:
    """The benchmark suite's L1 normal-run measurement (rate-limited source, default buffer timeout)."""
    from flinkcore.benchmarks import latency as suite

    ev = events_for("L1", n)
    lat, results, _ = suite.flinkcore_latency(ev.key.tolist(), ev.value.tolist(), rate)
    return {"rate": rate, "n": n, "results": results, **pct(np.asarray(lat))}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=200_000, help="pushes per repeat (after a warm-up)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--e2e", action="store_true", help="also the normal-run end-to-end latency at 100k/s")
    ap.add_argument("--e2e-n", type=int, default=200_000)
    ap.add_argument("--no-gc", action="store_true", help="disable the cyclic GC while timing (tail study)")
    ap.add_argument("--snapshots", action="store_true", help="also what savepoints cost the pusher")
    ap.add_argument(
        "--sparse",
        type=int,
        default=2000,
        help="also push this many events with a 1 ms sleep between them (a service's sparse traffic)",
    )
    args = ap.parse_args(argv)

    events = events_for("W4", args.n).tuples()
    warm = events[: min(20_000, args.n)]
    time_embedded(warm)
    time_pure_python(warm)
    time_embedded(warm, watermarks=True)
    results: dict[str, list] = {
        "embedded push": [],
        "embedded push, with a watermark strategy": [],
        "pure Python calls": [],
        "clock reads alone": [],
    }
    alert_counts = set()
    for _ in range(args.repeats):
        gc.collect()
        if args.no_gc:
            gc.disable()
        lat, a1 = time_embedded(events)
        results["embedded push"].append(pct(lat))
        lat, a2 = time_embedded(events, watermarks=True)
        results["embedded push, with a watermark strategy"].append(pct(lat))
        lat, a3 = time_pure_python(events)
        results["pure Python calls"].append(pct(lat))
        results["clock reads alone"].append(pct(time_clock(args.n)))
        gc.enable()
        alert_counts.add((a1, a2, a3))
    if len(alert_counts) != 1 or len({a for pair in alert_counts for a in pair}) != 1:
        print(f"alert counts disagree: {alert_counts}", file=sys.stderr)
        return 1
    if args.sparse:
        sparse = events[: args.sparse]
        results["embedded push, 1 ms idle between pushes"] = [pct(time_embedded(sparse, pause_s=0.001)[0])]
        results["pure Python calls, 1 ms idle between calls"] = [pct(time_pure_python(sparse, 0.001)[0])]
    report: dict[str, Any] = {
        "n": args.n,
        "repeats": args.repeats,
        "gc": "disabled while timing" if args.no_gc else "enabled",
        "alerts": alert_counts.pop()[0],
        "latency": {name: summarize(runs) for name, runs in results.items()},
    }
    if args.snapshots:
        report["snapshots"] = time_snapshots(events, args.repeats)
    if args.e2e:
        report["e2e_normal_run_100k"] = e2e(100_000, args.e2e_n)
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
