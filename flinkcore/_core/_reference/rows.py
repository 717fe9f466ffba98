"""Pure-Python reference of ``flinkcore._core.rows`` (same results; rows stay GC-tracked)."""

from __future__ import annotations

from itertools import repeat

import numpy as np


def rows_from_columns(cls: type, columns: list) -> list:
    if not issubclass(cls, tuple):
        raise TypeError(f"rows_from_columns builds tuple subclasses, not {cls!r}")
    lists = []
    for j, col in enumerate(columns):
        if isinstance(col, np.ndarray) and col.ndim == 1 and col.dtype.kind in "iufb":
            col = col.tolist()
        elif type(col) is not list:
            raise TypeError(f"column {j} is a {type(col).__name__}, not a list or a 1-d numeric array")
        if lists and len(col) != len(lists[0]):
            raise ValueError(f"columns differ in length: {len(lists[0])} and {len(col)}")
        lists.append(col)
    n = len(lists[0]) if lists else 0
    return list(map(tuple.__new__, repeat(cls, n), zip(*lists, strict=True)))
