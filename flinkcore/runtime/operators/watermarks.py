"""The timestamps-and-watermarks operator (``assign_timestamps_and_watermarks``, and a
``from_source`` watermark strategy).

Assigns each record its event timestamp, feeds the watermark generator, emits the generator's
watermarks (only when they advance) every ``auto_watermark_interval`` ms of processing time, and
in-band after a record when a generator emits on an event (punctuated). Upstream watermarks are
dropped except the final maximum watermark of a bounded input. In BATCH mode no watermarks are
generated: the maximum watermark at the end fires everything.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from flinkcore.common.watermark import MAX_WATERMARK, MIN_WATERMARK
from flinkcore.common.watermark_strategy import FieldTimestampAssigner
from flinkcore.runtime.operators.base import AbstractStreamOperator, UserCodeError
from flinkcore.runtime.operators.udf import _failed_index

__all__ = ["TimestampsAndWatermarksOperator"]

_UNRESOLVED = object()


def _int_type_ids() -> frozenset:
    import pyarrow as pa

    return frozenset(t().id for t in (pa.int64, pa.int32, pa.int16, pa.int8, pa.uint32, pa.uint16, pa.uint8))


try:
    _INT_TYPE_IDS = _int_type_ids()
except ImportError:  # pyarrow missing: there are no columnar batches either
    _INT_TYPE_IDS = frozenset()


class _Output:
    """The WatermarkOutput handed to generators."""

    def __init__(self, op: TimestampsAndWatermarksOperator) -> None:
        self.op = op
        self.pending: int | None = None

    def emit_watermark(self, watermark: Any) -> None:
        ts = getattr(watermark, "timestamp", watermark)
        if self.pending is None or ts > self.pending:
            self.pending = ts

    def mark_idle(self) -> None:
        self.op._set_idle(True)

    def mark_active(self) -> None:
        self.op._set_idle(False)


class TimestampsAndWatermarksOperator(AbstractStreamOperator):
    #: a columnar batch keeps flowing as columns when the timestamp comes from a field and the
    #: generator takes whole batches; otherwise it becomes Rows here, once per batch
    accepts_columnar = True

    def __init__(self, strategy: Any, name: str = "Timestamps/Watermarks") -> None:
        super().__init__(name)
        self.strategy = strategy
        self.emitted = MIN_WATERMARK
        self.idle = False
        #: the downstream process_batch that reports each batch's largest timestamp, None when
        #: there is none (see _batch_max_target); found at the first columnar batch
        self._batch_max_ts: Any = _UNRESOLVED

    def open(self) -> None:
        pts = self.context.processing_time_service
        self.assigner = self.strategy.create_timestamp_assigner(self.context)
        self.generator = self.strategy.create_watermark_generator(self.context, pts.current_processing_time)
        opener = getattr(self.generator, "open", None)
        if callable(opener):
            opener(self.context)
        self._wm_out = _Output(self)
        self._on_batch = getattr(self.generator, "on_batch", None)
        self._batch_mode = self.context.runtime_mode == "BATCH"
        self._ts_field = (
            getattr(self.assigner, "field", None) if type(self.assigner) is FieldTimestampAssigner else None
        )
        # (+) a flinkcore.jit assigner computes the timestamp column over the batch's columns
        self._ts_jit = self.assigner if callable(getattr(self.assigner, "columns_of", None)) else None
        self.interval = int(self.context.config.get("auto_watermark_interval", 200))
        if self.interval > 0 and not self._batch_mode:
            pts.register_timer(pts.current_processing_time() + self.interval, self._on_periodic)

    def _on_periodic(self, now: int) -> None:
        try:
            self.generator.on_periodic_emit(self._wm_out)
        except Exception as e:
            raise UserCodeError(self.name, None, e, where="on_periodic_emit()") from e
        self._flush_watermark()
        pts = self.context.processing_time_service
        pts.register_timer(now + self.interval, self._on_periodic)

    def _flush_watermark(self) -> None:
        wm = self._wm_out.pending
        self._wm_out.pending = None
        if wm is not None and wm > self.emitted and not self._batch_mode:
            if self.idle:
                self._set_idle(False)
            self.emitted = wm
            self.current_watermark = wm
            self.output.emit_watermark(wm)

    def _set_idle(self, idle: bool) -> None:
        if idle != self.idle:
            self.idle = idle
            self.output.emit_watermark_status(idle)

    def _batch_max_target(self) -> Any:
        """The ``process_batch`` of the one operator this operator's columnar batches go to when
        that operator returns each batch's largest timestamp (a columnar window or local
        pre-aggregation with a native table: ``reports_batch_max_ts``) and the generator only
        takes a batch's maximum (the built-in bounded-out-of-orderness / monotonous / no
        watermarks, with or without idleness); None otherwise.

        The generator then gets that maximum after the window took the batch instead of every
        timestamp before: the same watermarks, as the generator emits nothing per record and is
        asked for a watermark only between batches (the periodic emit, a processing-time timer),
        and the column of timestamps is read once instead of twice."""
        from flinkcore.runtime.executor import Router
        from flinkcore.runtime.fusion import _batch_generator

        out = self.output
        if type(out) is not Router or len(out.main) != 1 or not _batch_generator(self.generator):
            return None
        target = out.main[0]
        if not getattr(type(target), "reports_batch_max_ts", False):
            return None
        return target.process_batch

    def _column_timestamps(self, values: Any) -> np.ndarray | None:
        """The timestamp column of a columnar batch as int64 (None: not readable as a column)."""
        field = self._ts_field
        if field is None:
            jf = self._ts_jit
            if jf is None:
                return None
            try:
                ts = jf.apply(jf.columns_of(values, self.name), self.name)
            except Exception as e:
                if type(e).__name__ in ("JitCompileError", "KeyError"):
                    raise
                raise UserCodeError(self.name, values.slice(0, 1), e, where="batch") from e
            return np.asarray(ts).astype(np.int64, copy=False)
        try:
            col = values.column(field)
        except (KeyError, IndexError, TypeError):
            return None  # the row path raises the error a user can act on
        if col.null_count or col.type.id not in _INT_TYPE_IDS:
            return None
        return col.to_numpy().astype(np.int64, copy=False)

    def process_batch(self, values: Any, timestamps: Any) -> None:
        if type(values) is not list:
            from flinkcore.runtime.columnar import rows_of, timestamps_list

            ts = self._column_timestamps(values)
            if ts is None:  # the assigner needs records: the batch goes on as Rows
                self.process_batch(rows_of(values), timestamps_list(timestamps))
                return
            if self.idle:
                self._set_idle(False)
            if self._on_batch is not None:
                report = self._batch_max_ts
                if report is _UNRESOLVED:
                    report = self._batch_max_ts = self._batch_max_target()
                if report is not None:
                    # the window right after finds the batch's largest timestamp in its own pass
                    hi = report(values, ts)
                    self._on_batch(ts if hi is None else (hi,))
                    return
                self._on_batch(ts)
                self.output.collect(values, ts)
            else:  # a user generator sees every event (as a Row); the batch stays columnar
                self._per_event(rows_of(values), ts.tolist(), values, ts)
            return
        assigner = self.assigner
        if assigner is None:
            if timestamps is None or any(t is None for t in timestamps):
                raise RuntimeError(
                    f"operator '{self.name}': records have no timestamps; give the WatermarkStrategy "
                    "a timestamp assigner (with_timestamp_assigner)"
                )
            new_ts = timestamps
        else:
            extract = assigner.extract_timestamp
            old = timestamps if timestamps is not None else [MIN_WATERMARK] * len(values)
            it = iter(values)
            try:
                new_ts = [extract(v, t) for v, t in zip(it, old, strict=False)]
            except Exception as e:  # the record the assigner failed on: the last one taken from it
                v = values[_failed_index(values, it)]
                raise UserCodeError(self.name, v, e, where="record (timestamp assigner)") from e
        if self.idle:
            self._set_idle(False)
        if self._on_batch is not None:
            self._on_batch(new_ts)
            self.output.collect(values, new_ts)
            return
        self._per_event(values, new_ts, values, new_ts)

    def _per_event(self, events: list, event_ts: list, values: Any, timestamps: Any) -> None:
        """A user generator: call on_event per record and honour punctuated watermarks in order,
        emitting ``values``/``timestamps`` (the batch as it flows: records or columns) in slices."""
        on_event = self.generator.on_event
        out = self._wm_out
        start = 0
        for i, (v, ts) in enumerate(zip(events, event_ts, strict=False)):
            try:
                on_event(v, ts, out)
            except Exception as e:
                raise UserCodeError(self.name, v, e, where="record (watermark generator)") from e
            if out.pending is not None:
                self.output.collect(values[start : i + 1], timestamps[start : i + 1])
                start = i + 1
                self._flush_watermark()
        if start < len(events):
            self.output.collect(
                values[start:] if start else values, timestamps[start:] if start else timestamps
            )

    def process_watermark(self, watermark: int) -> None:
        if watermark == MAX_WATERMARK and self.emitted < MAX_WATERMARK:
            self.emitted = MAX_WATERMARK
            self.current_watermark = MAX_WATERMARK
            self.output.emit_watermark(MAX_WATERMARK)

    def process_watermark_status(self, idle: bool) -> None:
        pass
