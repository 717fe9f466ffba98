"""Transformations: what the user API records, and their translation into a job graph.

Each DataStream wraps a :class:`Transformation`. Physical transformations (sources and
operators) become graph nodes; virtual ones (union, partitioning, side outputs) only shape the
edges. An operator transformation carries a zero-argument ``operator_factory`` returning a
fresh runtime operator, so a new kind of operator (windows, joins ...) is added by creating a
:class:`OneInputTransformation` / :class:`TwoInputTransformation` with its factory — see
``DataStream.transform`` — with no change to the runtime.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

from flinkcore.runtime.graph import Partitioner, StreamEdge, StreamGraph, StreamNode

__all__ = [
    "OneInputTransformation",
    "PartitionTransformation",
    "SideOutputTransformation",
    "SourceTransformation",
    "Transformation",
    "TwoInputTransformation",
    "UnionTransformation",
    "generate_stream_graph",
]

_ids = itertools.count(1)


class Transformation:
    """A node of the user's program (see module docstring)."""

    physical = True

    def __init__(self, name: str, output_type: Any = None, parallelism: int | None = None) -> None:
        self.id = next(_ids)
        self.name = name
        self.output_type = output_type
        self.parallelism = parallelism
        self.max_parallelism: int | None = None
        self.uid: str | None = None
        self.description: str | None = None
        self.chaining = "always"
        self.slot_sharing_group: str | None = None
        #: False when the operator must run with parallelism 1 (collection source, window_all ...)
        self.parallel = True
        #: True for sinks (add_sink, sink_to, print, collect): shown as "Data Sink" in plans
        self.is_sink = False

    @property
    def inputs(self) -> list[Transformation]:
        return []

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.id}, {self.name!r})"


class SourceTransformation(Transformation):
    def __init__(self, name: str, source: Any, output_type: Any = None) -> None:
        super().__init__(name, output_type)
        self.source = source
        if not getattr(source, "parallel", True):
            self.parallel = False
            self.parallelism = 1


class OneInputTransformation(Transformation):
    def __init__(
        self,
        input: Transformation,
        name: str,
        operator_factory: Callable[[], Any],
        output_type: Any = None,
        key_selector: Callable | None = None,
    ) -> None:
        super().__init__(name, output_type)
        self.input = input
        self.operator_factory = operator_factory
        self.key_selector = key_selector

    @property
    def inputs(self) -> list[Transformation]:
        return [self.input]


class TwoInputTransformation(Transformation):
    def __init__(
        self,
        input1: Transformation,
        input2: Transformation,
        name: str,
        operator_factory: Callable[[], Any],
        output_type: Any = None,
        key_selector1: Callable | None = None,
        key_selector2: Callable | None = None,
    ) -> None:
        super().__init__(name, output_type)
        self.input1, self.input2 = input1, input2
        self.operator_factory = operator_factory
        self.key_selector1, self.key_selector2 = key_selector1, key_selector2

    @property
    def inputs(self) -> list[Transformation]:
        return [self.input1, self.input2]


class UnionTransformation(Transformation):
    physical = False

    def __init__(self, inputs: list[Transformation]) -> None:
        super().__init__("Union", inputs[0].output_type)
        self._inputs = inputs

    @property
    def inputs(self) -> list[Transformation]:
        return list(self._inputs)


class PartitionTransformation(Transformation):
    physical = False

    def __init__(self, input: Transformation, partitioner: Partitioner) -> None:
        super().__init__(f"Partition({partitioner.kind})", input.output_type)
        self.input = input
        self.partitioner = partitioner

    @property
    def inputs(self) -> list[Transformation]:
        return [self.input]


class SideOutputTransformation(Transformation):
    physical = False

    def __init__(self, input: Transformation, tag_id: str, output_type: Any = None) -> None:
        super().__init__(f"SideOutput({tag_id})", output_type)
        self.input = input
        self.tag_id = tag_id

    @property
    def inputs(self) -> list[Transformation]:
        return [self.input]


def _resolve(t: Transformation) -> list[tuple[int, Partitioner | None, str | None]]:
    """The physical upstream ids of ``t`` with the partitioner and side tag on the way."""
    if t.physical:
        return [(t.id, None, None)]
    if isinstance(t, UnionTransformation):
        return [r for i in t.inputs for r in _resolve(i)]
    if isinstance(t, PartitionTransformation):
        return [(pid, t.partitioner, side) for pid, _, side in _resolve(t.input)]
    if isinstance(t, SideOutputTransformation):
        return [(pid, part, t.tag_id) for pid, part, _ in _resolve(t.input)]
    raise TypeError(f"unknown transformation {t!r}")


def generate_stream_graph(
    transformations: list[Transformation],
    job_name: str,
    default_parallelism: int,
    default_max_parallelism: int,
    config: dict,
) -> StreamGraph:
    """Translate every transformation reachable from ``transformations`` into a StreamGraph."""
    seen: dict[int, Transformation] = {}
    stack = list(transformations)
    while stack:
        t = stack.pop()
        if t.id in seen:
            continue
        seen[t.id] = t
        stack.extend(t.inputs)
    graph = StreamGraph(job_name, config=dict(config))
    for t in sorted(seen.values(), key=lambda t: t.id):
        if not t.physical:
            continue
        p = t.parallelism if t.parallelism is not None else default_parallelism
        if not t.parallel and p != 1:
            raise ValueError(f"'{t.name}' is not parallel: its parallelism must be 1, got {p}")
        mp = t.max_parallelism or default_max_parallelism
        if p > mp:
            raise ValueError(f"'{t.name}': parallelism {p} is larger than max parallelism {mp}")
        node = StreamNode(
            id=t.id,
            name=t.name,
            parallelism=p,
            max_parallelism=mp,
            uid=t.uid,
            chaining=t.chaining,
            slot_sharing_group=t.slot_sharing_group,
            is_sink=t.is_sink,
        )
        if isinstance(t, SourceTransformation):
            node.source = t.source
        elif isinstance(t, OneInputTransformation):
            node.operator_factory = t.operator_factory
            node.key_selectors = [t.key_selector]
        elif isinstance(t, TwoInputTransformation):
            node.operator_factory = t.operator_factory
            node.key_selectors = [t.key_selector1, t.key_selector2]
            node.num_inputs = 2
        graph.add_node(node)
    for t in sorted(seen.values(), key=lambda t: t.id):
        if not t.physical:
            continue
        ins = t.inputs
        for index, inp in enumerate(ins):
            for pid, part, side in _resolve(inp):
                up, down = graph.nodes[pid], graph.nodes[t.id]
                if part is None:
                    part = Partitioner("forward" if up.parallelism == down.parallelism else "rebalance")
                graph.add_edge(StreamEdge(pid, t.id, part, index if len(ins) > 1 else 0, side))
    return graph
