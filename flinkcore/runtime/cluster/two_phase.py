"""Two-phase (local-global) window aggregation in the job graph of worker processes.

For every keyed exchange that feeds an eligible window (see
:func:`flinkcore.runtime.operators.local_agg.two_phase_plan`), a local pre-aggregation node is
inserted in the upstream task, before the exchange (chained to the upstream node: same
parallelism, forward edge, same slot), and the window node gets the global operator, which
merges partial accumulators. The exchange then carries one partial per (key, pane) and slot
instead of one record per event.

Configuration ``execution.window.two-phase-aggregation`` (``true`` by default; ``false`` keeps
the one-phase plan), set on the environment's Configuration and carried in the job graph's
config; the environment variable ``FLINKCORE_TWO_PHASE_AGGREGATION`` overrides it. Jobs in one
process keep the one-phase plan: there the exchange is a direct call. BATCH execution keeps it
too.

Event-time session windows with a static gap and no allowed lateness split too when
``execution.window.two-phase-aggregation.sessions`` is ``true`` (environment variable
``FLINKCORE_TWO_PHASE_SESSIONS``; :mod:`flinkcore.runtime.operators.local_sessions`): the
exchange then carries a small extent per key and gap + watermark delay of event time and one
accumulator per session. To stay exact the local operator does the full per-record session
update (as expensive as the global one), which pays only when a key has many records per gap +
watermark delay, so the split is adaptive: the local operator measures its messages per record
and, where that is too high (W3: one per ~2 records), sends what it holds and passes every later
record straight on. The rule's two numbers can be set (as Trino's adaptive partial
aggregation's): ``...sessions.adaptive.min-records`` (records per measuring period, 200000) and
``...sessions.adaptive.max-messages-per-record`` (0.1; a larger value keeps pre-aggregating
longer, 0 passes through after the first judged period that sent anything); the environment
variable ``FLINKCORE_TWO_PHASE_SESSIONS_ADAPT`` (``"<min-records>,<max-messages-per-record>"``)
overrides both. Off by default: dense sessions (1,000 keys) ran 2x faster with it, but on W3
(sparse sessions; 5M events, quiet machine) p2 ran 1.25x p1 with it and 1.76x without, the
pass-through after the switch still costing ~15-25% more than the one-phase plan for a reason
not found yet.

Not split (the plan stays as it was): sessions with a dynamic gap or allowed lateness, custom
triggers, evictors, processing time and count windows, list-state window functions
(apply/process without an incremental function), an AggregateFunction without ``merge``,
columnar mean/first/last (and the typed ``sum``/``min``/``max`` of a field, which keep the other
fields' first values), jit AggregateFunctions on the columnar path.

Snapshot keys stay those of the graph the user built (every node keeps its key as ``uid``), and
the local nodes hold no state (everything is sent before a barrier), so checkpoints and
savepoints restore into the job with or without pre-aggregation, at any parallelism.
"""

from __future__ import annotations

import copy
import dataclasses
import os
from typing import Any

from flinkcore.common.configuration import parse_flag
from flinkcore.runtime.graph import Partitioner, StreamEdge, StreamGraph, StreamNode

__all__ = [
    "CONFIG_KEY",
    "ENV_VAR",
    "SESSIONS_ADAPT_ENV_VAR",
    "SESSIONS_CONFIG_KEY",
    "SESSIONS_ENV_VAR",
    "SESSIONS_MAX_RATIO_KEY",
    "SESSIONS_MIN_RECORDS_KEY",
    "enabled",
    "sessions_enabled",
    "with_two_phase_aggregation",
]

#: the configuration key (Flink style) that switches two-phase window aggregation on or off
CONFIG_KEY = "execution.window.two-phase-aggregation"
#: the environment variable that overrides it ("0"/"false" or "1"/"true")
ENV_VAR = "FLINKCORE_TWO_PHASE_AGGREGATION"
#: whether session windows split too (``false`` by default, adaptive: see the module doc); only
#: with CONFIG_KEY on
SESSIONS_CONFIG_KEY = "execution.window.two-phase-aggregation.sessions"
#: the environment variable that overrides it
SESSIONS_ENV_VAR = "FLINKCORE_TWO_PHASE_SESSIONS"
#: records the local session operator takes in per period of measuring its reduction
SESSIONS_MIN_RECORDS_KEY = "execution.window.two-phase-aggregation.sessions.adaptive.min-records"
#: messages sent per record taken in above which a period switches it to pass-through
SESSIONS_MAX_RATIO_KEY = "execution.window.two-phase-aggregation.sessions.adaptive.max-messages-per-record"
#: the environment variable that overrides both: "<min-records>,<max-messages-per-record>"
SESSIONS_ADAPT_ENV_VAR = "FLINKCORE_TWO_PHASE_SESSIONS_ADAPT"


