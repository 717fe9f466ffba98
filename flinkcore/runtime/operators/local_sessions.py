"""Two-phase (local-global) aggregation of event-time session windows, adaptive (see
:mod:`flinkcore.runtime.cluster.two_phase`).

The counterpart of :mod:`flinkcore.runtime.operators.local_agg` for
``EventTimeSessionWindows`` with a static gap, the default trigger, no evictor and no allowed
lateness (the windows :class:`~flinkcore.runtime.operators.window.SessionWindowOperator`
runs) whose function is an AggregateFunction with ``merge`` or a reduce. A LOCAL operator in
the upstream task keeps, per key, one pending *partial session*: an interval ``[start, end)``
(``end`` = last timestamp + gap) with the user's accumulator (reduce: the reduced value), grown
by every record whose window ``[ts, ts + gap)`` intersects it (Flink's ``TimeWindow.intersects``:
touching counts). The GLOBAL operator (the user's session operator) merges what crosses with
its open sessions by the same rule, accumulators with the user's ``merge`` (reduce: the reduce
function), so windows, results and the window function are those of the one-phase plan.

What crosses the keyed exchange (timestamps travel as an int64 column, cheaper than an int in
the message). Messages are lists, records cross unchanged; the exchange keys both with
``window_udf.MessageKey`` (a list's first item, else the user's key selector; for the key
selector ``lambda v: v[0]`` simply ``itemgetter(0)``):

* ``[key, start, acc]`` at timestamp ``end - 1``: a partial with its accumulator;
* ``[key, start]`` at ``end - 1``: an *extent* — the partial's interval without its
  accumulator, which stays in the local operator. The global session it meets (or opens, with
  the accumulator :data:`EMPTY_ACC` until contents arrive) covers it and so stays open until
  the global watermark reaches ``end - 1``;
* a record on its own, unchanged, at its timestamp (a record that is itself a list as
  ``[key, record, None, None]``); the global operator takes runs of them through the one-phase
  operator's compiled loop.

Adaptive: the local operator counts records in and messages out (partials, extents, records
alone) in periods of :data:`ADAPT_SAMPLE` records. When a period sent more than
:data:`ADAPT_MAX_RATIO` messages per record (the first period: :data:`ADAPT_WARMUP_FACTOR`
times that), pre-aggregation costs more than the exchange it saves (each record pays the full
session update twice): the operator sends everything pending, as before a barrier, and from
then on passes every batch on as it came (no per-record work without a fused timestamp
assigner or map), so the job runs as in the one-phase plan.
(W3's 100k keys send a message per ~2-3 records and switch after the first period; W3 with
1000 keys sends one per ~300 and keeps pre-aggregating.)

When something must go. Unlike a tumbling pane, a session at the global side may still grow
from records another upstream task holds, and it fires when the global watermark (the minimum
over channels) reaches its ``end - 1``. Before this task forwards a watermark ``W`` with
``W >= deadline(P)`` of a pending partial ``P``, it sends ``P``'s extent while ``P`` ends after
``W`` (``P`` stays pending), else ``P`` with its accumulator, where

* ``deadline(P) = P.start - 1``: a global session that ``P`` would join ends at or after
  ``P.start``; while every forwarded ``W < P.start - 1`` none of those can fire;
* or, when the key already sent an extent ``E`` (what it sent that certainly met one
  still-open global session) with ``E.start <= P.start``:
  ``deadline(P) = max(P.start - 1, E.end - 1)``. A global session ending in
  ``[P.start, W + 1]`` would intersect ``E``, so it is the session holding ``E``, whose end is
  at least ``E.end``: it cannot fire while ``W < E.end - 1``. An extent sent for ``P`` makes
  ``E`` cover ``P``, so its accumulator can wait until ``P`` stops growing.

So no global session fires while a record that would have merged into it (in the plan without
pre-aggregation) is held back anywhere, and sessions fire at the same watermark with the same
contents. With W3's data (each key's events about 100 ms apart, gap 500 ms, watermark 100 ms
behind) a key sends an extent about every 600 ms of event time (six records) and its
accumulator once per session.

Sending a partial earlier than its deadline is always correct (its records just reach the
global side sooner, as without pre-aggregation), and so is sending a record on its own; the
local operator does both where holding back would need more bookkeeping:

* a record whose own window is late at the local watermark and that does not intersect the
  key's pending partial goes on alone (its timestamp kept), after the key's pending partial:
  the global operator judges it as the one-phase operator would (merge, lateness, late side
  output with the user's record). So does a record with a timestamp that is not an int;
* a record that misses its key's pending partial (a new session of the key) sends the pending
  one first;
* every accumulator goes before a checkpoint barrier, an idle status and at end of input, and
  after an idle status every record goes on alone (pass-through, as after the switch above). The
  local operator holds no state in snapshots, and the global sessions then all have contents:
  the global operator's snapshot is the one-phase operator's, so savepoints restore with or
  without pre-aggregation and at any parallelism.

Nothing sent arrives late at the global side (it goes before the watermark reaches its
deadline, which is at most its ``end - 1`` or inside the still-open session it merges into), so
the global operator opens a session for it without a lateness check.

Not pre-aggregated (the one-phase plan stays): dynamic gaps, allowed lateness > 0 (the general
``WindowOperator`` runs them, whose merging-window set and per-window cleanup timers would need
partial intake too), custom triggers and evictors, processing-time sessions, list-state window
functions, an AggregateFunction without ``merge``, and builds without the compiled core (the
local loop is compiled only: in Python it would cost more than the exchange it saves).
"""

