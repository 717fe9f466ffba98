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

    def __init__(self, fn: Callable[[Any], Any], name: str = "MapBatches") -> None:
        super().__init__(name)
        self.fn = fn

    def process_batch(self, values: list, timestamps: list | None) -> None:
        batch = rows_to_record_batch(values)
        try:
            out = self.fn(batch)
        except Exception as e:
            raise UserCodeError(self.name, batch, e, where="batch") from e
        rows = record_batch_to_rows(out)
        if not rows:
            return
        same = len(rows) == len(values)
        self.output.collect(rows, timestamps if same else None)
