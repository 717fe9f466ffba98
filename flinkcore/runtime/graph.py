"""The job graph the runtime executes: nodes (operators or sources) and edges (partitioners).

``flinkcore.datastream`` translates the user's transformations into a :class:`StreamGraph`;
the runtime knows nothing else about the API. A node carries a zero-argument
``operator_factory`` returning a fresh :class:`~flinkcore.runtime.operators.base.StreamOperator`
per parallel instance, so a new operator kind (e.g. the window operator) needs no runtime change.
Sources carry a ``source`` (:class:`flinkcore.runtime.sources.Source`). Side-output edges name
the tag id they read. ``key_selectors`` (one per input) make a node keyed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Partitioner", "StreamEdge", "StreamGraph", "StreamNode"]


@dataclass(frozen=True)
class Partitioner:
    """How records of an edge are distributed over the downstream instances.

    kind: ``forward`` (1:1), ``rebalance`` (round robin), ``rescale`` (round robin within a local
    group), ``shuffle`` (random), ``broadcast`` (to all), ``global`` (all to instance 0),
    ``hash`` (by key group of ``key_selector``), ``custom`` (``fn(key, n)`` of ``key_selector``).
    """

    kind: str
    key_selector: Callable | None = None
    fn: Callable | None = None

    KINDS = ("forward", "rebalance", "rescale", "shuffle", "broadcast", "global", "hash", "custom")

    def __post_init__(self) -> None:
        if self.kind not in self.KINDS:
            raise ValueError(f"unknown partitioner {self.kind!r}; one of {self.KINDS}")


@dataclass
class StreamNode:
    id: int
    name: str
    parallelism: int
    max_parallelism: int = 128
    operator_factory: Callable[[], Any] | None = None
    source: Any = None
    key_selectors: list = field(default_factory=lambda: [None])
    uid: str | None = None
    chaining: str = "always"  # "always" | "head" (start_new_chain) | "never" (disable_chaining)
    slot_sharing_group: str | None = None
    num_inputs: int = 1
    is_sink: bool = False

    @property
    def is_source(self) -> bool:
        return self.source is not None


@dataclass
class StreamEdge:
    source_id: int
    target_id: int
    partitioner: Partitioner
    input_index: int = 0
    side_output_tag: str | None = None


@dataclass
class StreamGraph:
    job_name: str
    nodes: dict[int, StreamNode] = field(default_factory=dict)
    edges: list[StreamEdge] = field(default_factory=list)
    #: runtime settings: runtime_mode, auto_watermark_interval, buffer_timeout, batch_size, ...
    config: dict[str, Any] = field(default_factory=dict)

    def add_node(self, node: StreamNode) -> StreamNode:
        self.nodes[node.id] = node
        return node

    def add_edge(self, edge: StreamEdge) -> None:
        self.edges.append(edge)

    def in_edges(self, node_id: int) -> list[StreamEdge]:
        return [e for e in self.edges if e.target_id == node_id]

    def out_edges(self, node_id: int) -> list[StreamEdge]:
        return [e for e in self.edges if e.source_id == node_id]

    def topological_order(self) -> list[StreamNode]:
        indeg = {nid: 0 for nid in self.nodes}
        for e in self.edges:
            indeg[e.target_id] += 1
        ready = sorted(nid for nid, d in indeg.items() if d == 0)
        order = []
        while ready:
            nid = ready.pop(0)
            order.append(self.nodes[nid])
            for e in self.out_edges(nid):
                indeg[e.target_id] -= 1
                if indeg[e.target_id] == 0:
                    ready.append(e.target_id)
        if len(order) != len(self.nodes):
            raise ValueError("the job graph has a cycle; iterations are not supported")
        return order

    def to_json(self) -> dict:
        """The execution plan in the shape of Flink's ``get_execution_plan()``."""
        nodes = []
        for node in self.topological_order():
            entry: dict[str, Any] = {
                "id": node.id,
                "type": f"Source: {node.name}" if node.is_source else node.name,
                "pact": "Data Source" if node.is_source else "Data Sink" if node.is_sink else "Operator",
                "contents": node.name,
                "parallelism": node.parallelism,
            }
            preds = [
                {
                    "id": e.source_id,
                    "ship_strategy": e.partitioner.kind.upper(),
                    "side": "second" if e.input_index else "first",
                }
                for e in self.in_edges(node.id)
            ]
            if preds:
                entry["predecessors"] = preds
            nodes.append(entry)
        return {"nodes": nodes}
