"""``filter`` and ``map`` with a ``flinkcore.jit`` function: compiled code over a columnar batch.

The function object (duck-typed: ``params``, ``columns_of``, ``apply``, ``apply_tuple``, callable
per record) comes from ``flinkcore.jit``. Lists of records take the per-record path, with the
same results; a keyed filter or map runs per record (its key is set for every record).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from flinkcore.runtime.operators.arrow import row_class_of
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
    """A jit map: a number or a tuple of numbers per record becomes a record of named fields.

    Over a columnar batch the compiled loop writes one array per output field and the result goes
    on as a RecordBatch (``emit_columnar``, set by the in-process runtime) or as Rows. Per record
    the result becomes the same Row: ``row_class(names)`` of the tuple (a number: one field)."""

    accepts_columnar = True

    def __init__(self, jf: Any, names: list | None = None, name: str = "Map") -> None:
        super().__init__(self._per_record, jf, name)
        self.jf = jf
        self.names = list(names) if names else None
        #: set by the in-process runtime: emit RecordBatches (downstream Python code gets Rows)
        self.emit_columnar = False

    def open(self) -> None:
        super().open()
        if self.key_selector is not None:
            self.accepts_columnar = False

    def _names(self, width: int) -> tuple:
        names = self.names
        if names is None:
            return tuple(f"f{i}" for i in range(width))
        if len(names) != width:
            raise ValueError(
                f"operator '{self.name}': {self.jf!r} returns {width} field(s), its output_type names "
                f"{len(names)}: {names}"
            )
        return tuple(names)

    def _per_record(self, record: Any) -> Any:
        out = self.jf(record)
        if not isinstance(out, tuple):
            out = (out,)
        return tuple.__new__(row_class_of(self._names(len(out))), out)

    def process_batch(self, values: Any, timestamps: Any) -> None:
        if type(values) is list:
            super().process_batch(values, timestamps)
            return
        cols = self.jf.columns_of(values, self.name)
        if not self.jf.compiled():  # without numba: per record, as the untyped stream runs it
            from flinkcore.runtime.columnar import rows_of, timestamps_list

            super().process_batch(rows_of(values), timestamps_list(timestamps))
            return
        try:
            outs = self.jf.apply_tuple(cols, self.name)
        except Exception as e:
            if type(e).__name__ == "JitCompileError":
                raise
            raise _fail(self.name, values, e) from e
        if not outs:
            return
        names = self._names(len(outs))
        if self.emit_columnar:
            import pyarrow as pa

            batch = pa.RecordBatch.from_arrays([pa.array(o) for o in outs], names=list(names))
            self.output.collect(batch, timestamps)
            return
        from flinkcore.runtime.operators.arrow import rows_from_columns

        ts = timestamps if timestamps is None or type(timestamps) is list else timestamps.tolist()
        self.output.collect(rows_from_columns(row_class_of(names), list(outs)), ts)
