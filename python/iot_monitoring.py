"""IoT monitoring: per-sensor alerts on sustained overheating and on sensors that go silent.

Readings ``(sensor, temperature, ts)`` are generated up front (one reading per sensor every
100 ms of event time; a few sensors fail and stop reporting) and replayed as a stream. Per
sensor, a KeyedProcessFunction keeps the last readings in ListState and raises OVERHEAT when
three readings in a row are above the limit; an event-time timer one second after the last
reading raises SILENT. Watermarks are bounded out-of-orderness, so the silent alert fires on
event time, not on wall-clock time.
When the (bounded) data ends, the maximum watermark fires every pending timer, so every sensor
still reporting is then SILENT too — exactly what Flink does at the end of a bounded input.

Run: ``python python/iot_monitoring.py [N_READINGS]``.
"""

from __future__ import annotations

import sys

from flinkcore.common import Duration, Types, WatermarkStrategy
from flinkcore.datastream import KeyedProcessFunction, StreamExecutionEnvironment
from flinkcore.datastream.state import ListStateDescriptor, ValueStateDescriptor

SENSORS = 50
LIMIT = 80.0
SILENCE_MS = 1_000
FAILING = {7, 23, 41}  # these sensors stop reporting after 2 s of event time


def reading(i: int) -> tuple[int, float, int] | None:
    """The i-th reading: sensor i % SENSORS at (i // SENSORS) * 100 ms; None once a sensor failed."""
    sensor, step = i % SENSORS, i // SENSORS
    ts = step * 100
    if sensor in FAILING and ts >= 2_000:
        return None
    # a slow sine-like wave per sensor; sensors 3 and 5 run hot for a while
    base = 60.0 + 15.0 * (((step + sensor * 7) % 40) / 20.0 - 1.0) ** 2
    if sensor in (3, 5) and 30 <= step < 36:
        base += 30.0
    return sensor, round(base, 1), ts


class SensorMonitor(KeyedProcessFunction):
    def open(self, runtime_context):
        self.recent = runtime_context.get_list_state(ListStateDescriptor("recent", Types.DOUBLE()))
        self.deadline = runtime_context.get_state(ValueStateDescriptor("deadline", Types.LONG()))

    def process_element(self, value, ctx):
        sensor, temperature, ts = value
        recent = [*self.recent.get(), temperature][-3:]
        self.recent.update(recent)
        if len(recent) == 3 and all(t > LIMIT for t in recent):
            yield "OVERHEAT", sensor, ts
            self.recent.clear()
        old = self.deadline.value()
        if old is not None:
            ctx.timer_service().delete_event_time_timer(old)
        self.deadline.update(ts + SILENCE_MS)
        ctx.timer_service().register_event_time_timer(ts + SILENCE_MS)

    def on_timer(self, timestamp, ctx):
        yield "SILENT", ctx.get_current_key(), timestamp
        self.deadline.clear()


def build(env: StreamExecutionEnvironment, n: int):
    data = [r for r in map(reading, range(n)) if r is not None]
    readings = env.from_collection(data).assign_timestamps_and_watermarks(
        WatermarkStrategy.for_bounded_out_of_orderness(Duration.of_millis(200)).with_timestamp_assigner(
            lambda r, _: r[2]
        )
    )
    return readings.key_by(lambda r: r[0]).process(SensorMonitor())


def main(n: int = SENSORS * 100) -> list:
    env = StreamExecutionEnvironment.get_execution_environment()
    alerts = sorted(build(env, n).execute_and_collect(), key=lambda a: (a[2], a[1]))
    end = max(ts for _, _, ts in alerts) if alerts else 0
    for kind, sensor, ts in alerts:
        if ts < end:
            print(f"{kind:<8} sensor={sensor:<3} t={ts} ms")
    print(f"end of data: {sum(1 for a in alerts if a[2] == end)} sensors silent at t={end} ms")
    return alerts


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else SENSORS * 100)
