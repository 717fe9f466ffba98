"""Flink SQL (apache-flink 2.3, all in the JVM) on the Nexmark queries flinkcore runs.

The same generated persons / auctions / bids as flinkcore's ``nexmark`` workload (the generator
is loaded by path), written to CSV files before the clock starts and read with the filesystem
connector; event time from ``date_time`` with a zero-delay watermark (the streams are in order).
Each query ends in a global aggregate giving (results, checksum) as flinkcore's sink computes
them, checked against the Python reference. Start-up is measured as in pyflink_bench.py: the
same query on a small input first; throughput excludes it.
Usage: python pyflink_nexmark.py sql nexmark N; prints one JSON record per query.
"""

from __future__ import annotations

import csv
import os
import sys
import tempfile
import time

from common import BENCH_PKG, Timer, emit, load_module, net_of_startup

nexmark = load_module(str(BENCH_PKG / "nexmark.py"), "nexmark")

TABLES = {
    "person": (
        [
            "id BIGINT",
            "name STRING",
            "email STRING",
            "credit_card STRING",
            "city STRING",
            "state STRING",
            "date_time BIGINT",
        ],
        "persons",
    ),
    "auction": (
        [
            "id BIGINT",
            "item_name STRING",
            "initial_bid BIGINT",
            "reserve BIGINT",
            "date_time BIGINT",
            "expires BIGINT",
            "seller BIGINT",
            "category BIGINT",
        ],
        "auctions",
    ),
    "bid": (
        [
            "auction BIGINT",
            "bidder BIGINT",
            "price BIGINT",
            "channel STRING",
            "url STRING",
            "date_time BIGINT",
        ],
        "bids",
    ),
}

_HOP = "TABLE(HOP(TABLE bid, DESCRIPTOR(rt), INTERVAL '2' SECOND, INTERVAL '10' SECOND))"
QUERIES = {
    "q0": "SELECT COUNT(*), SUM(price) FROM (SELECT auction, bidder, price, date_time FROM bid)",
    "q1": "SELECT COUNT(*), SUM(p) FROM (SELECT auction, CAST(price AS DOUBLE) * 0.908 AS p FROM bid)",
    "q2": "SELECT COUNT(*), SUM(price) FROM (SELECT auction, price FROM bid WHERE MOD(auction, 123) = 0)",
    "q5": f"""
        SELECT COUNT(*), SUM(A.auction + A.num) FROM (
          SELECT auction, COUNT(*) AS num, window_start AS ws FROM {_HOP}
          GROUP BY auction, window_start, window_end) A
        JOIN (
          SELECT MAX(num) AS maxn, ws FROM (
            SELECT COUNT(*) AS num, window_start AS ws FROM {_HOP}
            GROUP BY auction, window_start, window_end) GROUP BY ws) M
        ON A.ws = M.ws AND A.num >= M.maxn""",
    "q7": """
        SELECT COUNT(*), SUM(maxprice) FROM (
          SELECT window_start, MAX(price) AS maxprice
          FROM TABLE(TUMBLE(TABLE bid, DESCRIPTOR(rt), INTERVAL '10' SECOND))
          GROUP BY window_start, window_end)""",
    "q8": """
        SELECT COUNT(*), SUM(P.id) FROM (
          SELECT id, window_start AS ws FROM TABLE(TUMBLE(TABLE person, DESCRIPTOR(rt), INTERVAL '10' SECOND))
          GROUP BY id, window_start, window_end) P
        JOIN (
          SELECT seller, window_start AS ws
          FROM TABLE(TUMBLE(TABLE auction, DESCRIPTOR(rt), INTERVAL '10' SECOND))
          GROUP BY seller, window_start, window_end) A
        ON P.id = A.seller AND P.ws = A.ws""",
}


def write(nx, directory: str) -> None:
    for table, (_cols, attr) in TABLES.items():
        with open(os.path.join(directory, f"{table}.csv"), "w", newline="") as f:
            csv.writer(f).writerows(getattr(nx, attr))


def register(t_env, directory: str) -> None:
    for table, (cols, _attr) in TABLES.items():
        t_env.execute_sql(f"DROP TEMPORARY TABLE IF EXISTS {table}")
        t_env.execute_sql(
            f"CREATE TEMPORARY TABLE {table} ({', '.join(cols)}, rt AS TO_TIMESTAMP_LTZ(date_time, 3), "
            "WATERMARK FOR rt AS rt) "
            f"WITH ('connector' = 'filesystem', 'path' = '{directory}/{table}.csv', 'format' = 'csv')"
        )


def run(t_env, query: str) -> tuple[int, float]:
    last = None
    with t_env.execute_sql(QUERIES[query]).collect() as rows:
        for r in rows:
            last = r
    return int(last[0]), float(last[1] or 0.0)


def main() -> None:
    n = int(sys.argv[3])
    from importlib.metadata import version

    from pyflink.table import EnvironmentSettings, TableEnvironment

    nx, small = nexmark.generate(n), nexmark.generate(5000)
    dirs = {"full": tempfile.mkdtemp(prefix="nexmark-"), "small": tempfile.mkdtemp(prefix="nexmark-")}
    write(nx, dirs["full"])
    write(small, dirs["small"])
    t0 = time.perf_counter()
    t_env = TableEnvironment.create(EnvironmentSettings.in_streaming_mode())
    jvm_start = time.perf_counter() - t0
    cfg = t_env.get_config()
    cfg.set("parallelism.default", "1")
    cfg.set("table.exec.mini-batch.enabled", "true")
    cfg.set("table.exec.mini-batch.allow-latency", "1 s")
    cfg.set("table.exec.mini-batch.size", "10000")
    for query in QUERIES:
        register(t_env, dirs["small"])
        with Timer() as t1:
            run(t_env, query)
        with Timer() as ts:
            run(t_env, query)
        register(t_env, dirs["full"])
        with Timer() as t:
            results, checksum = run(t_env, query)
        exp = nexmark.reference(query, nx)
        events = nexmark.events_per_query(query, nx)
        wall, cpu, note = net_of_startup(t, ts)
        emit(
            {
                "workload": f"nexmark-{query}",
                "system": f"flink sql {version('apache-flink')}",
                "style": "sql (JVM only)",
                "n": events,
                "events_per_s": events / wall,
                "events_per_s_min": events / wall,
                "events_per_s_max": events / wall,
                "events_per_cpu_s": events / cpu,
                "wall_s": wall,
                "cpu_s": cpu,
                "repeats": 1,
                "results": results,
                "checksum": checksum,
                "peak_rss_mb": round(t.rss, 1),
                "status": "ok",
                "agrees": results == exp[0] and abs(checksum - exp[1]) <= 1e-9 * max(1.0, abs(exp[1])),
                "expected_results": exp[0],
                "expected_checksum": exp[1],
                "input": "CSV files, filesystem connector",
                "jvm_start_s": round(jvm_start, 2),
                "first_job_s": round(t1.wall, 2),
                "startup_s": round(ts.wall, 2),
                "wall_total_s": t.wall,
                "events_per_s_e2e": events / t.wall,
            }
        )


if __name__ == "__main__":
    main()
