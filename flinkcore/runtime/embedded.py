"""Embedded jobs: a job that runs inside the caller's own thread, fed record by record.

A latency-sensitive service (a web handler, a fraud scorer, a trading loop) builds a job on a
push source and drives it itself::

    env = StreamExecutionEnvironment.get_execution_environment()
    events = env.from_push_source("events")
    events.key_by(lambda e: e["card"]).process(Scorer())   # left unconsumed: comes back to us
    job = env.execute_embedded()
    alerts = job.push({"card": "c1", "amount": 12.5})      # a list of the job's main output
    job.snapshot("/var/lib/scorer/savepoints")             # later: execute_embedded(restore_from=...)
    job.close()

What comes back. An embedded job hands the caller what its graph leaves *unconsumed*: the main
output of every operator nothing reads from (``push`` and friends return it) and every side output
no ``get_side_output`` stream reads (``outputs(tag)`` drains it). Sinks in the job still run as
usual and emit nothing, so a job may mix both.

How a push runs. There is no task thread, no queue and no buffer timeout: the job is the same
wired graph the in-process executor builds (:class:`~flinkcore.runtime.executor.Job`), and
``push(record)`` calls the source's chained successor with a batch of one, so the record has gone
through every operator when ``push`` returns. Keyed state, timers and windows are the very
operators of a normal run, so they behave exactly as in one.

Time. The caller's thread is the task thread (Flink's mailbox model): what the normal loop does
between batches — periodic watermark emission every ``auto_watermark_interval`` ms,
processing-time timers and windows, idleness checks — happens when it is due, at the start of the
caller's next ``push`` / ``push_many``, or on :meth:`EmbeddedJob.fire_timers` (a service that
wants them between requests calls it from a ticker, under the lock it pushes with). Event time follows
the job's watermark strategy with Flink's semantics: a strategy set with
``assign_timestamps_and_watermarks`` emits its generator's watermark periodically (in processing
time; use a generator that emits on events for a watermark after every record), and
:meth:`EmbeddedJob.advance_watermark` is the source emitting a watermark itself, for jobs that
take timestamps from ``push(record, timestamp)`` and have no strategy. A job started with
``processing_time=<ms>`` has a manual processing-time clock that only
:meth:`EmbeddedJob.advance_time` moves (tests, simulations, replays).

Threads. One pusher at a time: a call that finds another one running (from another thread, or
re-entered from a user function) raises :class:`ConcurrentPushError` at once instead of waiting
for a lock, so contention shows up as an error rather than as hidden latency. Serialize callers
yourself (a lock or a queue in front of the job) if several threads feed one job. The asyncio
variants :meth:`EmbeddedJob.apush` / :meth:`EmbeddedJob.apush_many` run inline (a push takes
microseconds) and wait their turn among coroutines.

Snapshots. :meth:`EmbeddedJob.snapshot` writes a savepoint (the format of a normal run's) between
two calls, a consistent cut with no record in flight; ``execute_embedded(restore_from=path)``
continues from it. :meth:`EmbeddedJob.snapshot_async` takes the same cut but writes on a thread
(serialization still holds the GIL, so a push during the write may wait for one operator's state
to be serialized). Periodic checkpoints (``enable_checkpointing``) are not taken by an embedded
job, which has no thread of its own: the service snapshots when it wants to (e.g. on shutdown).

Failures. An exception from the job propagates out of ``push`` and fails the job, as it fails a
normal run: operators may have applied part of the record, so further calls raise; restore from
the last snapshot to continue.
"""

from __future__ import annotations

import asyncio
import logging
import os
import queue
import threading
from collections.abc import Iterable, Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from typing import Any

from flinkcore.common.typeinfo import RowTypeInfo
from flinkcore.common.types import Row, row_class
from flinkcore.common.watermark import MAX_WATERMARK
from flinkcore.runtime.checkpointing import check_mapping, encode_snapshot, load_snapshot, write_files
from flinkcore.runtime.executor import Job
from flinkcore.runtime.graph import StreamGraph
from flinkcore.runtime.operators.base import Input, SideOutputTag
from flinkcore.runtime.operators.watermarks import TimestampsAndWatermarksOperator
from flinkcore.runtime.processing_time import ManualClock
from flinkcore.runtime.sources import Source, SourceReader
from flinkcore.state.checkpoint_storage import begin_savepoint
from flinkcore.state.snapshots import deferred_snapshots

log = logging.getLogger(__name__)

