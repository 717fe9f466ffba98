"""``RuntimeExecutionMode``: STREAMING (incremental results) or BATCH (bounded input, final results)."""

from enum import Enum

__all__ = ["RuntimeExecutionMode"]


class RuntimeExecutionMode(Enum):
    STREAMING = 0
    BATCH = 1
    AUTOMATIC = 2
