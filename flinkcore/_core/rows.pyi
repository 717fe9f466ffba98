"""Type stub of the compiled flinkcore._core.rows (semantics in rows.pyx)."""

from typing import Any, TypeVar

import numpy as np

T = TypeVar("T", bound=tuple)

def rows_from_columns(cls: type[T], columns: list[list[Any] | np.ndarray]) -> list[T]: ...