from __future__ import annotations

import logging
import operator
from typing import Any

from flinkcore.common.watermark import MAX_WATERMARK
from flinkcore.runtime.operators.base import AbstractStreamOperator, UserCodeError
from flinkcore.runtime.operators.local_agg import TwoPhasePlan, _SendsPartialsAhead
from flinkcore.runtime.operators.window import (
    Session,
    SessionWindowOperator,
    _kernel_functions,
    _session_start,
    check_loop_timestamp,
    key_index_of,
    loop_failure,
)

try:
    from flinkcore._core import window_udf as _compiled

    EMPTY_ACC = _compiled.EMPTY_ACC
except ImportError:  # pragma: no cover - a build without the native core
    _compiled = None
    EMPTY_ACC = object()

__all__ = ["GlobalSessionOperator", "LocalSessionOperator", "session_two_phase_plan"]

MIN_LONG = -(2**63)
_log = logging.getLogger(__name__)

#: Records the local operator takes in per period of its reduction measurement (periods end at
#: a watermark).
ADAPT_SAMPLE = 200_000
#: The first period is a warm-up: every key's first extent falls in it, so it overstates the
#: messages (W3 variant with 30k keys: 1 per 7 records in the first period, 1 per 18-20 in the
#: next ones; 100k keys: 1 per 3.0, then 1 per 2.2). It switches only above this many times
#: :data:`ADAPT_MAX_RATIO` (W3 then switches after one period instead of two).
ADAPT_WARMUP_FACTOR = 2.5
#: Messages sent (partials, extents, records alone) per record taken in above which a period
#: switches the operator to pass-through for good. Measured on W3 with 4M events at p2 (CPU of
#: driver + workers, two-phase sessions vs one phase): 100k keys send 1 message per 2.2
#: records (7.8 vs 5.1 CPU-s: loses), 50k keys 1 per ~5 (4.2 vs 4.0: even), 30k keys 1 per
#: 18-20 (2.5 vs 3.1: wins), 10k keys 1 per ~44 (1.8 vs 3.1), 1000 keys 1 per ~330. 1/10 is
#: half the break-even ratio: a period has to be clearly on the losing side to switch.
ADAPT_MAX_RATIO = 1 / 10


