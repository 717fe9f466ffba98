"""The same keyed job gives the same results on the heap and the LMDB state backend."""

import pytest

from flinkcore.common import Configuration, Types, WatermarkStrategy
from flinkcore.datastream import KeyedProcessFunction, StreamExecutionEnvironment
from flinkcore.datastream.state import ListStateDescriptor, MapStateDescriptor, ValueStateDescriptor
from flinkcore.datastream.state_backend import EmbeddedLmdbStateBackend, HashMapStateBackend


class Sessionize(KeyedProcessFunction):
    """Counts, lists and maps per key, reports after every element, totals on a final timer."""

    def open(self, ctx):
        self.count = ctx.get_state(ValueStateDescriptor("count", Types.LONG()))
        self.items = ctx.get_list_state(ListStateDescriptor("items", Types.LONG()))
        self.last = ctx.get_map_state(MapStateDescriptor("last", Types.STRING(), Types.LONG()))

    def process_element(self, value, ctx):
        previous = self.last.get("v")
        self.count.update((self.count.value() or 0) + 1)
        self.items.add(value[1])
        self.last.put("v", value[1])
        ctx.timer_service().register_event_time_timer(10**9)
        yield "element", ctx.get_current_key(), self.count.value(), previous

    def on_timer(self, timestamp, ctx):
        yield "timer", ctx.get_current_key(), self.count.value(), sum(self.items.get())
        self.count.clear()
        self.items.clear()
        self.last.clear()


def _run(backend, tmp_path, parallelism):
    env = StreamExecutionEnvironment.get_execution_environment()
    env.set_parallelism(parallelism)
    if backend == "lmdb":
        env.set_state_backend(EmbeddedLmdbStateBackend(str(tmp_path / "lmdb")))
    elif backend == "heap":
        env.set_state_backend(HashMapStateBackend())
    else:
        env.configure(Configuration().set_string("state.backend.type", backend))
    data = [(k % 7, k, k * 3) for k in range(2000)]
    out = (
        env.from_collection(data)
        .assign_timestamps_and_watermarks(
            WatermarkStrategy.for_monotonous_timestamps().with_timestamp_assigner(lambda e, _: e[2])
        )
        .key_by(lambda e: e[0])
        .process(Sessionize())
        .execute_and_collect()
    )
    return sorted(out)


@pytest.mark.parametrize("parallelism", [1, 2])
def test_heap_and_lmdb_agree(tmp_path, parallelism):
    heap = _run("heap", tmp_path, parallelism)
    timers = [r for r in heap if r[0] == "timer"]
    assert len(heap) == 2007 and len(timers) == 7
    assert sum(r[2] for r in timers) == 2000 and sum(r[3] for r in timers) == sum(range(2000))
    assert _run("lmdb", tmp_path, parallelism) == heap
    assert _run("lmdb", tmp_path / "conf", parallelism) == heap  # state.backend.type: lmdb
