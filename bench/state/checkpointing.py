"""What checkpointing costs: throughput with and without checkpoints every second, and how long
each checkpoint pauses the task (sync) and takes to write (async), for both state backends.

Workloads (../shared/WORKLOADS.md data, with ``--keys`` keys, 1M by default so the state is big):
  W4  a KeyedProcessFunction with a ValueState running sum per key (state in the backend)
  W2  keyed 1 s tumbling windows, reduce (window state)

    taskset -c 0 .venv/bin/python bench/state/checkpointing.py --n 2000000 --keys 1000000
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time

from flinkcore.benchmarks.data import generate
from flinkcore.common import Duration, Types, WatermarkStrategy
from flinkcore.common.time import Time
from flinkcore.datastream import EmbeddedLmdbStateBackend, HashMapStateBackend, StreamExecutionEnvironment
from flinkcore.datastream.functions import KeyedProcessFunction, SinkFunction
from flinkcore.datastream.state import ValueStateDescriptor
from flinkcore.datastream.window import TumblingEventTimeWindows


class Count(SinkFunction):
    def __init__(self):
        self.n = 0

    def invoke(self, value, context):
        self.n += 1


class RunningSum(KeyedProcessFunction):
    def open(self, runtime_context):
        self.total = runtime_context.get_state(ValueStateDescriptor("total", Types.DOUBLE()))

    def process_element(self, value, ctx):
        new = (self.total.value() or 0.0) + value[1]
        self.total.update(new)
        if new > 10.0:
            self.total.clear()
            yield value[0], new


def build(env, workload, events, sink):
    stream = env.from_collection(events, type_info=Types.TUPLE([Types.LONG(), Types.DOUBLE(), Types.LONG()]))
    if workload == "W4":
        stream.key_by(lambda e: e[0]).process(RunningSum()).add_sink(sink)
    else:
        (
            stream.assign_timestamps_and_watermarks(
                WatermarkStrategy.for_bounded_out_of_orderness(
                    Duration.of_millis(100)
                ).with_timestamp_assigner(lambda e, _: e[2])
            )
            .key_by(lambda e: e[0])
            .window(TumblingEventTimeWindows.of(Time.seconds(1)))
            .reduce(lambda a, b: (a[0], a[1] + b[1], a[2]))
            .add_sink(sink)
        )


def run(workload, backend, events, interval_ms):
    with tempfile.TemporaryDirectory(prefix="flinkcore-chk-bench-") as tmp:
        env = StreamExecutionEnvironment.get_execution_environment()
        env.set_state_backend(
            EmbeddedLmdbStateBackend(tmp + "/lmdb") if backend == "lmdb" else HashMapStateBackend()
        )
        if interval_ms:
            env.enable_checkpointing(interval_ms)
            env.get_checkpoint_config().set_checkpoint_storage_dir(tmp + "/chk")
        sink = Count()
        build(env, workload, events, sink)
        client = env.execute_async(f"{workload} {backend}")
        wall, cpu = time.perf_counter(), time.process_time()
        client.get_job_execution_result().result()
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        history = client._job.coordinator.history if client._job.coordinator else []
        return {
            "workload": workload,
            "backend": backend,
            "checkpoint_interval_ms": interval_ms,
            "events_per_s": len(events) / wall,
            "cpu_s": cpu,
            "results": sink.n,
            "checkpoints": len(history),
            "sync_ms_median": statistics.median(h.sync_ms for h in history) if history else None,
            "sync_ms_max": max(h.sync_ms for h in history) if history else None,
            "async_ms_median": statistics.median(h.async_ms for h in history) if history else None,
            "size_mb_max": max(h.size_bytes for h in history) / 1e6 if history else None,
        }


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=2_000_000)
    parser.add_argument("--keys", type=int, default=1_000_000)
    parser.add_argument("--interval", type=int, default=1_000, help="checkpoint interval, ms")
    parser.add_argument("--workloads", default="W4,W2")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    ev = generate(args.n, nkeys=args.keys)
    events = list(zip(ev.key.tolist(), ev.value.tolist(), ev.ts.tolist(), strict=True))
    rows = []
    for workload in args.workloads.split(","):
        for backend in ("heap", "lmdb"):
            base = run(workload, backend, events, 0)
            chk = run(workload, backend, events, args.interval)
            assert base["results"] == chk["results"], (base, chk)
            chk["throughput_vs_no_checkpoints"] = chk["events_per_s"] / base["events_per_s"]
            rows += [base, chk]
            if args.json:
                print(json.dumps(base))
                print(json.dumps(chk))
            else:
                sync = f"{chk['sync_ms_median'] or 0:.0f} ms (max {chk['sync_ms_max'] or 0:.0f})"
                print(
                    f"{workload} {backend:4s}: {base['events_per_s'] / 1e3:7.0f}k ev/s without, "
                    f"{chk['events_per_s'] / 1e3:7.0f}k ev/s with checkpoints every {args.interval} ms "
                    f"({chk['throughput_vs_no_checkpoints']:.2f}x); {chk['checkpoints']} checkpoints, "
                    f"sync pause median {sync}, write median {chk['async_ms_median'] or 0:.0f} ms, "
                    f"up to {chk['size_mb_max'] or 0:.1f} MB",
                    flush=True,
                )


if __name__ == "__main__":
    main()