__all__ = ["ConcurrentPushError", "EmbeddedJob", "EmbeddedJobError", "PushSource"]


class EmbeddedJobError(RuntimeError):
    """The embedded job cannot take this call: it is closed, failed, or misused."""


class ConcurrentPushError(EmbeddedJobError):
    """Another call is running on the job (one pusher at a time; serialize your callers)."""


# -- the source -----------------------------------------------------------------------------------
class _PushSourceReader(SourceReader):
    """The reader of a push source: records arrive through :meth:`EmbeddedJob.push`, never by
    polling, so a normal ``execute()`` that polls it fails with a pointer to ``execute_embedded``."""

    def __init__(self, name: str) -> None:
        self.name = name

    def poll(self, max_records: int) -> Any:
        raise EmbeddedJobError(
            f"push source '{self.name}' is fed by the caller: run this job with env.execute_embedded() "
            "and push records with job.push(record), not with execute() / execute_async()"
        )


class PushSource(Source):
    """A source fed by the caller of an embedded job (``env.from_push_source(name)``).

    Unbounded (it ends only with :meth:`EmbeddedJob.finish`) and not parallel.
    """

    bounded = False
    parallel = False

    def __init__(self, name: str, type_info: Any = None) -> None:
        if not isinstance(name, str) or not name:
            raise ValueError(f"a push source needs a non-empty name, got {name!r}")
        self.name = name
        self.type_info = type_info
        #: with a ``Types.ROW``/``ROW_NAMED`` type, pushed tuples become Rows named by it (as
        #: ``from_collection`` does), so the same job sees the same records either way
        names = getattr(type_info, "field_names", None)
        self.row_class = row_class(tuple(names)) if isinstance(type_info, RowTypeInfo) and names else None

    def create_reader(self, subtask_index: int, parallelism: int) -> SourceReader:
        return _PushSourceReader(self.name)


# -- collecting what the graph leaves unconsumed ---------------------------------------------------
class _Collector(Input):
    """Appended as an extra main target of operators nothing consumes: gathers their records."""

    __slots__ = ("out",)

    def __init__(self, out: list) -> None:
        self.out = out

    def process_batch(self, values: list, timestamps: list | None) -> None:
        self.out += values

    def process_watermark(self, watermark: int) -> None:
        pass

    def end_input(self) -> None:
        pass


def _side_capture(router: Any, buffers: dict[str, list]) -> None:
    """Route side outputs that no downstream operator reads into ``buffers`` (per tag id)."""
    consumed = frozenset(router.side)
    forward = router.collect_side

    def collect_side(tag_id: str, values: list, timestamps: list | None) -> None:
        if tag_id in consumed:
            forward(tag_id, values, timestamps)
        else:
            buf = buffers.get(tag_id)
            if buf is None:
                buffers[tag_id] = list(values)
            else:
                buf += values

    router.collect_side = collect_side


def _typed_head(source: Any) -> Any:
    """What a push calls: the source's chained successor, behind a tuple -> Row conversion when
    the source is Row-typed."""
    head = source.output.collect
    cls = source.node.source.row_class
    if cls is None:
        return head
    new = tuple.__new__

    def push_rows(values: list, timestamps: list | None) -> None:
        head(
            [v if isinstance(v, Row) else new(cls, v) if isinstance(v, (tuple, list)) else v for v in values],
            timestamps,
        )

    return push_rows


_CREATED, _RUNNING, _CLOSED, _FAILED = "CREATED", "RUNNING", "CLOSED", "FAILED"

#: how often (processing-time ms) the caller's calls look for a finished asynchronous snapshot
_SNAPSHOT_POLL_MS = 10


