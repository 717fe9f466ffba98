"""``Watermark``: a promise that no more records with timestamp <= ``timestamp`` will come."""

from __future__ import annotations

__all__ = ["MAX_WATERMARK", "MIN_WATERMARK", "Watermark"]

#: Long.MIN_VALUE / Long.MAX_VALUE as Flink uses them for "no watermark yet" / "end of input".
MIN_WATERMARK = -(1 << 63)
MAX_WATERMARK = (1 << 63) - 1


class Watermark:
    """A watermark (``org.apache.flink.api.common.eventtime.Watermark``)."""

    __slots__ = ("timestamp",)

    MAX_WATERMARK: Watermark

    def __init__(self, timestamp: int) -> None:
        self.timestamp = int(timestamp)

    def get_timestamp(self) -> int:
        return self.timestamp

    def get_formatted_timestamp(self) -> str:
        import datetime

        try:
            return datetime.datetime.fromtimestamp(self.timestamp / 1000, datetime.timezone.utc).isoformat()
        except (OverflowError, OSError, ValueError):
            return str(self.timestamp)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Watermark) and other.timestamp == self.timestamp

    def __hash__(self) -> int:
        return hash(("Watermark", self.timestamp))

    def __repr__(self) -> str:
        return f"Watermark({self.timestamp})"


Watermark.MAX_WATERMARK = Watermark(MAX_WATERMARK)
