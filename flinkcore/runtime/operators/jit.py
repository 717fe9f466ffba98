"""``filter`` with a ``flinkcore.jit`` function: one compiled ufunc over a columnar batch.

The function object (duck-typed: ``params``, ``columns_kernel()``, callable per record) comes
from ``flinkcore.jit``. Lists of records take the per-record path of :class:`FilterOperator`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from flinkcore.runtime.operators.udf import FilterOperator

__all__ = ["JitFilterOperator"]


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
        try:
            cols = [values.column(name).to_numpy(zero_copy_only=False) for name in jf.params]
        except KeyError as e:
            raise KeyError(
                f"operator '{self.name}': {jf!r} reads a field the stream does not have: {e}"
            ) from e
        kernel = jf.columns_kernel()
        try:
            if kernel is not None:
                mask = np.asarray(kernel(*cols), dtype=bool)
            else:  # without numba: the same function per record, over the column values
                mask = np.fromiter(map(jf.fn, *[c.tolist() for c in cols]), dtype=bool, count=len(values))
        except Exception as e:
            from flinkcore.runtime.operators.base import UserCodeError

            raise UserCodeError(self.name, values.slice(0, 1), e, where="batch") from e
        if mask.all():
            self.output.collect(values, timestamps)
        elif mask.any():
            import pyarrow as pa

            ts = None if timestamps is None else np.asarray(timestamps)[mask]
            self.output.collect(values.filter(pa.array(mask)), ts)
