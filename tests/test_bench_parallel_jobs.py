"""bench/parallel/jobs.py: every columnar job (the sink in the driver, reduced per batch, or in
the task slots) gives the workload's results at parallelism 1 and in worker processes at 2."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from flinkcore.benchmarks import reference
from flinkcore.benchmarks.data import events_for

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench" / "parallel"))
import jobs  # noqa: E402

COLUMNAR = ["w2-columnar", "w2-columnar-batch-sink", "w2-columnar-slot-sink"]
COLUMNAR += ["w3-columnar", "w3-columnar-batch-sink", "w3-columnar-slot-sink"]


@pytest.mark.parametrize("name", COLUMNAR)
def test_columnar_jobs_agree_with_the_reference_at_p1_and_p2(name):
    workload = "W3" if name.startswith("w3") else "W2"
    ev = events_for(workload, 60_000)
    key, value, ts = ev.key, ev.value, ev.ts
    want = reference.w3_numpy(key, value, ts) if workload == "W3" else reference.w2_numpy(key, value, ts)
    for p in (1, 2):
        results, checksum = jobs.JOBS[name](ev, p)
        assert results == want[0], (name, p)
        assert checksum == pytest.approx(want[1], rel=1e-9), (name, p)


def test_slot_sink_counts_in_each_slot_and_cleans_up():
    ev = events_for("W2", 20_000)
    seen = []
    totals = jobs.slot_sink_totals

    def spy(sink):
        seen.append((sink.directory, len(os.listdir(sink.directory))))
        return totals(sink)

    jobs.slot_sink_totals = spy
    try:
        one = jobs.w2_columnar_slot_sink(ev, 1)
        two = jobs.w2_columnar_slot_sink(ev, 2)
    finally:
        jobs.slot_sink_totals = totals
    assert [n for _, n in seen] == [1, 2], "one file per sink instance: the sink ran in each slot at p2"
    assert not any(os.path.exists(d) for d, _ in seen)
    assert one[0] == two[0] and one[1] == pytest.approx(two[1], rel=1e-12)
