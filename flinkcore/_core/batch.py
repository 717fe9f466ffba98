"""The micro-batch that flows between operators: rows of Python records, or typed columns.

A ``Batch`` holds either a list of records (tuples, Rows, any objects: what Python UDFs see) or a
set of named columns (numpy arrays: what native kernels read), plus optional per-record int64 event
timestamps. Conversions go both ways on demand, so an operator asks for the form it needs and a
chain of built-in operators never leaves the columnar form. Arrow record batches convert without a
copy for numeric columns that have no nulls.

Column conventions: numeric Arrow columns become numpy arrays of the same dtype; strings, binaries
and columns with nulls become object arrays (``None`` for null), so values round-trip exactly.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import numpy as np

__all__ = ["Batch"]

RowFactory = Callable[[tuple, tuple], Any]


def _timestamps(ts: Any, n: int) -> np.ndarray | None:
    if ts is None:
        return None
    arr = np.ascontiguousarray(ts, dtype=np.int64)
    if arr.shape != (n,):
        raise ValueError(f"timestamps must be a 1-d array of {n} int64 values, got shape {arr.shape}")
    return arr


def _arrow_column_to_numpy(col: Any) -> np.ndarray:
    import pyarrow as pa

    t = col.type
    if col.null_count == 0 and (pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_boolean(t)):
        return col.to_numpy(zero_copy_only=False)
    if col.null_count == 0 and pa.types.is_timestamp(t):
        return col.to_numpy(zero_copy_only=False)
    values = col.to_pylist()
    out = np.empty(len(values), dtype=object)
    out[:] = values
    return out


def _infer_column(values: list) -> np.ndarray:
    """Typed column from Python values: int64/float64/bool when uniform, else an object array."""
    kinds = {type(v) for v in values}
    if kinds and kinds <= {int} and all(-(2**63) <= v < 2**63 for v in values):
        return np.array(values, dtype=np.int64)
    if kinds and kinds <= {float}:
        return np.array(values, dtype=np.float64)
    if kinds and kinds <= {bool}:
        return np.array(values, dtype=np.bool_)
    out = np.empty(len(values), dtype=object)
    out[:] = values
    return out


class Batch:
    """Records or columns, with optional int64 event timestamps (one per record)."""

    __slots__ = ("_records", "_columns", "_names", "timestamps")

    def __init__(self) -> None:
        raise TypeError("build a Batch with Batch.from_records, Batch.from_columns or Batch.from_arrow")

    @classmethod
    def _make(cls, records, columns, names, timestamps) -> Batch:
        b = object.__new__(cls)
        b._records = records
        b._columns = columns
        b._names = names
        b.timestamps = timestamps
        return b

    # -- construction ----------------------------------------------------------------------------
    @classmethod
    def from_records(
        cls, records: Iterable[Any], timestamps: Any = None, names: Sequence[str] | None = None
    ) -> Batch:
        """A batch of Python records; ``names`` (optional) name the fields for columnar conversion."""
        recs = records if isinstance(records, list) else list(records)
        return cls._make(
            recs, None, tuple(names) if names is not None else None, _timestamps(timestamps, len(recs))
        )

    @classmethod
    def from_columns(
        cls, columns: Mapping[str, Any], timestamps: Any = None, names: Sequence[str] | None = None
    ) -> Batch:
        """A batch of named columns (numpy arrays or sequences) of one length; ``names`` fixes the order."""
        order = tuple(names) if names is not None else tuple(columns)
        if set(order) != set(columns):
            raise ValueError(f"names {order} do not match the columns {tuple(columns)}")
        cols = {}
        n = None
        for name in order:
            col = columns[name]
            arr = col if isinstance(col, np.ndarray) else _infer_column(list(col))
            if arr.ndim != 1:
                raise ValueError(f"column {name!r} must be 1-d, got shape {arr.shape}")
            if n is None:
                n = len(arr)
            elif len(arr) != n:
                raise ValueError(f"column {name!r} has {len(arr)} values, expected {n}")
            cols[name] = arr
        return cls._make(None, cols, order, _timestamps(timestamps, n or 0))

    @classmethod
    def from_arrow(cls, record_batch: Any, timestamps: Any = None) -> Batch:
        """A batch from a pyarrow.RecordBatch (or Table); ``timestamps`` is an array or a column name."""
        names = tuple(record_batch.schema.names)
        cols = {name: _arrow_column_to_numpy(record_batch.column(i)) for i, name in enumerate(names)}
        if isinstance(timestamps, str):
            if timestamps not in cols:
                raise ValueError(f"no column {timestamps!r} for timestamps; columns are {names}")
            timestamps = cols[timestamps]
        return cls._make(None, cols, names, _timestamps(timestamps, record_batch.num_rows))

    # -- views -------------------------------------------------------------------------------------
    @property
    def is_columnar(self) -> bool:
        return self._columns is not None

    @property
    def names(self) -> tuple[str, ...] | None:
        """Field names, when known (always for columnar batches)."""
        return self._names

    @property
    def columns(self) -> dict[str, np.ndarray]:
        """The columns (built from the records on first use: records must be equal-length tuples)."""
        if self._columns is None:
            self._columns = self._records_to_columns()
            if self._names is None:
                self._names = tuple(self._columns)
        return self._columns

    def _records_to_columns(self) -> dict[str, np.ndarray]:
        recs = self._records
        width = len(recs[0]) if recs and isinstance(recs[0], tuple) else len(self._names or ())
        for r in recs:
            if not isinstance(r, tuple) or len(r) != width:
                raise TypeError(
                    "records must be tuples (or Rows) of one length to become columns; "
                    f"got {type(r).__name__} {r!r:.60}"
                )
        names = self._names
        if names is None:
            first_names = getattr(recs[0], "_fields", None) if recs else None
            names = tuple(first_names) if first_names else tuple(f"f{i}" for i in range(width))
        if len(names) != width:
            raise ValueError(f"{len(names)} names for records of {width} fields")
        fields = list(zip(*recs, strict=True)) if recs else [() for _ in names]
        return {name: _infer_column(list(vals)) for name, vals in zip(names, fields, strict=True)}

    def __len__(self) -> int:
        if self._records is not None:
            return len(self._records)
        if not self._columns:
            return 0 if self.timestamps is None else len(self.timestamps)
        return len(next(iter(self._columns.values())))

    def to_records(self, row_factory: RowFactory | None = None) -> list:
        """The records: as given for a record batch; for columns, tuples or ``row_factory(names, values)``."""
        if self._records is not None and row_factory is None:
            return self._records
        if self._records is not None:
            return [row_factory(self._names, tuple(r)) for r in self._records]
        cols = [self._columns[n].tolist() for n in self._names]
        rows = list(zip(*cols, strict=True)) if cols else [()] * len(self)
        if row_factory is None:
            return rows
        return [row_factory(self._names, r) for r in rows]

    def to_arrow(self) -> Any:
        """A pyarrow.RecordBatch of the columns (timestamps are not a column unless you add one)."""
        import pyarrow as pa

        cols = self.columns
        return pa.RecordBatch.from_arrays([pa.array(cols[n]) for n in self._names], names=list(self._names))

    # -- transformations ---------------------------------------------------------------------------
    def slice(self, start: int, stop: int) -> Batch:
        """Records [start, stop) (Python slice semantics), without copying columns."""
        ts = self.timestamps[start:stop] if self.timestamps is not None else None
        if self._records is not None:
            return Batch._make(self._records[start:stop], None, self._names, ts)
        return Batch._make(None, {n: c[start:stop] for n, c in self._columns.items()}, self._names, ts)

    def filter(self, mask: Any) -> Batch:
        """The records where ``mask`` (bool array of len(self)) is true."""
        m = np.asarray(mask, dtype=np.bool_)
        if m.shape != (len(self),):
            raise ValueError(f"mask must have shape ({len(self)},), got {m.shape}")
        ts = self.timestamps[m] if self.timestamps is not None else None
        if self._records is not None:
            return Batch._make(
                [r for r, keep in zip(self._records, m.tolist(), strict=True) if keep], None, self._names, ts
            )
        return Batch._make(None, {n: c[m] for n, c in self._columns.items()}, self._names, ts)

    @staticmethod
    def concat(batches: Sequence[Batch]) -> Batch:
        """One batch of all records in order: columnar if every batch is, else records."""
        batches = list(batches)
        if not batches:
            return Batch.from_records([])
        with_ts = {b.timestamps is not None for b in batches}
        if len(with_ts) > 1:
            raise ValueError("cannot concat batches with and without timestamps")
        ts = np.concatenate([b.timestamps for b in batches]) if with_ts == {True} else None
        if all(b._columns is not None for b in batches):
            names = batches[0]._names
            if any(b._names != names for b in batches):
                raise ValueError(
                    f"cannot concat columnar batches with different columns: {[b._names for b in batches]}"
                )
            cols = {n: np.concatenate([b._columns[n] for b in batches]) for n in names}
            return Batch._make(None, cols, names, ts)
        records = [r for b in batches for r in b.to_records()]
        return Batch._make(records, None, batches[0]._names, ts)

    def __repr__(self) -> str:
        form = f"columns {list(self._names)}" if self._columns is not None else "records"
        return f"Batch({len(self)} {form}, timestamps={'yes' if self.timestamps is not None else 'no'})"
