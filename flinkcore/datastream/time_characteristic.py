"""``TimeCharacteristic`` (deprecated in Flink, kept for PyFlink jobs that still set it).

Event time is always available (timestamps come from WatermarkStrategy); the setting changes
nothing, as in Flink 1.12+ where it is deprecated.
"""

from enum import Enum

__all__ = ["TimeCharacteristic"]


class TimeCharacteristic(Enum):
    ProcessingTime = 0
    IngestionTime = 1
    EventTime = 2