class LocalSessionOperator(_SendsPartialsAhead, AbstractStreamOperator):
    """Pending partial sessions per key before the keyed exchange (see the module doc).

    ``kind`` 0: ``fn`` is the user's ``add(value, acc)`` and ``create`` its
    ``create_accumulator``; kind 1: ``fn`` is the user's ``reduce(a, b)``. The key is the
    exchange's key selector, computed here (this operator is not keyed).
    """

    holds_no_state = True

    def __init__(
        self,
        gap: int,
        kind: int,
        create: Any,
        fn: Any,
        key_of: Any,
        name: str = "LocalSessions",
        adapt_records: int = ADAPT_SAMPLE,
        adapt_max_ratio: float = ADAPT_MAX_RATIO,
    ):
        super().__init__(name)
        if gap <= 0:
            raise ValueError(f"session gap must be > 0, got {gap}")
        if adapt_records <= 0 or not adapt_max_ratio >= 0:
            raise ValueError(
                "adaptive pass-through needs records > 0 and a ratio >= 0, "
                f"got {adapt_records}, {adapt_max_ratio}"
            )
        #: records per measuring period and messages per record above which it passes through
        self.adapt_records = adapt_records
        self.adapt_max_ratio = adapt_max_ratio
        if _compiled is None:  # pragma: no cover - the plan never builds one then
            raise NotImplementedError("local session pre-aggregation needs the compiled core (make install)")
        self.gap = gap
        self.kind = kind
        self.create = create
        self.fn = fn
        self.key_of = key_of
        #: True once the input was idle or pre-aggregation did not pay (see
        #: :meth:`_adapt`): from then on every record goes on alone
        self.pass_through = False
        #: why pass_through is on: None, "idle" or "reduction"
        self.pass_through_reason: str | None = None
        #: records taken in (before pass-through)
        self.records_in = 0
        #: partials sent with their accumulator, extents sent without, records sent alone
        self.partials_sent = 0
        self.extents_sent = 0
        self.singles_sent = 0
        #: records taken in and messages sent up to the start of the current period
        self._period_records = 0
        self._period_messages = 0
        #: (records, messages) of every period measured, for tests and logs
        self.periods: list[tuple[int, int]] = []

    def open(self) -> None:
        # key -> its LocalSession: the pending partial and the extent it sent
        self._state: dict[Any, Any] = {}
        # deadline // width -> a chain of wheel entries (window_udf). The bucket the watermark
        # is in is scanned at every watermark (its partials not yet due stay), so buckets are
        # narrow: 1/256 of the gap.
        self._width = max(1, self.gap >> 8)
        self._wheel: dict[int, Any] = {}
        self._overdue: list = []  # partials whose deadline passed already: sent at batch end
        self._sweep_at = 4096
        self._out_values: list = []
        self._out_ts: list = []
        self._key_index = key_index_of(self.key_of)
        self._cursor = _compiled.Cursor()
        self._fused_names = (None, None)

    # -- records ----------------------------------------------------------------------------
    def process_batch(self, values: list, timestamps: list | None) -> None:
        if timestamps is None:
            raise ValueError(
                "Record has no timestamp. Did you forget to call "
                "'data_stream.assign_timestamps_and_watermarks(...)' before an event-time window?"
            )
        if type(values) is not list:
            values = list(values)
        if type(timestamps) is not list:
            timestamps = list(timestamps)
        self._cursor.reset()
        if self.pass_through:
            self._pass_through(values, timestamps, None, None)
        else:
            self.records_in += len(values)
            self._run(values, timestamps, None, None)
        self._end_batch()

    def fused_batch(
        self, values: list, timestamps: list | None, extract: Any, names: tuple, pre: Any = None
    ) -> list:
        """The batch with the timestamp assigner (and a map) fused into the loop, as the window
        operators' ``fused_batch``: returns ``[max int timestamp, *non-int ones]``."""
        self._fused_names = names
        if type(values) is not list:
            values = list(values)
        if timestamps is not None and type(timestamps) is not list:
            timestamps = list(timestamps)
        cur = self._cursor
        cur.reset()
        if self.pass_through:
            others = self._pass_through(values, timestamps, extract, pre)
        else:
            self.records_in += len(values)
            others = self._run(values, timestamps, extract, pre)
        seen = [cur.max_ts, *others] if values else []
        self._end_batch()
        return seen

    @property
    def fusable(self) -> bool:
        return True

    _failure = loop_failure

    def _run(self, values: list, timestamps: list | None, extract: Any, pre: Any) -> list:
        """The compiled loop; the records it stops at go through :meth:`_add_one`. Returns the
        non-int timestamps seen."""
        kind, create, fn = self.kind, self.create, self.fn
        cur = self._cursor
        loop = _compiled.local_session_batch
        state, wheel, overdue = self._state, self._wheel, self._overdue
        n = len(values)
        i = 0
        others: list = []
        while True:
            try:
                i = loop(
                    cur,
                    values,
                    timestamps,
                    extract,
                    MIN_LONG,
                    pre,
                    i,
                    self.key_of,
                    self._key_index,
                    self.gap,
                    self.current_watermark,
                    kind,
                    create,
                    fn,
                    state,
                    wheel,
                    overdue,
                    self._width,
                )
            except Exception as e:
                raise self._failure(values, e, pre) from e
            if i >= n:
                return others
            value, ts, key = values[i] if pre is None else cur.value, cur.ts, cur.key
            check_loop_timestamp(ts, extract)
            if type(ts) is not int:
                others.append(ts)
            try:
                self._add_one(value, key, ts)
            except UserCodeError:
                raise
            except Exception as e:
                raise UserCodeError(self.name, value, e) from e
            i += 1

    def _pass_through(self, values: list, timestamps: list | None, extract: Any, pre: Any) -> list:
        """Every record on alone and unchanged (see :meth:`_single`). Without a timestamp
        assigner or map fused in, the batch as it came when it holds no list (the exchange
        then costs what it costs in the one-phase plan); else one compiled loop. Returns the
        non-int timestamps seen."""
        n = len(values)
        if extract is None and pre is None and not _compiled.has_lists(values):
            self._flush_out()
            self.output.collect(values, timestamps)
            self.singles_sent += n
            return []  # (the window operator after the exchange judges the timestamps)
        cur = self._cursor
        loop = _compiled.local_pass_through
        out_values, out_ts = self._out_values, self._out_ts
        i = 0
        others: list = []
        while True:
            try:
                i = loop(cur, values, timestamps, extract, MIN_LONG, pre, i, self.key_of, out_values, out_ts)
            except Exception as e:
                raise self._failure(values, e, pre) from e
            if i >= n:
                self.singles_sent += n
                return others
            ts = cur.ts
            check_loop_timestamp(ts, extract)
            others.append(ts)
            value = cur.value
            try:
                out_values.append([self.key_of(value), value, None, None] if type(value) is list else value)
            except Exception as e:
                raise UserCodeError(self.name, value, e) from e
            out_ts.append(ts)
            i += 1

    def _add_one(self, value: Any, key: Any, ts: Any) -> None:
        """A record the compiled loop left: a non-int timestamp, a window that misses the key's
        pending partial, or a late window (see the module doc)."""
        if type(ts) is not int:
            self._single(key, value, ts)
            return
        end = ts + self.gap
        s = self._state.get(key)
        if s is not None and s.pending:
            if s.start <= end and s.end >= ts:  # (the compiled loop takes these)
                if ts < s.start:
                    s.start = ts
                    self._schedule(s)
                s.end = max(s.end, end)
                s.acc = self.fn(value, s.acc) if self.kind == 0 else self.fn(s.acc, value)
                return
            self._send([s])  # the key starts another session: the pending one goes now
        if end - 1 <= self.current_watermark:
            self._single(key, value, ts)
            return
        if s is None:
            s = self._state[key] = _compiled.LocalSession(key)
        s.acc = self.fn(value, self.create()) if self.kind == 0 else value
        s.start, s.end, s.pending = ts, end, True
        self._schedule(s)

    def _schedule(self, s: Any) -> None:
        _compiled.local_schedule(s, self._wheel, self._overdue, self.current_watermark, self._width)

    def _single(self, key: Any, value: Any, ts: Any) -> None:
        """``value`` goes on alone (after its key's pending partial, which holds records that
        came before it)."""
        s = self._state.get(key)
        if s is not None and s.pending:
            self._send([s])
        # unchanged: messages are lists (window_udf.MessageKey), so a list record goes wrapped
        self._out_values.append([key, value, None, None] if type(value) is list else value)
        self._out_ts.append(ts)
        self.singles_sent += 1

    def _send(self, sessions: list) -> None:
        self.partials_sent += _compiled.local_send(
            sessions, self.current_watermark, self._out_values, self._out_ts
        )

    def _send_overdue(self, watermark: int) -> None:
        if self._overdue:
            overdue, self._overdue = self._overdue, []
            accs, extents = _compiled.local_send_overdue(
                overdue,
                watermark,
                self.current_watermark,
                self._width,
                self._wheel,
                self._out_values,
                self._out_ts,
            )
            self.partials_sent += accs
            self.extents_sent += extents

    def _end_batch(self) -> None:
        self._send_overdue(self.current_watermark)
        self._flush_out()

    # -- watermarks, barriers, end of input (the mixin calls this) ------------------------------
    def _send_until(self, watermark: int) -> None:
        """Send every pending partial whose deadline ``watermark`` reaches (before it is
        forwarded)."""
        if self.pass_through:
            return  # nothing is pending
        state = self._state
        if watermark >= MAX_WATERMARK:
            self._overdue = []
            self._send(list(state.values()))
            self._wheel.clear()
        else:
            self._send_overdue(watermark)
            limit = watermark // self._width
            due = sorted(b for b in self._wheel if b <= limit)
            if due:
                accs, extents = _compiled.local_send_due(
                    self._wheel,
                    due,
                    watermark,
                    self.current_watermark,
                    self._width,
                    self._out_values,
                    self._out_ts,
                )
                self.partials_sent += accs
                self.extents_sent += extents
        if len(state) > self._sweep_at:  # keys with nothing pending whose sent extent can never cover again
            for key in [k for k, s in state.items() if not s.pending and s.sent_end - 1 <= watermark]:
                del state[key]
            self._sweep_at = max(4096, 2 * len(state))
        if watermark < MAX_WATERMARK:
            self._adapt()
        self._flush_out()

    def _adapt(self) -> None:
        """At a watermark: once the current period took in ``adapt_records`` records, switch
        to pass-through for good when it sent more than ``adapt_max_ratio`` messages per
        record (pre-aggregation then costs more than the exchange it saves), else start the next
        period. The first one has a higher bar (see :data:`ADAPT_WARMUP_FACTOR`)."""
        records = self.records_in - self._period_records
        if records < self.adapt_records:
            return
        sent = self.partials_sent + self.extents_sent + self.singles_sent
        messages = sent - self._period_messages
        self.periods.append((records, messages))
        self._period_records, self._period_messages = self.records_in, sent
        limit = self.adapt_max_ratio * (ADAPT_WARMUP_FACTOR if len(self.periods) == 1 else 1)
        if messages > records * limit:
            self._start_pass_through("reduction")

    def _start_pass_through(self, reason: str) -> None:
        """Send everything pending (with accumulators, as before a barrier) and forward every
        later record alone: sending earlier and sending records alone are always correct (see the
        module doc)."""
        self._send_until(MAX_WATERMARK)
        self.pass_through = True
        self.pass_through_reason = reason
        self._state.clear()
        self._wheel.clear()
        self._overdue = []
        _log.info(
            "%s: pass-through (%s) after %d records in, %d partials, %d extents, %d records alone sent",
            self.name,
            reason,
            self.records_in,
            self.partials_sent,
            self.extents_sent,
            self.singles_sent,
        )

    def process_watermark_status(self, idle: bool) -> None:
        if idle and not self.pass_through:
            self._start_pass_through("idle")
        self.output.emit_watermark_status(idle)

    def _flush_out(self) -> None:
        if self._out_values:
            values, ts = self._out_values, self._out_ts
            self._out_values, self._out_ts = [], []
            self.output.collect(values, ts)

    def pending_partials(self) -> int:
        """Number of partial sessions held (for tests)."""
        return sum(1 for s in self._state.values() if s.pending)

    def snapshot_operator_state(self) -> Any:
        if self.pending_partials():  # never: every partial is sent before the barrier
            raise RuntimeError(f"operator '{self.name}' holds partial sessions at a checkpoint")
        return None