def enabled(graph: StreamGraph) -> bool:
    """Whether two-phase aggregation is on for ``graph`` (default: on)."""
    env = os.environ.get(ENV_VAR)
    if env:
        return parse_flag(env, ENV_VAR)
    value = graph.config.get(CONFIG_KEY)
    return True if value is None else parse_flag(value, CONFIG_KEY)


def sessions_enabled(graph: StreamGraph) -> bool:
    """Whether session windows split too (default: off; needs :func:`enabled` as well)."""
    env = os.environ.get(SESSIONS_ENV_VAR)
    if env:
        return parse_flag(env, SESSIONS_ENV_VAR)
    value = graph.config.get(SESSIONS_CONFIG_KEY)
    return False if value is None else parse_flag(value, SESSIONS_CONFIG_KEY)


def _session_adapt(graph: StreamGraph) -> tuple[int, float]:
    """The local session operators' pass-through rule from ``graph``'s config."""
    from flinkcore.runtime.operators.local_sessions import ADAPT_MAX_RATIO, ADAPT_SAMPLE

    records, ratio = graph.config.get(SESSIONS_MIN_RECORDS_KEY), graph.config.get(SESSIONS_MAX_RATIO_KEY)
    env = os.environ.get(SESSIONS_ADAPT_ENV_VAR)
    if env:
        records, _, ratio = env.partition(",")
    try:
        records = ADAPT_SAMPLE if records is None else int(records)
        ratio = ADAPT_MAX_RATIO if ratio is None else float(ratio)
    except (TypeError, ValueError) as e:
        raise ValueError(f"{SESSIONS_MIN_RECORDS_KEY} / {SESSIONS_MAX_RATIO_KEY}: {e}") from e
    if records <= 0 or not ratio >= 0:
        raise ValueError(f"{SESSIONS_MIN_RECORDS_KEY} must be > 0 and {SESSIONS_MAX_RATIO_KEY} >= 0")
    return records, ratio


def with_two_phase_aggregation(graph: StreamGraph, node_keys: dict[int, str]) -> StreamGraph:
    """``graph`` with local pre-aggregation before every eligible keyed window (a new graph; the
    caller's is not changed), or ``graph`` itself when nothing is eligible or it is switched off.
    ``node_keys`` are the snapshot keys of ``graph``'s nodes, kept by the new graph."""
    if not enabled(graph) or graph.config.get("runtime_mode", "STREAMING") == "BATCH":
        return graph
    from flinkcore.runtime.operators.local_agg import two_phase_plan
    from flinkcore.runtime.operators.local_sessions import session_two_phase_plan

    sessions = sessions_enabled(graph)
    adapt = _session_adapt(graph) if sessions else None
    plans: dict[int, Any] = {}
    for nid, node in graph.nodes.items():
        if node.is_source or node.operator_factory is None or node.num_inputs != 1:
            continue
        ins = graph.in_edges(nid)
        # one keyed exchange, or one per input of a union (each upstream task pre-aggregates)
        if not ins or any(e.partitioner.kind != "hash" or e.side_output_tag is not None for e in ins):
            continue
        key_selector = ins[0].partitioner.key_selector
        if key_selector is None or node.key_selectors[0] is None:
            continue
        if any(e.partitioner.key_selector is not key_selector for e in ins[1:]):
            continue
        local_name = f"LocalAggregate({node.name})"
        plan = (
            session_two_phase_plan(node.operator_factory, key_selector, local_name, *adapt) if adapt else None
        )
        if plan is None:
            plan = two_phase_plan(node.operator_factory, key_selector, local_name)
        if plan is not None:
            plans[nid] = plan
    if not plans:
        return graph
    new = copy.copy(graph)
    new.nodes = {nid: dataclasses.replace(node, uid=node_keys[nid]) for nid, node in graph.nodes.items()}
    new.edges = []
    next_id = max(graph.nodes) + 1
    for edge in graph.edges:
        plan = plans.get(edge.target_id)
        if plan is None:
            new.edges.append(edge)
            continue
        up = graph.nodes[edge.source_id]
        window = graph.nodes[edge.target_id]
        local = StreamNode(
            id=next_id,
            name=f"LocalAggregate({window.name})",
            parallelism=up.parallelism,
            max_parallelism=up.max_parallelism,
            operator_factory=plan.local_factory,
            key_selectors=[None],
            uid=f"{node_keys[window.id]}#local-aggregate-{up.id}",
        )
        next_id += 1
        new.nodes[local.id] = local
        key_selector = plan.key_selector or edge.partitioner.key_selector
        new.nodes[window.id] = dataclasses.replace(
            new.nodes[window.id], operator_factory=plan.global_factory, key_selectors=[key_selector]
        )
        new.edges.append(StreamEdge(up.id, local.id, Partitioner("forward"), 0, edge.side_output_tag))
        new.edges.append(StreamEdge(local.id, window.id, Partitioner("hash", key_selector), edge.input_index))
    new.config = dict(graph.config)
    new.config["two_phase_windows"] = sorted(plans)
    return new
