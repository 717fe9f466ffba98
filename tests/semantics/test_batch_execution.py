"""BATCH execution (Flink's semantics): keyed input is processed key by key, each key's records in
timestamp order, and a key's timers fire when its records are done — so an order-dependent keyed
function gives the same result at any parallelism, however the parallel sources interleave."""

import pytest

from flinkcore.common import Duration, WatermarkStrategy
from flinkcore.datastream import KeyedProcessFunction, RuntimeExecutionMode, StreamExecutionEnvironment
from flinkcore.datastream.connectors import DataGeneratorSource
from flinkcore.datastream.state import ValueStateDescriptor


def event(i: int) -> tuple[int, int, int]:
    """(key, value, ts): timestamps run backwards within each block of 10, so arrival order is
    not timestamp order."""
    block, pos = divmod(i, 10)
    return i % 5, i, block * 100 + (9 - pos) * 10


class Rises(KeyedProcessFunction):
    """Counts how often a key's value increases in timestamp order; reports it on a timer."""

    def open(self, ctx):
        self.last = ctx.get_state(ValueStateDescriptor("last"))
        self.rises = ctx.get_state(ValueStateDescriptor("rises"))

    def process_element(self, value, ctx):
        last = self.last.value()
        if last is not None and value[1] > last:
            self.rises.update((self.rises.value() or 0) + 1)
        self.last.update(value[1])
        ctx.timer_service().register_event_time_timer(10**9)
        return None

    def on_timer(self, timestamp, ctx):
        yield ctx.get_current_key(), self.rises.value() or 0


def _reference(n: int) -> list:
    per_key: dict = {}
    for i in range(n):
        k, v, ts = event(i)
        per_key.setdefault(k, []).append((ts, v))
    out = []
    for k, rs in per_key.items():
        values = [v for _, v in sorted(rs, key=lambda r: r[0])]
        out.append((k, sum(1 for a, b in zip(values, values[1:], strict=False) if b > a)))
    return sorted(out)


@pytest.mark.parametrize("parallelism", [1, 2, 3])
def test_batch_keyed_processing_follows_timestamps_at_any_parallelism(parallelism):
    env = StreamExecutionEnvironment.get_execution_environment()
    env.set_parallelism(parallelism)
    env.set_runtime_mode(RuntimeExecutionMode.BATCH)
    out = (
        env.from_source(
            DataGeneratorSource(event, count=2_000),
            WatermarkStrategy.for_bounded_out_of_orderness(Duration.of_millis(100)).with_timestamp_assigner(
                lambda e, _: e[2]
            ),
            "events",
        )
        .key_by(lambda e: e[0])
        .process(Rises())
        .execute_and_collect()
    )
    assert sorted(out) == _reference(2_000)