class GlobalSessionOperator(SessionWindowOperator):
    """The user's session operator fed partial sessions ``[key, start, acc]`` and extents
    ``[key, start]`` (timestamp ``end - 1``) and records sent alone, unchanged (a list record
    as ``[key, record, None, None]``; see the module doc): partials and extents merge with the
    key's sessions by the intersect rule, accumulators with the user's merge; records go as in
    the one-phase plan (lateness, late side output), keyed by ``record_key_of`` (the user's key
    selector; default: this operator's, which a ``MessageKey`` is). State, snapshots and firing
    are the one-phase operator's."""

    def process_batch(self, values: list, timestamps: list | None) -> None:
        if timestamps is None:
            raise ValueError("partial sessions and records cross the exchange with their timestamps")
        if type(values) is not list:
            values = list(values)
        if type(timestamps) is not list:
            timestamps = list(timestamps)
        merge = self._user_merge
        single, multi, wheel = self._single, self._multi, self._wheel
        n = len(values)
        i = 0
        while i < n:
            if self._use_compiled:
                try:
                    i = _compiled.merge_partial_sessions(
                        values, timestamps, i, self.gap, merge, single, multi, wheel
                    )
                except Exception as e:
                    raise UserCodeError(self.name, values[min(i, n - 1)], e) from e
                if i >= n:
                    break
            item, ts = values[i], timestamps[i]
            if type(item) is not list:
                # records sent alone (all of them once the local operator passes through)
                j = _compiled.records_end(values, i) if self._use_compiled else i + 1
                self._records(values, timestamps, i, j)
                i = j
                continue
            try:
                if len(item) == 3:  # a partial session: [key, start, acc] at end - 1
                    self._add_partial(item[0], item[1], ts + 1, item[2])
                elif len(item) == 2:  # an extent: [key, start] at end - 1
                    self._add_partial(item[0], item[1], ts + 1, EMPTY_ACC)
                else:  # a record that is a list, sent alone: [key, record, None, None]
                    self._add_one(item[1], item[0], ts)
            except UserCodeError:
                raise
            except Exception as e:
                raise UserCodeError(self.name, item, e) from e
            i += 1
        self._flush()

    def _records(self, values: list, timestamps: list, i: int, j: int) -> None:
        """``values[i:j]``, records, as the one-phase operator takes them (its compiled loop with
        the user's key selector)."""
        key_of, key_index = self._record_key
        if not self._use_compiled:
            value, ts = values[i], timestamps[i]
            check_loop_timestamp(ts, None)
            try:
                self._add_one(value, key_of(value), ts)
            except UserCodeError:
                raise
            except Exception as e:
                raise UserCodeError(self.name, value, e) from e
            return
        if i or j < len(values):
            values, timestamps = values[i:j], timestamps[i:j]
        self._cursor.reset()
        self._sessions_compiled(values, timestamps, None, None, key_of, key_index)

    def _add_partial(self, key: Any, start: Any, end: Any, acc: Any) -> None:
        """Merge partial session ``[start, end)`` with every session of ``key`` it intersects
        (the Python twin of ``window_udf.merge_partial_sessions``, for partials that join
        several sessions and bounds that are not ints)."""
        one = self._single.pop(key, None)
        sessions = [one] if one is not None else self._multi.pop(key, [])
        lo, hi = start, end
        group = []
        for s in sessions:
            if s.start <= hi and s.end >= lo:
                group.append(s)
                lo, hi = min(lo, s.start), max(hi, s.end)
        merge = self._merge
        if not group:
            s = Session(key, start, end, acc)
            sessions.append(s)
            sessions.sort(key=_session_start)
            self._schedule(s)
        else:
            target = group[0]
            if len(group) > 1:
                merged = group[1].acc
                for other in group[2:]:
                    merged = merge(merged, other.acc)
                target.acc = merge(target.acc, merged)
                for other in group[1:]:
                    other.end = None  # dead: its bucket entry is skipped
                    sessions.remove(other)
            target.start, target.end = lo, hi
            target.acc = merge(target.acc, acc)
        self._put(key, sessions)

    def __init__(self, *args: Any, record_key_of: Any = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        #: the user's key selector (the exchange keys by the first field of what crosses it)
        self.record_key_of = record_key_of

    def open(self) -> None:
        super().open()
        ks = self.record_key_of
        if ks is None:  # built by hand: its key selector reads records too (a MessageKey does)
            ks = self.key_selector
        self._record_key = (ks, key_index_of(ks))
        # A session may hold only extents so far (accumulator EMPTY_ACC): a record or a partial
        # that meets it brings the first contents.
        first, add, merge = self._first, self._add, self._merge
        self._user_merge = merge
        self._add = lambda acc, v: first(v) if acc is EMPTY_ACC else add(acc, v)
        self._merge = lambda a, b: b if a is EMPTY_ACC else a if b is EMPTY_ACC else merge(a, b)

    @property
    def fusable(self) -> bool:
        return False  # fed by the exchange, never by a chained timestamp assigner


# --------------------------------------------------------------------------------------------
# Planning
# --------------------------------------------------------------------------------------------


class _Bound:
    """A picklable ``fn(*args)`` (the factories travel to the workers with the graph)."""

    def __init__(self, fn: Any, *args: Any) -> None:
        self.fn = fn
        self.args = args

    def __call__(self) -> Any:
        return self.fn(*self.args)


def _local(factory: Any, key_selector: Any, name: str, adapt: tuple) -> LocalSessionOperator:
    probe = factory()
    kind, create, fn = _kernel_functions(probe.state_spec)
    return LocalSessionOperator(probe.gap, kind, create, fn, key_selector, name, *adapt)


def _global(factory: Any, key_selector: Any = None) -> GlobalSessionOperator:
    orig = factory()
    return GlobalSessionOperator(
        orig.gap,
        orig.state_spec,
        orig.function,
        orig.window_factory,
        late_data_tag=orig.late_data_tag,
        name=orig.name,
        record_key_of=key_selector,
    )


def session_two_phase_plan(
    operator_factory: Any,
    key_selector: Any,
    local_name: str,
    adapt_records: int = ADAPT_SAMPLE,
    adapt_max_ratio: float = ADAPT_MAX_RATIO,
) -> TwoPhasePlan | None:
    """The split of a session window node built by ``operator_factory`` (fed by a keyed
    exchange with ``key_selector``), or None when it keeps the one-phase plan: only
    :class:`SessionWindowOperator` (static gap, event time, default trigger, no evictor, no
    allowed lateness) with an AggregateFunction that has ``merge`` or a reduce, and only with
    the compiled core. ``adapt_records`` and ``adapt_max_ratio``: the local operator's
    pass-through rule (see :meth:`LocalSessionOperator._adapt`)."""
    if _compiled is None:
        return None
    probe = operator_factory()
    if type(probe) is not SessionWindowOperator:
        return None
    spec = probe.state_spec
    if spec.kind == "aggregating":
        if not callable(getattr(spec.aggregate, "merge", None)):
            return None
    elif spec.kind != "reducing":
        return None
    key_index = key_index_of(key_selector)
    # ``lambda v: v[0]`` reads a message's key too: the exchange then keys as in the one-phase
    # plan (itemgetter in C, ~20 ns a record less than MessageKey)
    exchange_key = operator.itemgetter(0) if key_index == 0 else _compiled.MessageKey(key_selector, key_index)
    return TwoPhasePlan(
        _Bound(_local, operator_factory, key_selector, local_name, (adapt_records, adapt_max_ratio)),
        _Bound(_global, operator_factory, key_selector),
        exchange_key,
        "session",
    )
