from flinkcore.runtime.exchange import InputGate, connected_targets, make_writer
from flinkcore.runtime.graph import Partitioner
from flinkcore.runtime.operators.base import Input
from flinkcore.state.key_groups import operator_index_of


class Recorder(Input):
    def __init__(self):
        self.events = []

    def process_batch(self, values, timestamps):
        self.events.append(("batch", list(values), timestamps))

    def process_watermark(self, watermark):
        self.events.append(("wm", watermark))

    def process_watermark_status(self, idle):
        self.events.append(("idle", idle))

    def end_input(self):
        self.events.append(("end",))


def test_gate_forwards_min_watermark_over_channels():
    r = Recorder()
    g = InputGate(r, 2)
    a, b = g.channels
    a.process_watermark(10)
    assert r.events == []
    b.process_watermark(5)
    assert r.events == [("wm", 5)]
    b.process_watermark(20)
    assert r.events[-1] == ("wm", 10)


def test_gate_leaves_idle_channels_out_and_realigns():
    r = Recorder()
    g = InputGate(r, 2)
    a, b = g.channels
    a.process_watermark(10)
    b.process_watermark_status(True)
    assert ("wm", 10) in r.events  # b idle: a alone decides
    a.process_watermark_status(True)
    assert r.events[-1] == ("idle", True)
    b.process_watermark_status(False)
    assert r.events[-1] == ("idle", False)
    b.process_watermark(8)  # behind the output watermark: not aligned, left out of the minimum
    a.process_watermark_status(False)
    a.process_watermark(30)
    assert [e for e in r.events if e[0] == "wm"] == [("wm", 10), ("wm", 30)]
    b.process_watermark(25)  # still behind 30: not aligned
    a.process_watermark(50)
    assert r.events[-1] == ("wm", 50)
    b.process_watermark(60)  # caught up: aligned again, the minimum includes it
    a.process_watermark(70)
    assert r.events[-1] == ("wm", 60)


def test_gate_ends_after_every_channel():
    r = Recorder()
    g = InputGate(r, 3)
    for c in g.channels[:2]:
        c.end_input()
    assert ("end",) not in r.events
    g.channels[2].end_input()
    assert r.events[-1] == ("end",)


def test_hash_writer_routes_by_key_group_and_broadcasts_watermarks():
    rs = [Recorder() for _ in range(3)]
    w = make_writer(Partitioner("hash", key_selector=lambda v: v[0]), rs, 0, 128, "keyed")
    values = [(k, k * 10) for k in range(30)]
    w.process_batch(values, list(range(30)))
    for i, r in enumerate(rs):
        for _, vs, ts in r.events:
            assert all(operator_index_of(v[0], 128, 3) == i for v in vs)
            assert ts == [v[0] for v in vs]
    w.process_watermark(7)
    assert all(r.events[-1] == ("wm", 7) for r in rs)


def test_rebalance_round_robin_continues_across_batches():
    rs = [Recorder() for _ in range(2)]
    w = make_writer(Partitioner("rebalance"), rs, 0, 128, "rb")
    w.process_batch([1, 2, 3], None)
    w.process_batch([4, 5], None)
    assert [v for r in rs for _, vs, _ in r.events for v in vs] == [1, 3, 5, 2, 4]


def test_rescale_connects_local_groups():
    assert connected_targets("rescale", 0, 2, 4) == [0, 1]
    assert connected_targets("rescale", 1, 2, 4) == [2, 3]
    assert connected_targets("rescale", 3, 4, 2) == [1]
    assert connected_targets("forward", 1, 2, 2) == [1]
