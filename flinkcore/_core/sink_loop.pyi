"""Type stub of the compiled flinkcore._core.sink_loop."""

from collections.abc import Callable
from typing import Any

class Position:
    index: int

def invoke_all(
    pos: Position, invoke: Callable[[Any, Any], Any], ctx: Any, values: list, timestamps: list
) -> None: ...
