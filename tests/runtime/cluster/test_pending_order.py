"""A slot runs each channel's messages in the order they came (SlotTask.process_pending), also
when a message of the channel was kept (its channel held for a checkpoint's alignment) and the
hold ends in the same round, and in a round nested in another (a dispatch that waits for credit).

The slot is a SlotTask with only what process_pending reads; its dispatch records the messages
(a barrier on channel 2 completes the alignment: the hold of channel 1 ends, as in _check_done).
Before, a round ran channel 1's end of input before the batch it had kept: a FileSink in the
driver then took a batch after its end of input (a job restart, seen at p3 in kept workers)."""

from collections import deque

from flinkcore.runtime.cluster import wire
from flinkcore.runtime.cluster.task import SlotTask


def _slot(messages, held=(), nested_at=None):
    task = SlotTask.__new__(SlotTask)
    task._pending = deque(messages)
    task._deficit, task._paced_gates, task._gate_of = {}, [], {}
    task._waiting, task._unsafe, task._held = set(), frozenset(), set(held)
    task._credit_due = {}
    task.inbound = {c: (None, 10 + c) for c in range(1, 4)}
    task.ran = []

    def dispatch(item, target):
        task.ran.append(item[:2])
        if item[1] == wire.BARRIER:
            task._held.clear()  # the alignment completed
        if item[:2] == nested_at:
            task.process_pending()  # as await_credit does while this message's output waits
        return 0

    task._dispatch = dispatch
    return task


def _until_empty(task):
    for _ in range(10):
        if not task._pending:
            return task.ran
        task.process_pending()
    raise AssertionError(f"messages left: {list(task._pending)}")


def test_a_held_channel_keeps_its_order_when_the_hold_ends_in_the_same_round():
    task = _slot([(1, wire.BATCH, b"a"), (2, wire.BARRIER, b""), (1, wire.END, b"")], held={1})
    assert _until_empty(task) == [(2, wire.BARRIER), (1, wire.BATCH), (1, wire.END)]


def test_a_nested_round_does_not_run_what_follows_a_message_the_outer_round_kept():
    task = _slot(
        [
            (1, wire.BATCH, b"a"),
            (2, wire.BARRIER, b""),
            (3, wire.BATCH, b"b"),
            (1, wire.END, b""),
            (3, wire.END, b""),
        ],
        held={1},
        nested_at=(3, wire.BATCH),
    )
    ran = _until_empty(task)
    assert ran.index((1, wire.BATCH)) < ran.index((1, wire.END))
    assert ran.index((3, wire.BATCH)) < ran.index((3, wire.END))  # the nested round ran channel 3's end
