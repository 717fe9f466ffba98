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
from flinkcore.runtime.cluster.task import MIN_PACE_RECORDS, Placement, SlotTask
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
    def process_element(self, value, ctx):
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


def test_a_channel_ahead_of_the_gate_takes_turns_with_the_local_source(slot):
    task, channel = slot
    _arrive(task, channel, 500_000, 500_001)  # worker 2's source is far ahead in event time
    _round(task)  # the local source gives one batch; its watermark is < 500_000
    gate, i = _gate(task, channel)
    assert gate.watermarks[i] == 500_000 and gate.last < 500_000
    # one round: one remote batch of 64 records against the local channel's <= 64 records
    assert len(task._pending) == FRAMES - 1
    _round(task)
    assert len(task._pending) == FRAMES - 2
    # the local source's own records still flowed: its position advanced every round
    assert gate.last >= BATCH
    # every remote batch arrives in order in the end (pacing delays, never drops)
    for _ in range(FRAMES):
        _round(task)
    assert not task._pending


def test_a_channel_at_or_behind_the_gate_drains_at_once(slot):
    task, channel = slot
    _round(task)  # the local channel's watermark is now 63
    _arrive(task, channel, 10, 11)  # worker 2 behind the local source
    _round(task)
    assert not task._pending


def test_a_round_without_local_records_still_takes_a_minimum_from_a_channel_ahead(slot):
    """A local channel that delivers nothing this round cannot stop a remote channel: it gets
    at least MIN_PACE_RECORDS per round."""
    task, channel = slot
    _round(task)
    gate, i = _gate(task, channel)
    _arrive(task, channel, 500_000, 500_001)
    gate.local_records = 0
    task.process_pending(pace=True)
    assert MIN_PACE_RECORDS <= BATCH and len(task._pending) == FRAMES - 1
