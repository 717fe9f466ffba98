"""PyFlink (apache-flink 2.3) running WORKLOADS.md's workloads; run in bench/peers/.venvs/pyflink.

Modes:
- ``process`` / ``thread``: DataStream jobs with Python UDFs (``python.execution-mode``),
  input ``from_collection(list of tuples)``; the last UDF counts what reaches it and writes its
  totals to a file in ``close()`` (in process mode it runs in a Python worker, not here).
- ``sql``: Flink SQL with no Python UDF, all in the JVM, reading the events from a CSV file
  (filesystem connector), a final global aggregate giving (results, checksum).

A PyFlink job pays for JVM start-up and job submission before the first record (12-35 s
here). That is measured separately: ``jvm_start_s`` is launching the gateway,
``first_job_s`` the first job (1000 events, class loading included), ``startup_s`` the same
small job run again; throughput is
``N / (wall(N) - startup_s)``, and ``events_per_s_e2e`` is ``N / wall(N)``.
The script must run with its venv's bin first on PATH: PyFlink starts its Python workers
with the ``python`` it finds there.
Usage: python pyflink_bench.py MODE WORKLOAD N; prints one JSON record.
"""

from __future__ import annotations

import json
import math
import os
import sys
import tempfile
import time

from common import Timer, emit, events_for, net_of_startup, record

SMALL = 1000


class _Counter:
    """Last UDF of a DataStream job: counts and sums, writes totals in close()."""


def datastream_job(mode: str, workload: str, events, out_path: str):
    from pyflink.common import Configuration, Duration, Types, WatermarkStrategy
    from pyflink.common.time import Time
    from pyflink.common.watermark_strategy import TimestampAssigner
    from pyflink.datastream import StreamExecutionEnvironment
    from pyflink.datastream.functions import FlatMapFunction, KeyedProcessFunction, RuntimeContext
    from pyflink.datastream.state import ValueStateDescriptor
    from pyflink.datastream.window import EventTimeSessionWindows, TumblingEventTimeWindows

    class Count(FlatMapFunction):
        def __init__(self, path, field):
            self.path, self.field = path, field

        def open(self, runtime_context: RuntimeContext):
            self.results, self.checksum = 0, 0.0

        def flat_map(self, value):
            self.results += 1
            self.checksum += value[self.field]
            return iter(())

        def close(self):
            with open(self.path, "w") as f:
                json.dump([self.results, self.checksum], f)

    class EventTime(TimestampAssigner):
        def extract_timestamp(self, value, record_timestamp):
            return value[2]

    class RunningSum(KeyedProcessFunction):
        def open(self, runtime_context: RuntimeContext):
            self.total = runtime_context.get_state(ValueStateDescriptor("total", Types.DOUBLE()))

        def process_element(self, value, ctx):
            old = self.total.value() or 0.0
            new = old + value[1]
            self.total.update(new)
            if math.floor(new / 10.0) > math.floor(old / 10.0):
                yield value[0], new

    config = Configuration()
    config.set_string("python.execution-mode", mode)
    env = StreamExecutionEnvironment.get_execution_environment(config)
    env.set_parallelism(1)
    row = Types.TUPLE([Types.LONG(), Types.DOUBLE(), Types.LONG()])
    ds = env.from_collection(events, type_info=row)
    wm = WatermarkStrategy.for_bounded_out_of_orderness(Duration.of_millis(100)).with_timestamp_assigner(
        EventTime()
    )
    if workload == "W1":
        out = ds.map(lambda e: (e[0], e[1] * 2.0, e[2]), output_type=row).filter(lambda e: e[0] % 2 == 0)
        field = 1
    elif workload in ("W2", "W2-sparse"):
        t3 = Types.TUPLE([Types.LONG(), Types.DOUBLE(), Types.LONG()])
        out = (
            ds.assign_timestamps_and_watermarks(wm)
            .map(lambda e: (e[0], e[1], 1), output_type=t3)
            .key_by(lambda e: e[0], key_type=Types.LONG())
            .window(TumblingEventTimeWindows.of(Time.seconds(1)))
            .reduce(lambda a, b: (a[0], a[1] + b[1], a[2] + b[2]), output_type=t3)
        )
        field = 1
    elif workload == "W3":
        t2 = Types.TUPLE([Types.LONG(), Types.LONG()])
        out = (
            ds.assign_timestamps_and_watermarks(wm)
            .map(lambda e: (e[0], 1), output_type=t2)
            .key_by(lambda e: e[0], key_type=Types.LONG())
            .window(EventTimeSessionWindows.with_gap(Time.milliseconds(500)))
            .reduce(lambda a, b: (a[0], a[1] + b[1]), output_type=t2)
        )
        field = 1
    elif workload == "W4":
        out = ds.key_by(lambda e: e[0], key_type=Types.LONG()).process(
            RunningSum(), output_type=Types.TUPLE([Types.LONG(), Types.DOUBLE()])
        )
        field = 1
    else:
        raise SystemExit(f"unknown workload {workload}")
    out.flat_map(Count(out_path, field)).print()
    return env


