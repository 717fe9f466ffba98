"""W3 (udf style) on a long stream: does memory stay flat as sessions close?

A DataGeneratorSource makes W3-shaped events for as long as asked (a million events per second
of event time, 10% up to 50 ms out of order, 100k keys active at a time), the job is W3's udf job
(TimestampAssigner class, key_by lambda, session windows with a 500 ms gap, an AggregateFunction
counting), and the resident set size is sampled every million events. Every second of event time
uses 100k *new* keys (a user id space that keeps moving), so each second's sessions close half a
second after it: with closed sessions freed the RSS stays level; a system that keeps them
(Bytewax's W3, per WORKLOADS.md) grows by 100k sessions a second. On W3's own data keys never
go quiet for 500 ms, so nothing would close and the test would prove nothing.

    taskset -c 0 .venv/bin/python bench/windows/udf_sessions_memory.py 20000000
"""

from __future__ import annotations

import os
import sys
import time

from flinkcore.benchmarks.data import NKEYS_W3, OUT_OF_ORDERNESS_MS, SESSION_GAP_MS
from flinkcore.benchmarks.jobs import _count, _sink_function

PAGE = os.sysconf("SC_PAGE_SIZE")


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * PAGE / 1e6


def main(n: int) -> None:
    from flinkcore.common import Duration, Time, WatermarkStrategy
    from flinkcore.common.watermark_strategy import TimestampAssigner
    from flinkcore.datastream import StreamExecutionEnvironment
    from flinkcore.datastream.connectors.datagen import DataGeneratorSource
    from flinkcore.datastream.window import EventTimeSessionWindows

    samples: list[tuple[int, float, float]] = []
    t0 = time.process_time()

    def event(i: int) -> tuple[int, float, int]:
        if i % 1_000_000 == 0:
            samples.append((i, rss_mb(), time.process_time() - t0))
        h = (i * 2654435761) & 0xFFFFFFFF  # a fixed pseudo-random draw per index
        late = h % 10 == 0
        key = h % NKEYS_W3 + NKEYS_W3 * (i // 1_000_000)  # 100k fresh keys per second
        return key, (h >> 8) / 2**24, i // 1000 - (h >> 4) % 51 * late

    class EventTime(TimestampAssigner):
        def extract_timestamp(self, value, record_timestamp):
            return value[2]

    env = StreamExecutionEnvironment.get_execution_environment()
    env.set_parallelism(1)
    sink = _sink_function(None)
    (
        env.from_source(
            DataGeneratorSource(event, count=n),
            WatermarkStrategy.for_bounded_out_of_orderness(
                Duration.of_millis(OUT_OF_ORDERNESS_MS)
            ).with_timestamp_assigner(EventTime()),
            "W3 events",
        )
        .key_by(lambda e: e[0])
        .window(EventTimeSessionWindows.with_gap(Time.milliseconds(SESSION_GAP_MS)))
        .aggregate(_count())
        .add_sink(sink)
    )
    env.execute("W3 udf, long stream")
    cpu = time.process_time() - t0
    rate = n / cpu / 1e6
    print(f"{n} events, {sink.results} sessions, checksum {sink.checksum:.0f}, {rate:.3f}M events/CPU-s")
    print("events      RSS MB   CPU s")
    for i, mb, c in samples:
        print(f"{i:>10,d}  {mb:7.1f}  {c:6.1f}")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 20_000_000)
