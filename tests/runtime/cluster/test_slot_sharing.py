"""Slot sharing groups: operators of different groups never share a slot (worker process)."""

from __future__ import annotations

import os

from recovery_support import ListSink

from flinkcore.datastream import StreamExecutionEnvironment
from flinkcore.runtime.cluster import ClusterJob, use_processes
from flinkcore.runtime.cluster.task import Placement, slot_sharing_groups


def _job(parallelism, other_group_parallelism):
    """source -> map (default group) -> map in group "other" -> map (inherits "other") -> sink;
    each map appends the pid of the process it ran in."""
    env = StreamExecutionEnvironment.get_execution_environment()
    env.set_parallelism(parallelism)
    sink = ListSink()
    (
        env.from_collection(list(range(40)))
        .rebalance()
        .map(lambda v: (v, os.getpid()))
        .map(lambda t: t + (os.getpid(),))
        .slot_sharing_group("other")
        .set_parallelism(other_group_parallelism)
        .map(lambda t: t + (os.getpid(),))
        .set_parallelism(other_group_parallelism)
        .add_sink(sink)
    )
    return env.get_stream_graph("slot sharing", clear_transformations=True), sink


def test_groups_are_named_or_inherited_from_inputs_as_in_flink():
    graph, _ = _job(2, 2)
    by_name = {n.name: slot_sharing_groups(graph)[nid] for nid, n in graph.nodes.items()}
    assert list(by_name.values()).count("other") == 2  # the named map and the map after it
    assert sorted(set(by_name.values())) == ["default", "other"]


def test_operators_of_different_groups_run_in_different_processes():
    graph, sink = _job(2, 3)
    placement = Placement(graph)
    assert placement.num_workers == 2 + 3  # two slots of "default", three of "other"
    job = ClusterJob(graph)
    job.run()
    assert sorted(t[0] for t in sink.results) == list(range(40))
    default_pids = {t[1] for t in sink.results}
    other_pids = {t[2] for t in sink.results}
    assert {t[3] for t in sink.results} == other_pids  # the unnamed map shares its input's slot
    assert all(t[2] == t[3] for t in sink.results)  # ... as a chained call in the same process
    assert default_pids.isdisjoint(other_pids)
    assert len(default_pids) == 2 and len(other_pids) == 3
    assert default_pids | other_pids == set(job.pids)


def test_two_groups_at_parallelism_one_run_in_worker_processes():
    graph, sink = _job(1, 1)
    assert use_processes(graph)
    graph.config.pop("runtime", None)
    job = ClusterJob(graph)
    job.run()
    pids = {(t[1], t[2]) for t in sink.results}
    assert len(pids) == 1
    ((default_pid, other_pid),) = pids
    assert default_pid != other_pid and os.getpid() not in (default_pid, other_pid)
