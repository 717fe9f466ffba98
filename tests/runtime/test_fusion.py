"""Fused map/filter chains behave exactly like the unfused operators."""

import pytest

from flinkcore.common import WatermarkStrategy
from flinkcore.datastream import SinkFunction, StreamExecutionEnvironment
from flinkcore.runtime.executor import Job
from flinkcore.runtime.operators.base import UserCodeError


class Collect(SinkFunction):
    def __init__(self):
        self.got = []

    def invoke(self, value, context):
        self.got.append((value, context.timestamp()))


def _run(build, fuse):
    env = StreamExecutionEnvironment.get_execution_environment()
    sink = Collect()
    build(env).add_sink(sink)
    graph = env.get_stream_graph("t", clear_transformations=True)
    graph.config["fuse_operators"] = fuse
    job = Job(graph)
    job.run()
    fused = [
        op.name
        for insts in job.operators.values()
        for op in insts
        if getattr(getattr(op, "process_batch", None), "__name__", "") == "fused"
    ]
    return sink.got, fused


def _with_timestamps(env):
    return (
        env.from_collection(list(range(3000)))
        .assign_timestamps_and_watermarks(
            WatermarkStrategy.for_monotonous_timestamps().with_timestamp_assigner(lambda e, _: e * 2)
        )
        .map(lambda x: x + 1)
        .filter(lambda x: x % 3)
        .map(lambda x: (x, x * x))
        .filter(lambda t: t[0] % 2)
    )


def _without_timestamps(env):
    return env.from_collection(list(range(3000))).map(lambda x: x * 2).filter(lambda x: x % 3).map(str)


@pytest.mark.parametrize("build", [_with_timestamps, _without_timestamps])
def test_fused_chain_gives_the_same_records_and_timestamps(build):
    plain, none = _run(build, fuse=False)
    fused, names = _run(build, fuse=True)
    assert none == [] and names  # the chain was fused
    assert fused == plain and len(plain) > 500


def test_fused_chain_failure_names_the_stage_and_its_input():
    def build(env):
        return (
            env.from_collection([1, 2, 3])
            .map(lambda x: x * 10)
            .name("times ten")
            .filter(lambda x: 1 // (x - 20))
        )

    env = StreamExecutionEnvironment.get_execution_environment()
    build(env).name("inverse").add_sink(Collect())
    with pytest.raises(
        UserCodeError, match=r"operator 'inverse' failed on record 20: ZeroDivisionError"
    ) as e:
        env.execute()
    assert isinstance(e.value.__cause__, ZeroDivisionError)


def test_keyed_operators_are_not_fused():
    def build(env):
        return env.from_collection([1, 2, 3]).key_by(lambda x: x).map(lambda x: x).filter(lambda x: True)

    got, names = _run(build, fuse=True)
    # the keyed map runs on its own (it sets the key per record); the filter -> sink after it fuse
    assert names == ["Filter"] and sorted(v for v, _ in got) == [1, 2, 3]


def _assigner_map_keyed(env):
    """A timestamp assigner and a map before a keyed operator that is not a compiled window (the
    keyed exchange's writer at p > 1): the head fusion (window_udf.head_batch)."""
    from flinkcore.common import Duration

    strategy = WatermarkStrategy.for_bounded_out_of_orderness(Duration.of_millis(5)).with_timestamp_assigner(
        lambda e, _: e[1]
    )
    events = [(i % 7, (i * 37) % 1000 + i) for i in range(3000)]
    return (
        env.from_collection(events)
        .assign_timestamps_and_watermarks(strategy)
        .map(lambda e: (e[0], e[1], 1))
        .key_by(lambda e: e[0])
        .reduce(lambda a, b: (a[0], max(a[1], b[1]), a[2] + b[2]))
    )


def test_assigner_and_map_before_a_keyed_operator_fuse_with_the_same_records_and_timestamps():
    plain, none = _run(_assigner_map_keyed, fuse=False)
    fused, names = _run(_assigner_map_keyed, fuse=True)
    assert none == [] and "Timestamps/Watermarks" in names
    assert fused == plain and len(plain) == 3000


@pytest.mark.parametrize("where", ["assigner", "map"])
def test_head_fusion_failure_names_the_assigner_or_the_map(where):
    def assign(e, _):
        if where == "assigner" and e == 7:
            raise KeyError("no timestamp")
        return e

    env = StreamExecutionEnvironment.get_execution_environment()
    (
        env.from_collection(list(range(10)))
        .assign_timestamps_and_watermarks(
            WatermarkStrategy.for_monotonous_timestamps().with_timestamp_assigner(assign)
        )
        .name("stamps")
        .map(lambda x: 1 // (x - 7) if where == "map" else x)
        .name("inverse")
        .key_by(lambda x: x)
        .reduce(lambda a, b: a)
        .add_sink(Collect())
    )
    if where == "assigner":  # the unfused operators' messages
        want = r"operator 'stamps' failed on record \(timestamp assigner\) 7: KeyError"
    else:
        want = r"operator 'inverse' failed on record 7: ZeroDivisionError"
    with pytest.raises(UserCodeError, match=want):
        env.execute()


def test_unfused_assigner_failure_names_its_record():
    """The unfused assigner's list comprehension does not leak its loop variable: the error
    once named the record None."""

    def assign(e, _):
        if e == 7:
            raise KeyError("no timestamp")
        return e

    def build(env):
        return (
            env.from_collection(list(range(10)))
            .assign_timestamps_and_watermarks(
                WatermarkStrategy.for_monotonous_timestamps().with_timestamp_assigner(assign)
            )
            .name("stamps")
            .key_by(lambda x: x)
            .reduce(lambda a, b: a)
        )

    with pytest.raises(
        UserCodeError, match=r"operator 'stamps' failed on record \(timestamp assigner\) 7: KeyError"
    ):
        _run(build, fuse=False)
