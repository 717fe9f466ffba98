"""``filter`` and ``map`` with a ``flinkcore.jit`` function: compiled code over a columnar batch.

The function object (duck-typed: ``params``, ``columns_of``, ``apply``, ``apply_tuple``, callable
per record) comes from ``flinkcore.jit``. Lists of records take the per-record path, with the
same results; a keyed filter or map runs per record (its key is set for every record).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from flinkcore.runtime.operators.arrow import row_class_of, rows_from_columns, with_record_kind
from flinkcore.runtime.operators.base import UserCodeError
from flinkcore.runtime.operators.udf import FilterOperator, MapOperator

__all__ = ["JitFilterOperator", "JitMapOperator"]


def _fail(name: str, values: Any, e: BaseException) -> UserCodeError:
    return UserCodeError(name, values.slice(0, 1), e, where="batch")


class JitFilterOperator(FilterOperator):
    accepts_columnar = True

    def open(self) -> None:
        super().open()
        if self.key_selector is not None:
            self.accepts_columnar = False  # a keyed filter runs per record with its key set

    def process_batch(self, values: Any, timestamps: Any) -> None:
        if type(values) is list:
            super().process_batch(values, timestamps)
            return
        jf = self.udf if self.udf is not None else self.fn
        cols = jf.columns_of(values, self.name)
        try:
            mask = np.asarray(jf.apply(cols, self.name), dtype=bool)
        except Exception as e:
            if type(e).__name__ == "JitCompileError":
                raise
            raise _fail(self.name, values, e) from e
        if mask.all():
            self.output.collect(values, timestamps)
        elif mask.any():
            import pyarrow as pa

            ts = None if timestamps is None else np.asarray(timestamps)[mask]
            self.output.collect(values.filter(pa.array(mask)), ts)


class JitMapOperator(MapOperator):
    """A jit map: per record it returns what the function returns (a number or a tuple of
    numbers), or a Row named by ``names`` (the output_type's field names) of those fields.

    Over a columnar batch the compiled loop writes one array per output field, and the result
    goes on as a RecordBatch (``emit_columnar``, set by the in-process runtime; marked as carrying
    tuples or numbers unless named) or as those records, built in C. Without numba the function
    runs per record over the column values."""

    accepts_columnar = True

    def __init__(self, jf: Any, names: list | None = None, name: str = "Map") -> None:
        super().__init__(jf if not names else self._named, jf, name)
        self.jf = jf
        self.names = tuple(names) if names else None
        #: set by the in-process runtime: emit RecordBatches (downstream Python code gets records)
        self.emit_columnar = False

    def open(self) -> None:
        super().open()
        if self.key_selector is not None:
            self.accepts_columnar = False

    def _row(self, out: Any) -> Any:
        if not isinstance(out, tuple):
            out = (out,)
        if len(out) != len(self.names):
            raise ValueError(
                f"operator '{self.name}': {self.jf!r} returns {len(out)} field(s), its output_type names "
                f"{len(self.names)}: {list(self.names)}"
            )
        return tuple.__new__(row_class_of(self.names), out)

    def _named(self, record: Any) -> Any:
        return self._row(self.jf(record))

    def process_batch(self, values: Any, timestamps: Any) -> None:
        if type(values) is list:
            super().process_batch(values, timestamps)
            return
        cols = self.jf.columns_of(values, self.name)
        ts = timestamps if timestamps is None or type(timestamps) is list else timestamps.tolist()
        if not self.jf.compiled():  # without numba: per record, over the column values
            try:
                out = list(map(self.jf.fn, *[c.tolist() for c in cols]))
            except Exception as e:
                raise _fail(self.name, values, e) from e
            self.output.collect(out if self.names is None else list(map(self._row, out)), ts)
            return
        try:
            outs, is_tuple = self.jf.apply_tuple(cols, self.name)
        except Exception as e:
            if type(e).__name__ == "JitCompileError":
                raise
            raise _fail(self.name, values, e) from e
        if self.names is not None and len(outs) != len(self.names):
            self._row(tuple(range(len(outs))))  # raises the error naming the operator
        if self.emit_columnar:
            import pyarrow as pa

            names = list(self.names) if self.names else [f"f{i}" for i in range(len(outs))]
            batch = pa.RecordBatch.from_arrays([pa.array(o) for o in outs], names=names)
            if self.names is None:
                batch = with_record_kind(batch, b"tuple" if is_tuple else b"scalar")
            self.output.collect(batch, timestamps)
            return
        if self.names is not None:
            self.output.collect(rows_from_columns(row_class_of(self.names), outs), ts)
        elif is_tuple:
            self.output.collect(rows_from_columns(tuple, outs), ts)
        else:
            self.output.collect(outs[0].tolist(), ts)
