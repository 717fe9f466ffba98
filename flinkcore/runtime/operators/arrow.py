"""Arrow interop: Rows <-> ``pyarrow.RecordBatch`` for ``from_arrow`` and ``map_batches``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from flinkcore.common.types import Row, row_class
from flinkcore.runtime.operators.base import AbstractStreamOperator, UserCodeError

__all__ = [
    "RECORD_KIND",
    "ArrowBatchMapOperator",
    "column_values",
    "fixed_width",
    "record_kind",
    "record_batch_to_rows",
    "record_columns",
    "row_class_of",
    "rows_from_columns",
    "rows_to_record_batch",
    "with_record_kind",
]

try:
    from flinkcore._core.rows import rows_from_columns
except ImportError:  # the native core is not built: the pure-Python twin
    from flinkcore._core._reference.rows import rows_from_columns

_ROW_CLASSES: dict[tuple, type] = {}


def row_class_of(names: tuple) -> type:
    """The (cached) Row class of these field names."""
    cls = _ROW_CLASSES.get(names)
    if cls is None:
        cls = _ROW_CLASSES[names] = row_class(names)
    return cls


def column_values(column: Any) -> Any:
    """An Arrow column as ``rows_from_columns`` reads it: numeric columns without nulls as numpy
    arrays (the same ints, floats and bools as ``to_pylist`` gives, read in C), others as lists.

    A fixed-width column of a RecordBatch is its data buffer seen as a numpy array (no copy);
    ``Array.to_numpy`` would import pandas the first time it runs in a process (0.2-0.4 s, in
    the driver of a parallel job where the first results reach a sink)."""
    global _NUMPY_TYPE_IDS
    if not _NUMPY_TYPE_IDS:
        _NUMPY_TYPE_IDS = _numpy_type_ids()
    kind = getattr(column.type, "id", None)
    if column.null_count == 0 and kind in _NUMPY_TYPE_IDS:
        dtype = _NUMPY_DTYPES.get(kind)
        n = len(column)
        if dtype is not None and hasattr(column, "buffers"):  # an Array (a Table's are chunked)
            if not n:
                return np.empty(0, dtype)
            return np.frombuffer(column.buffers()[1], dtype, n, column.offset * dtype.itemsize)
        return column.to_numpy(zero_copy_only=False)
    return column.to_pylist()


def _numpy_type_ids() -> frozenset:
    import pyarrow as pa

    types = [pa.bool_(), pa.int8(), pa.int16(), pa.int32(), pa.int64()]
    types += [pa.uint8(), pa.uint16(), pa.uint32(), pa.uint64(), pa.float32(), pa.float64()]
    widths = ["int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64", "float32", "float64"]
    for t, name in zip(types[1:], widths, strict=True):
        _NUMPY_DTYPES[t.id] = np.dtype(name)
    return frozenset(t.id for t in types)


class SchemaMemo:
    """What ``make(schema)`` gives for an Arrow schema, kept for up to 64 schemas; the schema asked
    about last is compared first (a stream sends one schema, and hashing a Schema costs
    microseconds). With ``check_metadata``, schemas that differ only in their metadata (the
    record kind lives there) get their own entries."""

    def __init__(self, make: Any, check_metadata: bool = False) -> None:
        self._make = make
        self._check = check_metadata
        #: schema -> (the schema, what make gave): equal schemas may differ in metadata
        self.known: dict[Any, tuple[Any, Any]] = {}
        self._last: tuple[Any, Any] | None = None

    def __call__(self, schema: Any) -> Any:
        entry = self._last
        if entry is None or not entry[0].equals(schema, check_metadata=self._check):
            entry = self.known.get(schema)
            if entry is None or not entry[0].equals(schema, check_metadata=self._check):
                if len(self.known) > 64:
                    self.known.clear()
                entry = self.known[schema] = (schema, self._make(schema))
            self._last = entry
        return entry[1]

    def clear(self) -> None:
        self.known.clear()
        self._last = None


def fixed_width(arrow_type: Any) -> int:
    """Bytes per value of an Arrow integer, floating-point or temporal type of 1, 2, 4 or 8 bytes
    (its values are one data buffer of items of that size), else 0."""
    import pyarrow as pa

    t = arrow_type
    if pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_temporal(t):
        width = t.bit_width
        if width in (8, 16, 32, 64):
            return width // 8
    return 0


_NUMPY_TYPE_IDS: frozenset = frozenset()
#: Arrow type id -> numpy dtype of the fixed-width numeric types (read as their data buffer)
_NUMPY_DTYPES: dict[int, Any] = {}


#: schema metadata of a columnar batch whose records are not Rows: b"tuple" (plain tuples of the
#: columns, in order) or b"scalar" (the one column's values), as a jit map returns them
RECORD_KIND = b"flinkcore.record"


def record_kind(batch: Any) -> bytes | None:
    """b"tuple" / b"scalar" for a batch of tuple or scalar records, None for Rows."""
    meta = batch.schema.metadata
    return meta.get(RECORD_KIND) if meta else None


def with_record_kind(batch: Any, kind: bytes) -> Any:
    """The batch marked as carrying ``kind`` records (see RECORD_KIND)."""
    return batch.replace_schema_metadata({RECORD_KIND: kind})


def record_columns(batch: Any) -> tuple[type | None, list]:
    """What the records of a RecordBatch (or Table) are made of: ``(cls, columns)``, ``columns``
    as ``rows_from_columns`` reads them and ``cls`` the Row class named by the columns, ``tuple``
    for a batch of tuple records, or None for scalar records (the one column's values), see
    RECORD_KIND. Per-record loops (the sink's) build each record from these as they go."""
    kind = record_kind(batch)
    if kind == b"scalar":
        return None, [column_values(batch.column(0))]
    cls = tuple if kind == b"tuple" else row_class_of(tuple(batch.schema.names))
    return cls, [column_values(c) for c in batch.columns]


def record_batch_to_rows(batch: Any) -> list:
    """The records of a RecordBatch (or Table), built in C: Rows named by its columns, or the
    tuples / scalars a batch marked with RECORD_KIND carries."""
    cls, columns = record_columns(batch)
    if cls is None:
        values = columns[0]
        return values if type(values) is list else values.tolist()
    return rows_from_columns(cls, columns)


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
