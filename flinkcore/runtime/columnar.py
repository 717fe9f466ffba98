"""Columnar batches in the in-process runtime: where they flow and where they become Rows.

A typed source (``from_arrow``) can emit a micro-batch as a ``pyarrow.RecordBatch`` whose
timestamps, once assigned, are an int64 numpy array. Operators that declare
``accepts_columnar = True`` (the timestamps/watermarks operator, the columnar window operators,
``map_batches``) take such a batch as it is; every other input — a Python UDF, a sink, an
exchange writer — is wrapped by :class:`RowsInput`, which turns a columnar batch into Rows once
per batch, at that boundary, so user code still sees Rows and the records are the ones the
untyped path would carry.
"""

from __future__ import annotations

from typing import Any

from flinkcore.runtime.operators.arrow import record_batch_to_rows
from flinkcore.runtime.operators.base import Input

__all__ = [
    "RowsInput",
    "accepts_columnar",
    "columnar_input",
    "enable_columnar",
    "is_columnar",
    "rows_of",
    "timestamps_list",
]


def is_columnar(values: Any) -> bool:
    """True for a columnar batch (anything but the list of records of the row path)."""
    return type(values) is not list


def rows_of(values: Any) -> list:
    """The records of a batch as a list (Rows named by the columns for a columnar batch)."""
    if type(values) is list:
        return values
    return record_batch_to_rows(values)


def timestamps_list(timestamps: Any) -> list | None:
    """Timestamps as the row path carries them: a list of ints, or None."""
    if timestamps is None or type(timestamps) is list:
        return timestamps
    return timestamps.tolist()


def accepts_columnar(target: Any) -> bool:
    return bool(getattr(target, "accepts_columnar", False))


def enable_columnar(config: Any, sources: list, operators: Any, batch_size: int) -> bool:
    """Switch a job's columnar path on (config ``columnar``, default on): sources whose reader has
    ``poll_columnar`` poll Arrow batches of ``batch_size`` rows (each source object gets ``poll``
    and ``batch_size``), operators that can emit columnar batches (``emit_columnar``) do.

    The one rule of both runtimes (the in-process executor and the task slots of worker
    processes). Returns whether anything here produces columnar batches."""
    if not config.get("columnar", True):
        return False
    producers = False
    for s in sources:
        poll_columnar = getattr(s.reader, "poll_columnar", None)
        if poll_columnar is not None:
            s.poll = poll_columnar
            s.batch_size = batch_size
            producers = True
    for op in operators:
        if hasattr(op, "emit_columnar"):
            op.emit_columnar = True
            producers = True
    return producers


def columnar_input(target: Any) -> Any:
    """``target`` as an input that takes columnar batches (call after the operators opened: an
    operator may decide in ``open`` whether it accepts them).

    An input that accepts them is returned as it is; a partitioning writer that can route them
    (``adapt_columnar``) adapts its own channels and returns itself (or a Rows wrapper when it
    cannot route them); any other input gets the batch as Rows (:class:`RowsInput`)."""
    if accepts_columnar(target):
        return target
    adapt = getattr(target, "adapt_columnar", None)
    if adapt is not None:
        return adapt(columnar_input)
    return RowsInput(target)


class RowsInput(Input):
    """Wraps an input that takes lists of records: columnar batches become Rows per batch."""

    accepts_columnar = True

    def __init__(self, target: Input) -> None:
        self.target = target
        self._process = target.process_batch

    def process_batch(self, values: Any, timestamps: Any) -> None:
        if type(values) is list:
            self._process(values, timestamps)
        else:
            self._process(record_batch_to_rows(values), timestamps_list(timestamps))

    def process_watermark(self, watermark: int) -> None:
        self.target.process_watermark(watermark)

    def process_watermark_status(self, idle: bool) -> None:
        self.target.process_watermark_status(idle)

    def end_input(self) -> None:
        self.target.end_input()
