"""Pacing of remote channels in a slot (SlotTask.process_pending).

A slot runs its own source and the batches other slots sent it in one loop. A remote channel
whose watermark is ahead of its gate's (its source runs ahead in event time) takes turns with
the slot's own channel: about as many records per round as the local channel delivered, so the
faster source waits for credit instead of running ahead. A channel that is not ahead drains at
once. Real objects: the slot task of worker 1 of a two-slot job, its peers on socketpairs, and
frames as the other slot would send them.
"""

import socket

import pytest
from two_phase_support import ListSink

from flinkcore.common import Configuration, Types, WatermarkStrategy
from flinkcore.common.watermark import Watermark
from flinkcore.common.watermark_strategy import TimestampAssigner, WatermarkGenerator
from flinkcore.datastream import StreamExecutionEnvironment
from flinkcore.datastream.connectors.number_seq import NumberSequenceSource
from flinkcore.datastream.functions import KeyedProcessFunction
from flinkcore.runtime.cluster import wire
from flinkcore.runtime.cluster.task import Placement, SlotTask
from flinkcore.runtime.processing_time import ProcessingTimeService

BATCH = 64
FRAMES = 8


class ValueTs(TimestampAssigner):
    def extract_timestamp(self, value, record_timestamp):
        return value


class EveryBatch(WatermarkGenerator):
    """Punctuated: a watermark after every BATCH-th number (deterministic, no processing time)."""

    def on_event(self, event, event_timestamp, output):
        if event % BATCH == BATCH - 1:
            output.emit_watermark(Watermark(event_timestamp))

    def on_periodic_emit(self, output):
        pass


class Forward(KeyedProcessFunction):
    """Passes records on and keeps what it saw (the slot's own numbers are < 500_000 here)."""

    def __init__(self):
        self.seen = []

    def process_element(self, value, ctx):
        self.seen.append(value)
        yield value


@pytest.fixture
def slot():
    conf = Configuration()
    conf.set_string("flinkcore.batch-size", str(BATCH))
    env = StreamExecutionEnvironment.get_execution_environment(conf)
    env.set_parallelism(2)
    strategy = WatermarkStrategy.for_generator(lambda ctx: EveryBatch()).with_timestamp_assigner(ValueTs())
    (
        env.from_source(NumberSequenceSource(0, 999_999), strategy, "numbers", Types.LONG())
        .key_by(lambda v: v % 7)
        .process(Forward(), Types.LONG())
        .add_sink(ListSink())
    )
    graph = env.get_stream_graph("pacing", clear_transformations=True)
    pairs = {p: socket.socketpair() for p in (0, 2)}  # the driver, worker 2
    peers = {p: wire.Peer(p, a) for p, (a, _) in pairs.items()}
    task = SlotTask(graph, Placement(graph), 1, peers, ProcessingTimeService())
    task.open()
    (channel,) = task.inbound  # the channel from worker 2's source into this slot's gate
    yield task, channel
    for a, b in pairs.values():
        a.close()
        b.close()


def _arrive(task, channel, watermark, first_value):
    """What worker 2 sends: its watermark, then FRAMES batches of records after it."""
    task._pending.append((channel, wire.WATERMARK, memoryview(wire.encode_i64(watermark))))
    for f in range(FRAMES):
        values = list(range(first_value + f * BATCH, first_value + (f + 1) * BATCH))
        task._pending.append((channel, wire.BATCH, memoryview(wire.encode_batch(values, values))))


def _round(task):
    """One round of the slot, its peers having taken what it sent (they return credit)."""
    for c in task.credits:
        task.credits[c] = 1000
    task.step()


def _gate(task, channel):
    gate, i = task._gate_of[channel]
    return gate, i


def _seen(task):
    """(local, remote) records the Forward function of this slot saw so far."""
    udfs = [getattr(getattr(i, "process_element", None), "__self__", None) for i in task.instances.values()]
    (forward,) = [f for f in udfs if isinstance(f, Forward)]
    local = sum(v < 500_000 for v in forward.seen)
    return local, len(forward.seen) - local


def test_a_channel_ahead_of_the_gate_takes_turns_with_the_local_source(slot):
    task, channel = slot
    _arrive(task, channel, 500_000, 500_001)  # worker 2's source is far ahead in event time
    _round(task)  # the local source gives one batch; its watermark is < 500_000
    gate, i = _gate(task, channel)
    assert gate.watermarks[i] == 500_000 and 0 < gate.last < 500_000
    for _ in range(5):
        # per round, about as many remote records as the local channel delivered: within one
        # batch either way (a batch goes whole, and its excess is made up in later rounds)
        local, remote = _seen(task)
        assert 0 < remote and abs(remote - local) <= BATCH
        assert task._pending  # the rest waits (the sender waits for credit)
        _round(task)
    # every remote batch arrives in order in the end (pacing delays, never drops)
    for _ in range(3 * FRAMES):
        _round(task)
    assert not task._pending
    assert _seen(task)[1] == FRAMES * BATCH


def test_a_channel_at_or_behind_the_gate_drains_at_once(slot):
    task, channel = slot
    _round(task)  # the local channel's watermark is now 63
    _arrive(task, channel, 10, 11)  # worker 2 behind the local source
    _round(task)
    assert not task._pending


def test_a_round_without_local_records_still_takes_one_batch_from_a_channel_ahead(slot):
    """A local channel that delivers nothing in a round (a pre-aggregation sends in bursts)
    cannot stop a remote channel: it takes one batch per such round."""
    task, channel = slot
    _round(task)
    _arrive(task, channel, 500_000, 500_001)
    for frames_left in range(FRAMES - 1, FRAMES - 4, -1):
        task._gate_of[channel][0].local_records = 0
        task.process_pending(pace=True)
        assert len(task._pending) == frames_left


def test_a_gate_without_local_channels_is_not_paced():
    """Pacing takes turns with a gate's local channels; a gate whose channels all come from other
    slots has none, so its batches go through at once even while this slot's own (other) source
    runs: worker 3 runs subtask 2 of a p3 operator fed by a p2 source, and a p3 source of its own."""
    conf = Configuration()
    conf.set_string("flinkcore.batch-size", str(BATCH))
    env = StreamExecutionEnvironment.get_execution_environment(conf)
    env.set_parallelism(3)
    strategy = WatermarkStrategy.for_generator(lambda ctx: EveryBatch()).with_timestamp_assigner(ValueTs())
    numbers = env.from_source(NumberSequenceSource(0, 999_999), strategy, "numbers", Types.LONG())
    numbers.set_parallelism(2)
    numbers.key_by(lambda v: v % 7).process(Forward(), Types.LONG()).add_sink(ListSink())
    other = env.from_source(NumberSequenceSource(0, 999_999), strategy, "other", Types.LONG())
    other.map(lambda v: v).add_sink(ListSink())
    graph = env.get_stream_graph("pacing", clear_transformations=True)
    pairs = {p: socket.socketpair() for p in (0, 1, 2)}
    peers = {p: wire.Peer(p, a) for p, (a, _) in pairs.items()}
    try:
        task = SlotTask(graph, Placement(graph), 3, peers, ProcessingTimeService())
        task.open()
        ahead, behind = sorted(task.inbound)  # from the p2 source's subtasks 0 and 1
        task._pending.append((behind, wire.WATERMARK, memoryview(wire.encode_i64(10))))
        _arrive(task, ahead, 500_000, 500_001)
        _round(task)  # the slot's own source polled; the gate has no local channel to pace by
        assert not task._pending
    finally:
        for a, b in pairs.values():
            a.close()
            b.close()
