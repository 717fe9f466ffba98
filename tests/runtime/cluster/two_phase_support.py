"""What the two-phase aggregation tests share: a punctuated watermark strategy over
``(key, value, ts, punctuate)`` records, an AggregateFunction whose result depends on every
element, and the harness that runs one job in one process, and in worker processes with
two-phase aggregation on and off, and compares the results. (Imported by name: pytest puts this
directory on sys.path for the test files in it.)"""

from __future__ import annotations

from recovery_support import ListSink

from flinkcore.common.watermark import Watermark
from flinkcore.common.watermark_strategy import TimestampAssigner, WatermarkGenerator, WatermarkStrategy
from flinkcore.datastream import StreamExecutionEnvironment
from flinkcore.datastream.functions import AggregateFunction
from flinkcore.runtime.cluster import ClusterJob
from flinkcore.runtime.cluster.two_phase import CONFIG_KEY, SESSIONS_CONFIG_KEY
from flinkcore.runtime.executor import Job


class FieldTs(TimestampAssigner):
    def extract_timestamp(self, value, record_timestamp):
        return value[2]


class EveryNth(WatermarkGenerator):
    """Punctuated: after every record with a true fourth field, the maximum timestamp seen minus
    ``bound`` (deterministic relative to the records, unlike a periodic generator)."""

    def __init__(self, bound):
        self.bound = bound
        self.max_ts = -(2**62)

    def on_event(self, event, event_timestamp, output):
        self.max_ts = max(self.max_ts, event_timestamp)
        if event[3]:
            output.emit_watermark(Watermark(self.max_ts - self.bound))

    def on_periodic_emit(self, output):
        pass


def punctuated(bound=40):
    return WatermarkStrategy.for_generator(lambda ctx: EveryNth(bound)).with_timestamp_assigner(FieldTs())


class SumCount(AggregateFunction):
    """Accumulator [sum, count, min]; the result depends on every element."""

    def create_accumulator(self):
        return [0, 0, None]

    def add(self, value, acc):
        acc[0] += value[1]
        acc[1] += 1
        acc[2] = value[1] if acc[2] is None else min(acc[2], value[1])
        return acc

    def get_result(self, acc):
        return (acc[0], acc[1], acc[2])

    def merge(self, a, b):
        return [a[0] + b[0], a[1] + b[1], b[2] if a[2] is None else a[2] if b[2] is None else min(a[2], b[2])]


class NoMerge(SumCount):
    merge = None


def run(build, parallelism, two_phase, in_process=False, batch_size=64, config=None):
    env = StreamExecutionEnvironment.get_execution_environment()
    env.set_parallelism(parallelism)
    main, late = ListSink(), ListSink()
    result, late_stream = build(env)
    result.add_sink(main)
    if late_stream is not None:
        late_stream.add_sink(late)
    graph = env.get_stream_graph("two-phase test", clear_transformations=True)
    graph.config[CONFIG_KEY] = graph.config[SESSIONS_CONFIG_KEY] = two_phase
    graph.config["batch_size"] = batch_size
    graph.config.update(config or {})
    applied = None
    if in_process:
        Job(graph).run()
    else:
        job = ClusterJob(graph)
        job.run()
        applied = job.graph.config.get("two_phase_windows")
    return sorted(main.results, key=repr), sorted(late.results, key=repr), applied


def assert_same_everywhere(build, parallelisms=(2,), expect_split=True, batch_size=64, config=None):
    reference = run(build, 1, False, in_process=True, batch_size=batch_size)
    for p in parallelisms:
        off = run(build, p, False, batch_size=batch_size)
        on = run(build, p, True, batch_size=batch_size, config=config)
        assert off[2] is None
        assert bool(on[2]) == expect_split, on[2]
        assert on[:2] == off[:2], f"parallelism {p}: two-phase on differs from off"
        assert on[:2] == reference[:2], f"parallelism {p}: differs from parallelism 1 in one process"
    assert reference[0], "the job produced nothing"
    return reference
