"""The subtasks one process runs (a task slot), wired to the subtasks of the other processes.

Placement follows Flink's slot sharing: slot ``k`` of a slot sharing group (one worker process)
runs subtask ``k`` of every operator of that group, so a slot holds one parallel pipeline and a
forward edge stays a chained call inside it; operators of another group run in slots (processes)
of their own. Sinks run in the driver (process 0) by default, so a ``SinkFunction``
still updates the caller's own objects and ``execute_and_collect`` reads a local queue.

Inside a process, edges between local subtasks are direct calls, exactly as in the in-process
executor (:mod:`flinkcore.runtime.executor`), through the same partitioning writers and
:class:`~flinkcore.runtime.exchange.InputGate` (watermark minimum over channels, idle channels
left out). An edge to a subtask in another process ends in a :class:`RemoteChannel`: records
collect into a buffer that is sent as one serialized batch when it holds ``batch_size`` records,
when an in-band event (watermark, status, end of input) must follow them, or when the buffer
timeout passes.

Flow control is credit-based, as Flink's network stack: a receiver grants every channel
``credits`` batches; a sender with no credit left waits. While it waits, the process keeps
receiving, and keeps running the subtasks that are not on the waiting call stack (none that is
upstream of the waiting writer), which consume their input and return credits — so a slow
operator slows its sources instead of growing memory, and two slots sending to each other never
deadlock. A slot runs its own sources and what other slots sent it in one loop, so it takes
turns between them as a Flink task reads its input channels in turn: a remote channel ahead of
its gate's watermark delivers per round about as many records as the slot's own channels into
that gate did (see :meth:`SlotTask.process_pending`), and its sender waits for credit instead of
running ahead in event time.
"""

from __future__ import annotations

import time
from collections import deque
from itertools import chain
from types import SimpleNamespace
from typing import Any

import numpy as np

from flinkcore.common.watermark import MIN_WATERMARK
from flinkcore.runtime.cluster import wire
from flinkcore.runtime.columnar import columnar_input, enable_columnar
from flinkcore.runtime.exchange import GateChannel, InputGate, connected_targets, make_writer
from flinkcore.runtime.executor import Router, SourceInstance, columnar_batch_size
from flinkcore.runtime.graph import StreamGraph, StreamNode
from flinkcore.runtime.operators.base import Input, OperatorContext
from flinkcore.runtime.sources import END, reader_states
from flinkcore.state.heap import HeapKeyedStateBackend
from flinkcore.state.key_groups import key_group_range_for

__all__ = ["Placement", "RemoteChannel", "SlotTask", "TaskCancelled", "node_keys", "slot_sharing_groups"]

DEFAULT_BATCH_SIZE = 1024
#: records of Python batches a remote channel collects into one frame: records cost per record,
#: and the receiver's work on a decoded batch stays in the CPU caches while it is small (W2 udf at
#: p2: 256-512 records per frame 0.70 CPU-s, 1024: 0.81, 4096: 1.13)
DEFAULT_FRAME_RECORDS = 512
#: rows of Arrow record batches a remote channel collects into one frame (one IPC message: its
#: cost is per message; W2 columnar at p2: 1024 rows 0.72 CPU-s, 4096-65536: 0.56-0.61)
DEFAULT_FRAME_ROWS = 16384
#: credits a receiver grants per channel: what may be in flight on it before the sender waits
#: (Flink's buffers per channel)
DEFAULT_CREDITS = 8
#: bytes of a frame one credit stands for: a frame takes one credit per started CREDIT_BYTES (at
#: most all of them), so a channel holds up to ~2 MB in flight, as 8 small frames or 2 of W3
#: columnar's 32k-row ones (~780 KB), as Flink counts 32 KB buffers. With a credit per frame, 8
#: large frames in flight let one slot's stream run ~1 s of event time ahead of what the other
#: slot sends the same session window, whose table then merges a key's records from two times at
#: once: W3 columnar batch sink at p2 spent x1.20 / 1.31 / 1.26 / 1.41 p1's CPU with 8 credits of
#: one frame each against x1.09 / 1.22 / 1.18 / 1.21 with 2 (run.py, pairs alternately).
CREDIT_BYTES = 256 * 1024


def node_keys(graph: StreamGraph) -> dict[int, str]:
    """The key each node's state is stored under in a snapshot — the in-process executor's own
    rule, so checkpoints of both runtimes are interchangeable."""
    from flinkcore.runtime.executor import Job

    holder = SimpleNamespace(graph=graph, _generated_ids=None)
    return {nid: Job._node_key(holder, node) for nid, node in graph.nodes.items()}


class TaskCancelled(Exception):
    """The driver cancelled the job (or the job failed elsewhere)."""


class PeerLost(Exception):
    """Another process of the job (``process``: 0 the driver, k slot k - 1's worker) closed its
    connection before the job ended."""

    def __init__(self, process: int) -> None:
        super().__init__(process)
        self.process = process

    def __str__(self) -> str:
        return f"process {self.process} of the job closed its connection"