SQL = {
    "W1": "SELECT COUNT(*), SUM(v) FROM (SELECT `key`, `value` * 2.0 AS v FROM events) WHERE `key` % 2 = 0",
    "W2": (
        "SELECT COUNT(*), SUM(s) FROM (SELECT `key`, window_start, SUM(`value`) AS s, COUNT(*) AS c "
        "FROM TABLE(TUMBLE(TABLE events, DESCRIPTOR(rt), INTERVAL '1' SECOND)) "
        "GROUP BY `key`, window_start, window_end)"
    ),
    "W3": (
        "SELECT COUNT(*), SUM(c) FROM (SELECT `key`, window_start, COUNT(*) AS c "
        "FROM TABLE(SESSION(TABLE events PARTITION BY `key`, DESCRIPTOR(rt), INTERVAL '0.5' SECOND)) "
        "GROUP BY `key`, window_start, window_end)"
    ),
}
SQL["W2-sparse"] = SQL["W2"]


def sql_run(t_env, workload: str, csv_path: str) -> tuple[int, float]:
    t_env.execute_sql("DROP TEMPORARY TABLE IF EXISTS events")
    t_env.execute_sql(
        "CREATE TEMPORARY TABLE events (`key` BIGINT, `value` DOUBLE, ts BIGINT, "
        "rt AS TO_TIMESTAMP_LTZ(ts, 3), WATERMARK FOR rt AS rt - INTERVAL '0.1' SECOND) "
        f"WITH ('connector' = 'filesystem', 'path' = '{csv_path}', 'format' = 'csv')"
    )
    last = None
    with t_env.execute_sql(SQL[workload]).collect() as rows:
        for r in rows:
            last = r  # a changelog of the global aggregate: the last row is the final value
    return int(last[0]), float(last[1] or 0.0)


def write_csv(ev, path):
    import numpy as np

    with open(path, "w") as f:
        np.savetxt(f, np.column_stack([ev.key, ev.value, ev.ts]), fmt=["%d", "%.17g", "%d"], delimiter=",")


def main() -> None:
    mode, workload, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
    from importlib.metadata import version

    ev = events_for(workload, n)
    small = events_for(workload, SMALL)
    tmp = tempfile.mkdtemp(prefix="pyflink-bench-")
    t0 = time.perf_counter()
    if mode == "sql":
        from pyflink.table import EnvironmentSettings, TableEnvironment

        t_env = TableEnvironment.create(EnvironmentSettings.in_streaming_mode())
        jvm_start = time.perf_counter() - t0
        cfg = t_env.get_config()
        cfg.set("parallelism.default", "1")
        cfg.set("table.exec.mini-batch.enabled", "true")
        cfg.set("table.exec.mini-batch.allow-latency", "1 s")
        cfg.set("table.exec.mini-batch.size", "10000")
        paths = {}
        for name, e in (("small", small), ("full", ev)):
            paths[name] = os.path.join(tmp, f"{name}.csv")
            write_csv(e, paths[name])
        with Timer() as t1:
            sql_run(t_env, workload, paths["small"])
        with Timer() as ts:
            sql_run(t_env, workload, paths["small"])
        with Timer() as t:
            results, checksum = sql_run(t_env, workload, paths["full"])
        system, style, inp = (
            f"flink sql {version('apache-flink')}",
            "sql (JVM only)",
            "CSV file, filesystem connector",
        )
    else:
        from pyflink.datastream import StreamExecutionEnvironment

        StreamExecutionEnvironment.get_execution_environment()  # launches the JVM gateway
        jvm_start = time.perf_counter() - t0
        out_small, out_full = os.path.join(tmp, "small.json"), os.path.join(tmp, "full.json")
        env = datastream_job(mode, workload, small.tuples(), out_small)
        with Timer() as t1:
            env.execute(f"{workload} small")
        env = datastream_job(mode, workload, small.tuples(), out_small)
        with Timer() as ts:
            env.execute(f"{workload} small")
        env = datastream_job(mode, workload, ev.tuples(), out_full)  # from_collection: before the clock
        with Timer() as t:
            env.execute(f"{workload} full")
        with open(out_full) as f:
            results, checksum = json.load(f)
        system = f"pyflink {version('apache-flink')}"
        style, inp = f"udf ({mode} mode)", "from_collection(list of tuples)"
    net_wall, net_cpu, note = net_of_startup(t, ts)
    emit(
        record(
            workload,
            system,
            style,
            n,
            [net_wall],
            [net_cpu],
            results,
            checksum,
            t.rss,
            ev,
            input=inp,
            jvm_start_s=round(jvm_start, 2),
            first_job_s=round(t1.wall, 2),
            startup_s=round(ts.wall, 2),
            wall_total_s=t.wall,
            events_per_s_e2e=n / t.wall,
        )
    )


if __name__ == "__main__":
    main()
