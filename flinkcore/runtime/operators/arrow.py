"""Arrow interop: Rows <-> ``pyarrow.RecordBatch`` for ``from_arrow`` and ``map_batches``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flinkcore.common.types import Row, row_class
from flinkcore.runtime.operators.base import AbstractStreamOperator, UserCodeError

__all__ = ["ArrowBatchMapOperator", "record_batch_to_rows", "rows_to_record_batch"]

_ROW_CLASSES: dict[tuple, type] = {}


def record_batch_to_rows(batch: Any) -> list:
    """The rows of a RecordBatch (or Table) as Rows named by its columns."""
    names = tuple(batch.schema.names)
    cls = _ROW_CLASSES.get(names)
    if cls is None:
        cls = _ROW_CLASSES[names] = row_class(names)
    cols = [c.to_pylist() for c in batch.columns]
    new = tuple.__new__
    return [new(cls, t) for t in zip(*cols, strict=True)]


def rows_to_record_batch(values: list) -> Any:
    import pyarrow as pa

    if not values:
        return pa.RecordBatch.from_pylist([])
    first = values[0]
    names = first._fields if isinstance(first, Row) and first._fields else None
    if names is None:
        if isinstance(first, dict):
            return pa.RecordBatch.from_pylist(values)
        names = tuple(f"f{i}" for i in range(len(first)))
    columns = list(zip(*values, strict=True))
    return pa.RecordBatch.from_arrays([pa.array(c) for c in columns], names=list(names))


class ArrowBatchMapOperator(AbstractStreamOperator):
    """(+) ``map_batches``: the micro-batch as a RecordBatch in, a RecordBatch out."""

    accepts_columnar = True

    def __init__(self, fn: Callable[[Any], Any], name: str = "MapBatches") -> None:
        super().__init__(name)
        self.fn = fn
        #: set by the in-process runtime: emit the RecordBatch itself (downstream inputs that
        #: take records get Rows made from it); otherwise emit Rows
        self.emit_columnar = False

    def process_batch(self, values: Any, timestamps: Any) -> None:
        batch = rows_to_record_batch(values) if type(values) is list else values
        try:
            out = self.fn(batch)
        except Exception as e:
            raise UserCodeError(self.name, batch, e, where="batch") from e
        n = out.num_rows
        if not n:
            return
        same = n == len(values)
        if self.emit_columnar:
            if hasattr(out, "to_batches"):  # a Table: one batch of contiguous columns
                out = out.combine_chunks().to_batches()[0]
            self.output.collect(out, timestamps if same else None)
            return
        rows = record_batch_to_rows(out)
        if type(timestamps) is not list and timestamps is not None:
            timestamps = timestamps.tolist()
        self.output.collect(rows, timestamps if same else None)