DEFAULT_SLOT_SHARING_GROUP = "default"


def slot_sharing_groups(graph: StreamGraph) -> dict[int, str]:
    """Each node's slot sharing group, as Flink determines it: the group the user named; else the
    group of its inputs when they all have one group; else ``"default"``."""
    groups: dict[int, str] = {}
    for node in graph.topological_order():
        group = node.slot_sharing_group
        if group is None:
            inputs = {groups[e.source_id] for e in graph.in_edges(node.id)}
            group = inputs.pop() if len(inputs) == 1 else DEFAULT_SLOT_SHARING_GROUP
        groups[node.id] = str(group)
    return groups


class Placement:
    """Which process runs each subtask, and the ids of the channels between subtasks.

    Flink's slot sharing: subtask ``i`` of every operator of one slot sharing group shares slot
    ``i`` of that group (a group has as many slots as its highest parallelism); operators of
    different groups never share a slot. Each slot is a worker process, numbered group after
    group in the order the groups first appear in the graph.
    """

    def __init__(self, graph: StreamGraph, sinks_in_driver: bool = True) -> None:
        self.graph = graph
        out_degree = {nid: 0 for nid in graph.nodes}
        for e in graph.edges:
            out_degree[e.source_id] += 1
        self.in_driver = {
            nid
            for nid, node in graph.nodes.items()
            if sinks_in_driver and not node.is_source and out_degree[nid] == 0
        }
        self.groups = slot_sharing_groups(graph)
        sizes: dict[str, int] = {}  # group -> its highest parallelism, groups in order of appearance
        for node in graph.topological_order():
            if node.id not in self.in_driver:
                group = self.groups[node.id]
                sizes[group] = max(sizes.get(group, 0), node.parallelism)
        #: slot sharing group -> (first worker index - 1, number of slots)
        self.slots: dict[str, tuple[int, int]] = {}
        first = 0
        for group, size in sizes.items():
            self.slots[group] = (first, size)
            first += size
        self.num_workers = max(first, 1)
        #: channel id -> (edge index, upstream subtask, downstream subtask)
        self.channels: list[tuple[int, int, int]] = []
        self.channel_id: dict[tuple[int, int, int], int] = {}
        for n, e in enumerate(graph.edges):
            up, down = graph.nodes[e.source_id], graph.nodes[e.target_id]
            for u in range(up.parallelism):
                for j in connected_targets(e.partitioner.kind, u, up.parallelism, down.parallelism):
                    self.channel_id[(n, u, j)] = len(self.channels)
                    self.channels.append((n, u, j))
        self.ancestors = self._ancestors()

    def process_of(self, node_id: int, subtask: int) -> int:
        """0 is the driver; workers are 1..num_workers."""
        if node_id in self.in_driver:
            return 0
        first, size = self.slots[self.groups[node_id]]
        return 1 + first + subtask % size

    def _ancestors(self) -> dict[int, frozenset[int]]:
        """Every node upstream of a node, and the node itself."""
        result: dict[int, frozenset[int]] = {}
        for node in self.graph.topological_order():
            acc = {node.id}
            for e in self.graph.in_edges(node.id):
                acc |= result[e.source_id]
            result[node.id] = frozenset(acc)
        return result


