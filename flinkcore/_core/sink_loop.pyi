"""Type stub of the compiled flinkcore._core.sink_loop."""

from collections.abc import Callable
from typing import Any

import numpy as np

class Position:
    index: int
    record: Any

def invoke_all(
    pos: Position, invoke: Callable[[Any, Any], Any], ctx: Any, values: list, timestamps: list
) -> None: ...
def invoke_columns(
    pos: Position,
    invoke: Callable[[Any, Any], Any],
    ctx: Any,
    cls: type[tuple] | None,
    columns: list[list[Any] | np.ndarray],
    timestamps: np.ndarray | list | None,
    key_selector: Callable[[Any], Any] | None = None,
    backend: Any = None,
) -> None: ...