class EmbeddedJob:
    """A running job driven by its caller (see the module docstring).

    Created by ``env.execute_embedded(job_name=None, restore_from=None, processing_time=None)``.

    Args:
        graph: the job graph (from ``StreamExecutionEnvironment``).
        restore_from: a savepoint or checkpoint directory (as returned by :meth:`snapshot`) to
            start from; operators are matched by ``uid`` (or by position when they have none).
        processing_time: None for the wall clock; an int (ms) for a manual processing-time clock
            starting there, moved only by :meth:`advance_time`.
    """

    def __init__(
        self,
        graph: StreamGraph,
        restore_from: str | os.PathLike | None = None,
        processing_time: int | None = None,
    ) -> None:
        self._manual_clock = ManualClock(int(processing_time)) if processing_time is not None else None
        restore = None
        if restore_from is not None:
            restore, _ = load_snapshot(os.fspath(restore_from))
        self._job = job = Job(graph, clock=self._manual_clock, restore=restore)
        if restore is not None:
            check_mapping(restore, job)
        self._sources = {s.node.name: s for s in job.sources if isinstance(s.node.source, PushSource)}
        if not self._sources:
            raise EmbeddedJobError(
                "an embedded job needs a push source: create the stream with env.from_push_source(name)"
            )
        if len(self._sources) != len(job.sources):
            others = [s.node.name for s in job.sources if not isinstance(s.node.source, PushSource)]
            raise EmbeddedJobError(
                f"an embedded job is fed only by push sources; {others} would need a task thread to poll "
                "them: run such a job with execute() / execute_async()"
            )
        self._status = _CREATED
        self._failure: BaseException | None = None
        self._lock = threading.Lock()
        self._async_lock: asyncio.Lock | None = None
        self._next_checkpoint_id = 1
        self._snapshot_thread: threading.Thread | None = None
        self._snapshots_done: queue.SimpleQueue = queue.SimpleQueue()
        self._out: list = []
        self._side: dict[str, list] = {}
        self._consumed_tags = {e.side_output_tag for e in graph.edges if e.side_output_tag is not None}
        self._opened: list[Any] = []
        self._start()

    # -- life cycle -------------------------------------------------------------------------------
    def _start(self) -> None:
        job = self._job
        g = job.graph
        consumed_main = {e.source_id for e in g.edges if e.side_output_tag is None}
        collector = _Collector(self._out)
        self._collector = collector
        for node in g.topological_order():
            for u in range(node.parallelism):
                if node.is_source:
                    router = next(s.output for s in job.sources if s.node is node and s.index == u)
                else:
                    router = job.operators[node.id][u].output
                    _side_capture(router, self._side)
                if node.id not in consumed_main:
                    router.main.append(collector)
                    router.all.append(collector)
        job.status = "RUNNING"
        try:
            if job._restore:
                job._apply_restore(job._restore)
            for node in reversed(g.topological_order()):
                if node.is_source:
                    continue
                for op in job.operators[node.id]:
                    op.open()
                    self._opened.append(op)
            for gate in job._gates:
                gate.bind()
            for router in job._routers:
                router.bind()
            for s in job.sources:
                s.reader.open(s.context)
        except BaseException:
            self._status = _FAILED
            job.status = "FAILED"
            self._close_operators()
            raise
        self._pts = job.pts
        self._clock = job.clock
        self._heads = {name: _typed_head(s) for name, s in self._sources.items()}
        self._head = next(iter(self._heads.values())) if len(self._heads) == 1 else None
        self._status = _RUNNING

    def _close_operators(self) -> None:
        errors = []
        for s in self._job.sources:
            try:
                s.reader.close()
            except Exception:
                pass
        for op in self._opened:
            try:
                op.close()
            except Exception as e:  # noqa: PERF203 - close every operator, report the first failure
                errors.append(e)
        self._opened = []
        if errors and self._status != _FAILED:
            raise errors[0]

    # -- guarding -----------------------------------------------------------------------------------
    def _enter(self) -> None:
        """Take the job for one call, or raise at once (never wait)."""
        if not self._lock.acquire(False):
            raise ConcurrentPushError(
                f"embedded job '{self._job.graph.job_name}' is busy with another call: one pusher at a "
                "time; serialize callers (a lock or a queue in front of the job), and do not call the "
                "job from inside its own functions"
            )
        if self._status is not _RUNNING:
            self._lock.release()
            self._raise_not_running()

    @contextmanager
    def _turn(self) -> Iterator[None]:
        """Hold the job for one call (never waits: a concurrent call raises at once)."""
        self._enter()
        try:
            yield
        finally:
            self._lock.release()

    @contextmanager
    def _job_code(self) -> Iterator[None]:
        """Run the job's own code: a failure there fails the job (a misuse of this API does not)."""
        try:
            yield
        except EmbeddedJobError:
            raise
        except BaseException as e:
            self._fail(e)
            raise

    def _raise_not_running(self) -> None:
        name = self._job.graph.job_name
        if self._status is _FAILED:
            raise EmbeddedJobError(
                f"embedded job '{name}' failed ({type(self._failure).__name__}: {self._failure}); its "
                "state may hold part of the failed call: start it again from your last snapshot with "
                "execute_embedded(restore_from=path)"
            ) from self._failure
        raise EmbeddedJobError(f"embedded job '{name}' is closed")

    def _fail(self, e: BaseException) -> None:
        self._status = _FAILED
        self._head = None
        self._failure = e
        self._job.status = "FAILED"
        self._out.clear()
        try:
            self._close_operators()
        except Exception as close_error:  # the job's own failure is the one to report
            log.warning("while closing the failed embedded job %r: %s", self._job.graph.job_name, close_error)

    def _take(self) -> list:
        out = self._out
        if out:
            result = out[:]
            out.clear()
            return result
        return []

    def _run_due(self) -> None:
        """Fire the processing-time callbacks due now (periodic watermarks, timers ...)."""
        pts = self._pts
        deadline = pts.next_deadline()
        if deadline is not None:
            now = self._clock()
            if deadline <= now:
                pts.advance(now)

    # -- feeding ------------------------------------------------------------------------------------
    def push(self, record: Any, timestamp: int | None = None, source: str | None = None) -> list:
        """Run one record through the job now; returns the main output it caused (a new list).

        Processing-time callbacks that fell due since the last call run first. ``timestamp``
        (ms) is the record's event timestamp, as a source attaching timestamps gives it (a
        watermark strategy's timestamp assigner may override it). ``source`` names the push
        source when the job has several.
        """
        if not self._lock.acquire(False):
            self._enter()  # raises ConcurrentPushError
        try:
            head = self._head if source is None else None
            if head is None:
                if self._status is not _RUNNING:
                    self._raise_not_running()
                head = self._head_of(source)
            # _run_due() and _take(), inlined: this is the per-record path
            deadline = self._pts.next_deadline()
            if deadline is not None:
                now = self._clock()
                if deadline <= now:
                    self._pts.advance(now)
            head([record], None if timestamp is None else [timestamp])
            out = self._out
            if out:
                result = out[:]
                out.clear()
                return result
            return []
        except EmbeddedJobError:
            raise
        except BaseException as e:
            self._fail(e)
            raise
        finally:
            self._lock.release()

    def push_many(
        self, records: Iterable[Any], timestamps: Iterable[int] | None = None, source: str | None = None
    ) -> list:
        """Run several records through the job as one batch; returns the main output they caused."""
        values = list(records)
        ts = None if timestamps is None else list(timestamps)
        if ts is not None and len(ts) != len(values):
            raise ValueError(f"push_many got {len(values)} records but {len(ts)} timestamps")
        with self._turn(), self._job_code():
            head = self._head_of(source)
            self._run_due()
            if values:
                head(values, ts)
            return self._take()

    def _head_of(self, source: str | None) -> Any:
        if source is None:
            if self._head is None:
                raise EmbeddedJobError(
                    f"this job has several push sources {sorted(self._heads)}: name one with source=..."
                )
            return self._head
        head = self._heads.get(source)
        if head is None:
            raise EmbeddedJobError(f"no push source named {source!r}; the job has {sorted(self._heads)}")
        return head

    async def apush(self, record: Any, timestamp: int | None = None, source: str | None = None) -> list:
        """``push`` for asyncio services: runs inline (microseconds), in turn among coroutines."""
        async with self._coroutine_lock():
            return self.push(record, timestamp, source)

    async def apush_many(
        self, records: Iterable[Any], timestamps: Iterable[int] | None = None, source: str | None = None
    ) -> list:
        """``push_many`` for asyncio services."""
        async with self._coroutine_lock():
            return self.push_many(records, timestamps, source)

    def _coroutine_lock(self) -> asyncio.Lock:
        if self._async_lock is None:
            self._async_lock = asyncio.Lock()
        return self._async_lock

    # -- time ---------------------------------------------------------------------------------------
    def advance_watermark(self, watermark: int, source: str | None = None) -> list:
        """The push source(s) emit ``watermark``: no more records with timestamp <= it will come.

        For jobs whose records carry timestamps from ``push(record, timestamp)`` and that set no
        watermark strategy; event-time timers and windows up to it fire now. Returns the main
        output that caused. A job with ``assign_timestamps_and_watermarks`` right after the source
        makes its own watermarks and ignores the source's (Flink's rule), so this raises there.
        """
        wm = int(watermark)
        with self._turn(), self._job_code():
            names = list(self._sources) if source is None else [source]
            for name in names:
                s = self._sources.get(name)
                if s is None:
                    raise EmbeddedJobError(
                        f"no push source named {name!r}; the job has {sorted(self._sources)}"
                    )
                self._check_source_watermarks(s)
            self._run_due()
            for name in names:
                self._sources[name].output.emit_watermark(wm)
            return self._take()

    def _check_source_watermarks(self, s: Any) -> None:
        job = self._job
        for e in job.graph.out_edges(s.node.id):
            if any(isinstance(op, TimestampsAndWatermarksOperator) for op in job.operators[e.target_id]):
                raise EmbeddedJobError(
                    f"push source '{s.node.name}' feeds assign_timestamps_and_watermarks, which makes the "
                    "job's watermarks from its strategy and drops the source's (Flink's rule): event time "
                    "advances with the pushed records and the periodic emission (see advance_time / "
                    "fire_timers); or drop the strategy and push(record, timestamp) + advance_watermark(wm)"
                )

    def advance_time(self, timestamp: int) -> list:
        """Move the manual processing-time clock to ``timestamp`` (ms) and fire what fell due:
        periodic watermark emission, processing-time timers and windows. Returns the main output.

        Only for jobs started with ``execute_embedded(processing_time=<start ms>)``; with the wall
        clock, time moves by itself and :meth:`fire_timers` fires what is due.
        """
        if self._manual_clock is None:
            raise EmbeddedJobError(
                "advance_time() moves a manual processing-time clock: start the job with "
                "env.execute_embedded(processing_time=<start ms>); with the wall clock use fire_timers()"
            )
        ts = int(timestamp)
        with self._turn():
            if ts < self._manual_clock.now:
                raise ValueError(
                    f"processing time only moves forward: it is {self._manual_clock.now}, got {ts}"
                )
            with self._job_code():
                self._manual_clock.now = ts
                self._pts.advance(ts)
                return self._take()

    def fire_timers(self) -> list:
        """Fire the processing-time callbacks due now (timers, periodic watermarks); returns the
        main output they caused. ``push`` does this too, before its record."""
        with self._turn(), self._job_code():
            self._run_due()
            return self._take()

    def current_processing_time(self) -> int:
        """The job's processing time (ms): the wall clock, or the manual clock."""
        return self._clock()

    # -- side outputs -------------------------------------------------------------------------------
    def outputs(self, tag: SideOutputTag | str) -> list:
        """The records emitted to side output ``tag`` since the last call (drained).

        Only side outputs the job leaves unconsumed come here; one read by ``get_side_output(tag)``
        goes to its downstream operators. Read them regularly: unread records are kept.
        """
        tag_id = tag.tag_id if isinstance(tag, SideOutputTag) else tag
        if not isinstance(tag_id, str):
            raise TypeError(f"outputs() takes an OutputTag or its id, got {tag!r}")
        if not self._lock.acquire(False):
            self._enter()  # raises ConcurrentPushError
        try:
            buf = self._side.pop(tag_id, None)
        finally:
            self._lock.release()
        if buf is None:
            if tag_id in self._consumed_tags:
                raise EmbeddedJobError(
                    f"side output {tag_id!r} is read by get_side_output() in the job, so its records go "
                    "to those operators; leave it unconsumed to receive it with outputs(tag)"
                )
            return []
        return buf

    # -- snapshots ----------------------------------------------------------------------------------
    def snapshot(self, path: str | os.PathLike) -> str:
        """Write a savepoint of the whole job under directory ``path``; returns its directory.

        Taken between two calls, so it is a consistent cut (no record in flight). Restore with
        ``env.execute_embedded(restore_from=<returned path>)`` on the same job (operators matched
        by ``uid``). Same format as the savepoints of a normal run. The caller waits for the files
        to be written; :meth:`snapshot_async` only waits for the consistent cut.
        """
        with self._turn():
            self._join_snapshot()
            checkpoint_id, operators = self._prepare_snapshot()
            path_written = _write_savepoint(path, self._job, checkpoint_id, self._job.snapshot())
            _notify_complete(operators, checkpoint_id)
            return path_written

    def snapshot_async(self, path: str | os.PathLike) -> Future:
        """Like :meth:`snapshot`, but the state is serialized and written on a writer thread:
        the call only takes the consistent cut (the heap backend copies its tables, LMDB pins a
        read view), so pushes go on while the files are written. The future's result is the
        savepoint directory, once it is durable. Operators hear of the completion (transactional
        sinks commit) on the caller's thread, at a later call. One snapshot at a time: a new one
        first waits for the one in flight. As with a normal run's checkpoints, objects kept in
        state must not be mutated in place after ``update()``."""
        with self._turn():
            self._join_snapshot()
            checkpoint_id, operators = self._prepare_snapshot()
            with deferred_snapshots():
                snap = self._job.snapshot()
            future: Future = Future()
            done = self._snapshots_done
            job = self._job

            def write() -> None:
                try:
                    written = _write_savepoint(path, job, checkpoint_id, snap)
                except BaseException as e:  # reported through the future
                    done.put((checkpoint_id, operators, None))
                    future.set_exception(e)
                    return
                done.put((checkpoint_id, operators, written))
                future.set_result(written)

            self._snapshot_thread = threading.Thread(
                target=write, name=f"flinkcore-embedded-savepoint-{checkpoint_id}", daemon=True
            )
            self._snapshot_thread.start()
            self._pts.register_timer(self._clock() + _SNAPSHOT_POLL_MS, self._poll_snapshot)
            return future

    def _prepare_snapshot(self) -> tuple[int, list]:
        checkpoint_id = self._next_checkpoint_id
        self._next_checkpoint_id += 1
        operators = list(self._opened)
        for op in operators:
            prepare = getattr(op, "prepare_snapshot_pre_barrier", None)
            if prepare is not None:
                prepare(checkpoint_id)
        return checkpoint_id, operators

    def _poll_snapshot(self, timestamp: int) -> None:
        """A processing-time callback (so on the caller's thread): deliver finished snapshots."""
        self._deliver_snapshots()
        if self._snapshot_thread is not None:
            self._pts.register_timer(self._clock() + _SNAPSHOT_POLL_MS, self._poll_snapshot)

    def _deliver_snapshots(self) -> None:
        done = self._snapshots_done
        while not done.empty():
            checkpoint_id, operators, written = done.get()
            self._snapshot_thread = None
            if written is not None and self._status is _RUNNING:
                _notify_complete(operators, checkpoint_id)

    def _join_snapshot(self) -> None:
        """Wait for the snapshot in flight (if any) and deliver its completion."""
        thread = self._snapshot_thread
        if thread is not None:
            thread.join()
            self._deliver_snapshots()

    # -- ending -------------------------------------------------------------------------------------
    def finish(self) -> list:
        """End the input, as a bounded source ends: the maximum watermark fires every event-time
        timer and window, operators flush; returns that last main output and closes the job."""
        with self._turn(), self._job_code():
            self._join_snapshot()
            self._run_due()
            for s in self._sources.values():
                s.output.emit_watermark(MAX_WATERMARK)
                s.output.end_input()
            for op in self._opened:
                op.finish()
            result = self._take()
            self._status = _CLOSED
            self._head = None
            self._job.status = "FINISHED"
            self._close_operators()
            return result

    def close(self) -> None:
        """Stop the job without ending its input (pending timers and windows do not fire);
        closes every operator. Take a :meth:`snapshot` first to continue later."""
        if self._status is not _RUNNING:
            return
        with self._turn():
            self._join_snapshot()
            self._status = _CLOSED
            self._head = None
            self._job.status = "CANCELED"
            self._close_operators()

    def __enter__(self) -> EmbeddedJob:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # -- introspection ------------------------------------------------------------------------------
    @property
    def job_id(self) -> str:
        return self._job.job_id

    @property
    def job_name(self) -> str:
        return self._job.graph.job_name

    @property
    def status(self) -> str:
        """``RUNNING``, ``FINISHED``, ``CANCELED`` (closed) or ``FAILED``."""
        return self._job.status

    @property
    def source_names(self) -> list[str]:
        return list(self._sources)

    def __repr__(self) -> str:
        return f"EmbeddedJob({self.job_name!r}, {self.status})"


def _write_savepoint(target: str | os.PathLike, job: Job, checkpoint_id: int, snapshot: dict) -> str:
    """Serialize a job snapshot into a new savepoint directory under ``target``; its path."""
    target_dir = begin_savepoint(target, job.job_id, checkpoint_id)
    return str(write_files(target_dir, encode_snapshot(snapshot), job, embedded=True).path)


def _notify_complete(operators: list, checkpoint_id: int) -> None:
    for op in operators:
        notify = getattr(op, "notify_checkpoint_complete", None)
        if notify is not None:
            notify(checkpoint_id)