class RemoteChannel(Input):
    """The sending end of one channel to a subtask in another process. Columnar batches travel
    as Arrow IPC (the receiving slot gives them to inputs that take only records as Rows)."""

    accepts_columnar = True

    def __init__(self, task: SlotTask, peer: wire.Peer, channel: int, node_id: int) -> None:
        self.task = task
        self.peer = peer
        self.channel = channel
        self.node_id = node_id
        self.frame_records = task.frame_records
        self.frame_rows = task.frame_rows
        self._chunks: list[tuple[Any, Any]] = []
        self._kind: Any = None
        self._count = 0
        #: monotonic time of the oldest buffered record (for the buffer timeout)
        self.since = 0.0

    def process_batch(self, values: Any, timestamps: Any) -> None:
        columnar = type(values) is not list
        if columnar:
            kind = values.schema
            if timestamps is None:
                kind = (kind, None)
        else:
            kind = list
        if self._chunks and kind != self._kind:  # one frame holds one kind of batch
            self.flush()
        if columnar and len(values) > self.frame_rows and values.nbytes > self.peer.ring_frame_bytes // 2:
            self._send_in_slices(values, timestamps)
            return
        if not self._chunks:
            self.since = time.monotonic()
            self._kind = kind
            self.task._buffered[self] = None
        self._chunks.append((values, timestamps))
        self._count += len(values)
        if self._count >= (self.frame_rows if columnar else self.frame_records):
            self.flush()

    def flush(self) -> None:
        """Send the buffered records as one batch (waits for a credit)."""
        chunks = self._chunks
        if not chunks:
            return
        self._chunks, self._count = [], 0
        del self.task._buffered[self]
        if len(chunks) == 1:
            values, timestamps = chunks[0]
        elif self._kind is not list:  # Arrow record batches of one schema: one batch
            import pyarrow as pa

            values = pa.concat_batches([vs for vs, _ in chunks])
            timestamps = None
            if chunks[0][1] is not None:
                timestamps = np.concatenate([np.asarray(ts, dtype=np.int64) for _, ts in chunks])
        else:
            values = list(chain.from_iterable(vs for vs, _ in chunks))
            if all(ts is None for _, ts in chunks):
                timestamps = None
            else:
                timestamps = []
                for vs, ts in chunks:
                    timestamps.extend([None] * len(vs) if ts is None else ts)
        self._send(values, timestamps)

    def _send_in_slices(self, values: Any, timestamps: Any) -> None:
        """A columnar batch too large for half the ring (a window's fire at the end of input,
        say) goes out as zero-copy slices that fit: a frame larger than the ring takes the socket
        instead, copied twice, into buffers allocated for it, and the receiver would start on it
        only once all of it came; slices it works on while the rest are sent."""
        self.flush()
        if timestamps is not None:
            timestamps = np.asarray(timestamps, dtype=np.int64)
        step = max(self.frame_rows, len(values) * (self.peer.ring_frame_bytes // 2) // values.nbytes)
        for start in range(0, len(values), step):
            ts = None if timestamps is None else timestamps[start : start + step]
            self._send(values.slice(start, step), ts)

    def _send(self, values: Any, timestamps: Any) -> None:
        task = self.task
        parts = wire.encode_batch_parts(values, timestamps)
        cost = task.frame_credits(sum(map(len, parts)))
        if task.credits[self.channel] < cost:
            task.await_credit(self.channel, self.node_id, cost)
        task.credits[self.channel] -= cost
        self.peer.send(wire.BATCH, self.channel, parts)
        task.records_sent += len(values)

    def process_watermark(self, watermark: int) -> None:
        self.flush()
        self.peer.send(wire.WATERMARK, self.channel, wire.encode_i64(watermark))

    def process_watermark_status(self, idle: bool) -> None:
        self.flush()
        self.peer.send(wire.STATUS, self.channel, b"\x01" if idle else b"\x00")

    def end_input(self) -> None:
        self.flush()
        self.peer.send(wire.END, self.channel)

    def emit_barrier(self, checkpoint_id: int) -> None:
        """The barrier follows every record sent before it (it needs no credit)."""
        self.flush()
        self.peer.send(wire.BARRIER, self.channel, wire.encode_i64(checkpoint_id))


class SlotTask:
    """The subtasks of one process of a job, and the exchange with the other processes."""

    def __init__(
        self,
        graph: StreamGraph,
        placement: Placement,
        me: int,
        peers: dict[int, wire.Peer],
        processing_time_service: Any,
        on_control: Any = None,
    ) -> None:
        self.graph = graph
        self.placement = placement
        self.me = me
        self.peers = peers
        self.pts = processing_time_service
        self.on_control = on_control
        config = graph.config
        self.batch_size = int(config.get("batch_size", DEFAULT_BATCH_SIZE))
        #: rows per poll of a source that emits columnar batches (the in-process rule)
        self.columnar_batch_size = columnar_batch_size(config)
        #: records (of Python batches) and rows (of Arrow batches) a remote channel collects into
        #: one frame (see DEFAULT_FRAME_RECORDS/ROWS); the buffer timeout bounds the latency.
        self.frame_records = int(
            config.get("cluster_frame_records") or min(self.batch_size, DEFAULT_FRAME_RECORDS)
        )
        self.frame_rows = int(config.get("cluster_frame_rows") or max(self.batch_size, DEFAULT_FRAME_ROWS))
        self.buffer_timeout = int(config.get("buffer_timeout", 100))
        self.runtime_mode = config.get("runtime_mode", "STREAMING")
        initial = int(config.get("cluster_credits", DEFAULT_CREDITS))
        self.cancelled = False
        self.records_sent = 0
        #: (node id, subtask) -> operator instance or source reader, of this process
        self.instances: dict[tuple[int, int], Any] = {}
        self.sources: list[SourceInstance] = []
        self.routers: list[Router] = []
        self.gates: list[InputGate] = []
        self.remote_out: list[RemoteChannel] = []
        #: outbound channel -> credits left
        self.credits: dict[int, int] = {}
        #: inbound channel -> (the local input it feeds, node id)
        self.inbound: dict[int, tuple[Input, int]] = {}
        self.open_inbound: set[int] = set()
        self._credit_due: dict[int, int] = {}
        #: inbound channel -> the peer that sends on it (where its credits go)
        self._sender: dict[int, wire.Peer] = {}
        self._initial_credits = initial
        self._pending: deque[tuple[int, int, memoryview]] = deque()
        #: (node id, subtask) -> ids of every channel into it; -> where its output channels end
        self.in_channels: dict[tuple[int, int], set[int]] = {}
        self.out_channels: dict[tuple[int, int], list[tuple[int, Any]]] = {}
        #: channel id -> the local subtask it feeds
        self.channel_target: dict[int, tuple[int, int]] = {}
        self.node_key = node_keys(graph)
        #: called with (checkpoint id, snapshot parts) when every local subtask took checkpoint n
        self.on_checkpoint_done: Any = None
        self._checkpoint: dict | None = None
        self._held: set[int] = set()
        self._sources_paused = False
        self._aborted_up_to = 0
        #: actions that must run between batches, never inside one (a checkpoint trigger, a commit)
        self.deferred: deque[Any] = deque()
        #: a control message came in this round (see :meth:`step`)
        self._control_seen = False
        #: completed checkpoints the subtasks have not been told of yet
        self._completions_due: set[int] = set()
        self._blocked: list[int] = []
        self._unsafe: frozenset[int] = frozenset()
        #: pacing (see process_pending): inbound channel -> (its gate, its index there), for the
        #: remote channels of gates that also have local channels; -> records it may still
        #: deliver this round; those gates with their remote channels
        self._gate_of: dict[int, tuple[InputGate, int]] = {}
        self._deficit: dict[int, int] = {}
        #: the channels whose messages the rounds of process_pending under way keep (see there)
        self._waiting: set[int] = set()
        self._paced_gates: list[tuple[InputGate, list[int]]] = []
        self._poller = wire.Poller(peers.values())
        #: the remote channels that hold buffered records (see flush_timed_out)
        self._buffered: dict[RemoteChannel, None] = {}
        self._build()

    # -- building ---------------------------------------------------------------------------
    def local(self, node_id: int, subtask: int) -> bool:
        return self.placement.process_of(node_id, subtask) == self.me

    def _make_backend(self, node: StreamNode, index: int) -> Any:
        factory = self.graph.config.get("state_backend_factory") or HeapKeyedStateBackend
        kg_range = key_group_range_for(index, node.max_parallelism, node.parallelism)
        return factory(
            max_parallelism=node.max_parallelism,
            key_group_range=kg_range if node.parallelism > 1 else None,
            ttl_time_provider=self.pts.current_processing_time,
        )

    def _build(self) -> None:
        g, pl = self.graph, self.placement
        order = g.topological_order()
        contexts: dict[tuple[int, int], OperatorContext] = {}
        for node in order:
            keyed = any(k is not None for k in node.key_selectors)
            for i in range(node.parallelism):
                if not self.local(node.id, i):
                    continue
                ctx = OperatorContext(
                    name=node.name,
                    subtask_index=i,
                    parallelism=node.parallelism,
                    max_parallelism=node.max_parallelism,
                    key_selectors=list(node.key_selectors),
                    state_backend=self._make_backend(node, i) if keyed and not node.is_source else None,
                    processing_time_service=self.pts,
                    config=g.config,
                    runtime_mode=self.runtime_mode,
                    job_name=g.job_name,
                )
                contexts[(node.id, i)] = ctx
                if node.is_source:
                    self.instances[(node.id, i)] = node.source.create_reader(i, node.parallelism)
                else:
                    self.instances[(node.id, i)] = node.operator_factory()
        # downstream ends of every channel into a local subtask: a gate where an input has several
        channel_of: dict[tuple[int, int, int], Input] = {}
        for node in order:
            if node.is_source:
                continue
            in_edges = [(n, e) for n, e in enumerate(g.edges) if e.target_id == node.id]
            for j in range(node.parallelism):
                if not self.local(node.id, j):
                    continue
                op_inputs = self.instances[(node.id, j)].inputs()
                for k in range(node.num_inputs):
                    conns = []
                    for n, e in in_edges:
                        if e.input_index != k:
                            continue
                        up = g.nodes[e.source_id]
                        for u in range(up.parallelism):
                            if (n, u, j) in pl.channel_id:
                                conns.append((n, u))
                    if len(conns) == 1:
                        targets = [op_inputs[k]]
                    elif conns:
                        gate = InputGate(op_inputs[k], len(conns))
                        self.gates.append(gate)
                        targets = list(gate.channels)
                    else:
                        targets = []
                    for (n, u), target in zip(conns, targets, strict=True):
                        channel_of[(n, u, j)] = target
                        cid = pl.channel_id[(n, u, j)]
                        self.in_channels.setdefault((node.id, j), set()).add(cid)
                        self.channel_target[cid] = (node.id, j)
                        if not self.local(g.edges[n].source_id, u):
                            cid = pl.channel_id[(n, u, j)]
                            self.inbound[cid] = (target, node.id)
                            self._sender[cid] = self.peers[pl.process_of(g.edges[n].source_id, u)]
                            self.open_inbound.add(cid)
                            if isinstance(target, GateChannel):
                                self._gate_of[cid] = (target.gate, target.index)
        # upstream ends: local channels are direct calls, others remote channels
        for node in order:
            out_edges = [(n, e) for n, e in enumerate(g.edges) if e.source_id == node.id]
            for u in range(node.parallelism):
                if not self.local(node.id, u):
                    continue
                main: list[Input] = []
                side: dict[str, list[Input]] = {}
                for n, e in out_edges:
                    down = g.nodes[e.target_id]
                    chans: list[Input] = []
                    outs = self.out_channels.setdefault((node.id, u), [])
                    for j in connected_targets(e.partitioner.kind, u, node.parallelism, down.parallelism):
                        cid = pl.channel_id[(n, u, j)]
                        if self.local(down.id, j):
                            chans.append(channel_of[(n, u, j)])
                            outs.append((cid, None))
                        else:
                            peer = self.peers[pl.process_of(down.id, j)]
                            rc = RemoteChannel(self, peer, cid, node.id)
                            self.remote_out.append(rc)
                            self.credits[cid] = self._initial_credits
                            chans.append(rc)
                            outs.append((cid, rc))
                    writer = make_writer(e.partitioner, chans, u, down.max_parallelism, down.name)
                    if e.side_output_tag is None:
                        main.append(writer)
                    else:
                        side.setdefault(e.side_output_tag, []).append(writer)
                router = Router(main, side)
                self.routers.append(router)
                inst = self.instances[(node.id, u)]
                ctx = contexts[(node.id, u)]
                if node.is_source:
                    self.sources.append(SourceInstance(node, u, inst, router, ctx))
                else:
                    inst.setup(ctx, router)

    # -- life cycle ---------------------------------------------------------------------------
    def operators(self) -> list[Any]:
        return [inst for (nid, _), inst in self.instances.items() if not self.graph.nodes[nid].is_source]

    def open(self, restore: dict | None = None, node_key: Any = None) -> list[Any]:
        """Restore (from a job snapshot keyed by ``node_key(node)``), then open operators (sinks
        first), bind the direct calls, open source readers. Returns what was opened, in order."""
        opened: list[Any] = []
        if restore:
            for (nid, i), inst in self.instances.items():
                node = self.graph.nodes[nid]
                entry = restore.get(node_key(node))
                if entry is None:
                    continue
                if node.is_source:
                    states = entry.get("source", [])
                    if states:
                        inst.restore_state(reader_states(node.source, states, node.parallelism)[i])
                else:
                    inst.restore_state(entry.get("operator", []))
        for node in reversed(self.graph.topological_order()):
            if node.is_source:
                continue
            for i in range(node.parallelism):
                inst = self.instances.get((node.id, i))
                if inst is not None:
                    inst.open()
                    opened.append(inst)
        self._fuse()  # before the direct calls are bound: they take the fused process_batch
        columnar = self._enable_columnar()
        for gate in self.gates:
            if columnar:
                gate.accept_columnar()
            gate.bind()
        self._pace_gates()
        for router in self.routers:
            router.bind(columnar)
        if columnar:  # columnar batches that arrive from other slots (as Arrow IPC)
            self.inbound = {cid: (columnar_input(t), nid) for cid, (t, nid) in self.inbound.items()}
        for s in self.sources:
            s.reader.open(s.context)
            opened.append(s.reader)
        return opened

    def _pace_gates(self) -> None:
        """Keep pacing for the remote channels of gates that also have local channels, and count
        the records of those local channels (the measure of a remote channel's turn, see
        :meth:`process_pending`); a gate fed only from other slots has no local turn to take."""
        remote: dict[int, tuple[InputGate, list[int]]] = {}
        for cid, (gate, _) in self._gate_of.items():
            remote.setdefault(id(gate), (gate, []))[1].append(cid)
        for gate, channels in remote.values():
            remote_at = {self._gate_of[c][1] for c in channels}
            local = [i for i in range(len(gate.channels)) if i not in remote_at]
            if not local:
                for c in channels:
                    del self._gate_of[c]
                continue
            for i in local:
                gate.count_local(i)
            self._paced_gates.append((gate, channels))
            self._deficit.update(dict.fromkeys(channels, 0))

    def _enable_columnar(self) -> bool:
        """The in-process executor's columnar path in this slot (one rule for both:
        :func:`flinkcore.runtime.columnar.enable_columnar`). On for the whole slot when the job's
        config allows it and the job has a producer of columnar batches anywhere — here, or in a
        slot that sends to this one (what arrives over a channel may be an Arrow batch)."""
        if not self.graph.config.get("columnar", True):
            return False
        here = enable_columnar(self.graph.config, self.sources, self.operators(), self.columnar_batch_size)
        return here or bool(self.inbound)

    def _fuse(self) -> None:
        """The in-process executor's fusion (runtime/fusion.py) inside this slot: stateless
        map/filter chains run as one loop, and a timestamp assigner [-> map] feeding an event-time
        window (or a local pre-aggregation) runs inside its compiled loop. Only chained (direct
        call) operators fuse; a remote channel ends a chain."""
        from flinkcore.runtime.fusion import fusable_chain, fuse_chain, fuse_timestamps_into_window

        for (nid, _), inst in self.instances.items():
            if self.graph.nodes[nid].is_source:
                continue
            chain = fusable_chain(inst)
            if chain:
                inst.process_batch = fuse_chain(chain)
                continue
            fused = fuse_timestamps_into_window(inst)
            if fused is not None:
                inst.process_batch = fused

    @property
    def finished(self) -> bool:
        """Every local source ended and every inbound channel delivered end of input."""
        return not self.sources and not self.open_inbound and not self._pending

    # -- the exchange ---------------------------------------------------------------------------
    def _handle(self, peer: wire.Peer, frames: list) -> None:
        for kind, channel, payload in frames:
            if kind == wire.CREDIT:
                self.credits[channel] += wire.decode_i64(payload)
            elif kind == wire.CONTROL:
                self.on_control(peer.index, wire.decode_control(payload))
                self._control_seen = True
            else:
                self._pending.append((channel, kind, payload))

    def poll_io(self, timeout: float, extra: list | None = None) -> list:
        """Wait up to ``timeout`` s for input (or for ``extra`` objects), read it, write what is
        queued (sockets and rings: :func:`wire.poll`). Returns the ready ``extra`` objects."""
        events, ready_extra = self._poller.poll(timeout, extra)
        for peer, frames in events:
            if frames:
                self._handle(peer, frames)
            if peer.eof:
                self.on_peer_closed(peer)
        return ready_extra

    def on_peer_closed(self, peer: wire.Peer) -> None:
        """Overridden by the driver; in a worker, a lost peer ends the task."""
        raise PeerLost(peer.index)

    def process_pending(self, pace: bool = False) -> bool:
        """Run received messages through the local subtasks (those not on a waiting call stack).

        ``pace`` (a round of :meth:`step` while local sources run): a remote channel whose
        watermark is ahead of its gate's takes turns with the gate's local channels, as a Flink
        task reads its input channels round-robin: per round it delivers about as many records
        as the local channels did (deficit round-robin), or one batch in a round where they
        delivered nothing (a local pre-aggregation sends in bursts). Without it, a slot that
        fell behind takes every batch a faster slot sent (up to ``credits``) per batch of its
        own source, which makes it slower still: one source then runs seconds of event time
        ahead of the other, and windows hold records far past the watermark (W3 at p2: sources
        1-5 s apart, most keys holding several sessions). Paced, the faster sender soon waits
        for credit, as a Flink source waits for buffers. Channels at their gate's watermark,
        channels without a gate, and every event (watermark, barrier, end of input) go through
        at once."""
        pending = self._pending
        if not pending:
            return False
        deficit = self._deficit
        if pace:
            for gate, channels in self._paced_gates:
                quantum = gate.local_records
                gate.local_records = 0
                for c in channels:
                    if quantum:
                        d = deficit[c] + quantum
                        deficit[c] = d if d < quantum else quantum
                    elif deficit[c] <= 0:  # nothing local to take turns with: one batch
                        deficit[c] = 1
        kept = []
        # channels whose turn of this round is over. A channel that kept a message keeps the rest,
        # here and in a round nested in this one (a dispatch that waits for credit): its messages
        # run in order. (A snapshot that completes in a round ends the hold of channels, whose
        # later messages would otherwise run before those they kept: a batch after its end of input.)
        enclosing = self._waiting
        waiting = self._waiting = set(enclosing)
        try:
            progressed = self._run_pending(pending, pace, kept, waiting)
        finally:
            self._waiting = enclosing
            if kept:
                pending.extendleft(reversed(kept))
        self.send_credits()
        return progressed

    def _run_pending(self, pending: deque, pace: bool, kept: list, waiting: set[int]) -> bool:
        deficit = self._deficit
        progressed = False
        gate_of = self._gate_of
        while pending:
            item = pending.popleft()
            channel = item[0]
            target, node_id = self.inbound[channel]
            if channel in waiting or node_id in self._unsafe or channel in self._held:
                waiting.add(channel)
                kept.append(item)
                continue
            if pace and item[1] == wire.BATCH and channel in gate_of:
                gate, i = gate_of[channel]
                if gate.watermarks[i] > gate.last > MIN_WATERMARK:  # ahead of the gate
                    if deficit[channel] <= 0:
                        waiting.add(channel)
                        kept.append(item)
                        continue
                    deficit[channel] -= self._dispatch(item, target)
                    progressed = True
                    continue
                deficit[channel] = 0
            self._dispatch(item, target)
            progressed = True
        return progressed

    def _dispatch(self, item: tuple[int, int, memoryview], target: Input) -> int:
        """Run one message; returns the number of records it carried."""
        channel, kind, payload = item
        if kind == wire.BATCH:
            values, timestamps = wire.decode_batch(payload)
            self._credit_due[channel] = self._credit_due.get(channel, 0) + self.frame_credits(len(payload))
            target.process_batch(values, timestamps)
            return len(values)
        if kind == wire.WATERMARK:
            target.process_watermark(wire.decode_i64(payload))
        elif kind == wire.STATUS:
            target.process_watermark_status(payload[0] == 1)
        elif kind == wire.END:
            self.open_inbound.discard(channel)
            target.end_input()
        elif kind == wire.BARRIER:
            self._on_barrier(channel, wire.decode_i64(payload), remote=True)
        else:
            raise RuntimeError(f"unexpected frame kind {kind} on channel {channel}")
        return 0

    def send_credits(self) -> None:
        if not self._credit_due:
            return
        due, self._credit_due = self._credit_due, {}
        sender = self._sender
        for cid, n in due.items():
            sender[cid].send(wire.CREDIT, cid, wire.encode_i64(n))

    def frame_credits(self, size: int) -> int:
        """Credits a frame of ``size`` bytes takes (the sender) and gives back once run (the
        receiver): one per started CREDIT_BYTES, at most all a channel has."""
        return min(self._initial_credits, max(1, -(-size // CREDIT_BYTES)))

    def await_credit(self, channel: int, node_id: int, need: int = 1) -> None:
        """Wait until ``channel`` has ``need`` credits; meanwhile run what is safe to run
        (backpressure)."""
        self._blocked.append(node_id)
        ancestors = self.placement.ancestors
        self._unsafe = frozenset().union(*(ancestors[b] for b in self._blocked))
        try:
            while self.credits[channel] < need:
                if self.cancelled:
                    raise TaskCancelled("the job was cancelled")
                if not self.process_pending():
                    self.poll_io(0.05)
        finally:
            self._blocked.pop()
            self._unsafe = frozenset().union(*(ancestors[b] for b in self._blocked))

    def flush_timed_out(self, now: float) -> float | None:
        """Send buffers older than the buffer timeout; returns when the next one is due."""
        timeout = self.buffer_timeout / 1000.0
        due = None
        for rc in list(self._buffered):
            if now - rc.since >= timeout:
                rc.flush()
            else:
                t = rc.since + timeout
                due = t if due is None or t < due else due
        return due

    def flush_all(self) -> None:
        for rc in self.remote_out:
            rc.flush()

    # -- the loop -------------------------------------------------------------------------------
    def step(self, extra: list | None = None) -> list:
        """One round: poll sources, exchange, fire due processing-time callbacks, flush timed-out
        buffers. Returns the ``extra`` objects that became ready."""
        progressed = False
        while self.deferred:
            self.deferred.popleft()()
            progressed = True
        for s in [] if self._sources_paused else list(self.sources):
            r = s.poll(s.batch_size or self.batch_size)
            if r is None:
                continue
            progressed = True
            if r is END:
                self.sources.remove(s)
                s.finish()
            elif r[0] is not None and len(r[0]):
                s.output.collect(r[0], r[1])
        ready = self.poll_io(0, extra)
        if self._pending and self.process_pending(pace=bool(self.sources) and not self._sources_paused):
            progressed = True
        pts = self.pts
        deadline = pts.next_deadline()
        if deadline is not None:
            now_ms = pts.current_processing_time()
            if now_ms >= deadline:
                pts.advance(now_ms)
                progressed = True
        flush_due = self.flush_timed_out(time.monotonic()) if self._buffered else None
        if progressed or ready or self._control_seen or self.deferred:
            # (a control message may have ended this loop's wait, or queued work: no sleep now)
            self._control_seen = False
            return ready
        # nothing to do now: sleep until input, a timer, or a buffer's timeout
        wait = 0.1
        if deadline is not None:
            wait = min(wait, max(deadline - pts.current_processing_time(), 0) / 1000.0)
        if flush_due is not None:
            wait = min(wait, max(flush_due - time.monotonic(), 0))
        if self.sources:
            wait = min(wait, max(self.buffer_timeout, 1) / 1000.0)
        return ready + self.poll_io(wait, extra)

    # -- checkpoint barriers ----------------------------------------------------------------------
    def _begin(self, checkpoint_id: int, exactly_once: bool) -> dict | None:
        """Checkpoint ``checkpoint_id`` here (None when it is no longer taken). As in Flink, a
        newer checkpoint subsumes the one under way, which is aborted here (its held channels
        released: their barriers of the newer one come after what they hold), and the barriers of
        an older or aborted one are ignored. (The coordinator takes one checkpoint at a time: a
        newer one starts only after the last completed or expired; a slot may see its barriers
        before the abort of an expired one.)"""
        ck = self._checkpoint
        if ck is not None and ck["id"] == checkpoint_id:
            return ck
        if checkpoint_id <= self._aborted_up_to:
            return None
        if ck is not None:
            if checkpoint_id < ck["id"]:
                return None
            self.abort_checkpoint(ck["id"])
        ck = self._checkpoint = {
            "id": checkpoint_id,
            "exactly_once": exactly_once,
            "seen": {},
            "done": set(),
            "parts": {},
            "triggered": False,
        }
        return ck

    def trigger_checkpoint(self, checkpoint_id: int, exactly_once: bool = True) -> None:
        """The driver's trigger: snapshot the local sources' positions and send barriers after
        what they emitted. A source that finished already (a bounded side input) is snapshotted at
        its end, and its barriers follow its end of input on every channel, so the subtasks after
        it align as on a running channel (Flink's checkpoints after tasks finished, FLIP-147; a
        slot whose subtasks all finished takes part so until the job ends)."""
        ck = self._begin(checkpoint_id, exactly_once)
        if ck is None:
            return
        ck["exactly_once"] = exactly_once
        ck["triggered"] = True
        if exactly_once:
            self._sources_paused = True  # nothing after the barrier until this slot's snapshot is taken
        for key in [k for k in self.instances if self.graph.nodes[k[0]].is_source]:
            self._snapshot_instance(key, checkpoint_id)
        self._check_done()

    def _on_barrier(self, channel: int, checkpoint_id: int, remote: bool) -> None:
        ck = self._checkpoint
        if ck is None or ck["id"] != checkpoint_id:
            ck = self._begin(checkpoint_id, True)
            if ck is None:
                return  # a barrier of an aborted checkpoint
        if remote and ck["exactly_once"]:
            self._held.add(channel)  # aligned: what follows the barrier waits for the snapshot
        key = self.channel_target[channel]
        seen = ck["seen"].setdefault(key, set())
        seen.add(channel)
        if seen >= self.in_channels[key] and key not in ck["done"]:
            self._snapshot_instance(key, checkpoint_id)
        self._check_done()

    def _snapshot_instance(self, key: tuple[int, int], checkpoint_id: int) -> None:
        """Snapshot one subtask, then pass the barrier on to every channel out of it."""
        ck = self._checkpoint
        nid, index = key
        inst = self.instances[key]
        node = self.graph.nodes[nid]
        if node.is_source:
            entry = ck["parts"].setdefault(self.node_key[nid], {})
            entry.setdefault("source", {})[index] = inst.snapshot_state()
        else:
            inst.prepare_snapshot_pre_barrier(checkpoint_id)
            # a local pre-aggregation sent everything before the barrier: it has no entry, so the
            # snapshot restores into the job without it too
            if not getattr(inst, "holds_no_state", False):
                entry = ck["parts"].setdefault(self.node_key[nid], {})
                entry.setdefault("operator", {})[index] = inst.snapshot_state()
        ck["done"].add(key)
        for cid, remote in self.out_channels.get(key, ()):
            if remote is not None:
                remote.emit_barrier(checkpoint_id)
            else:
                self._on_barrier(cid, checkpoint_id, remote=False)

    def _check_done(self) -> None:
        ck = self._checkpoint
        if ck is None or not ck["triggered"] or len(ck["done"]) < len(self.instances):
            return
        self._checkpoint = None
        self._held.clear()
        self._sources_paused = False
        if self.on_checkpoint_done is not None:
            self.on_checkpoint_done(ck["id"], ck["parts"])

    def abort_checkpoint(self, checkpoint_id: int) -> None:
        """Forget checkpoint ``checkpoint_id`` and those before it (it expired, or a newer one
        subsumes it): its alignment ends, the sources go on, its late barriers are ignored."""
        self._aborted_up_to = max(self._aborted_up_to, checkpoint_id)
        ck = self._checkpoint
        if ck is not None and ck["id"] <= checkpoint_id:
            self._checkpoint = None
            self._held.clear()
            self._sources_paused = False

    def notify_checkpoint_complete(self, checkpoint_id: int) -> None:
        self._completions_due.discard(checkpoint_id)
        for op in self.operators():
            op.notify_checkpoint_complete(checkpoint_id)

    def checkpoint_completed(self, checkpoint_id: int) -> None:
        """Checkpoint ``checkpoint_id`` is durable: the subtasks hear it between two batches (a
        transactional sink commits then), or in :meth:`deliver_completions` when the task ends
        before its next round."""
        self._completions_due.add(checkpoint_id)
        self.deferred.append(lambda: self.notify_checkpoint_complete(checkpoint_id))

    def deliver_completions(self) -> None:
        """Tell the subtasks of every completed checkpoint they have not heard of yet (when the
        task is cancelled or stopped right after one, as by stop-with-savepoint: what a durable
        checkpoint pre-committed may always be committed)."""
        for checkpoint_id in sorted(self._completions_due):
            self.notify_checkpoint_complete(checkpoint_id)
