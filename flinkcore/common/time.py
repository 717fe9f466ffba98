"""Durations and time spans of PyFlink's API (``Duration``, ``Time``), in milliseconds.

Flink measures all time in int64 milliseconds; these value classes only exist so a user can
write ``Duration.of_seconds(5)`` or ``Time.minutes(1)`` as in PyFlink.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Duration", "Time", "to_millis"]


@dataclass(frozen=True, order=True)
class Duration:
    """A span of time in milliseconds (``java.time.Duration`` in PyFlink)."""

    millis: int

    @staticmethod
    def of_millis(millis: int) -> Duration:
        return Duration(int(millis))

    @staticmethod
    def of_seconds(seconds: int | float) -> Duration:
        return Duration(int(seconds * 1000))

    @staticmethod
    def of_minutes(minutes: int | float) -> Duration:
        return Duration(int(minutes * 60_000))

    @staticmethod
    def of_hours(hours: int | float) -> Duration:
        return Duration(int(hours * 3_600_000))

    @staticmethod
    def of_days(days: int | float) -> Duration:
        return Duration(int(days * 86_400_000))

    @staticmethod
    def of_nanos(nanos: int) -> Duration:
        return Duration(int(nanos // 1_000_000))

    def to_milliseconds(self) -> int:
        return self.millis

    def get_seconds(self) -> int:
        return self.millis // 1000


@dataclass(frozen=True, order=True)
class Time:
    """A window size or TTL in milliseconds (``org.apache.flink.api.common.time.Time``)."""

    millis: int

    @staticmethod
    def milliseconds(ms: int) -> Time:
        return Time(int(ms))

    @staticmethod
    def seconds(s: int | float) -> Time:
        return Time(int(s * 1000))

    @staticmethod
    def minutes(m: int | float) -> Time:
        return Time(int(m * 60_000))

    @staticmethod
    def hours(h: int | float) -> Time:
        return Time(int(h * 3_600_000))

    @staticmethod
    def days(d: int | float) -> Time:
        return Time(int(d * 86_400_000))

    def to_milliseconds(self) -> int:
        return self.millis


def to_millis(value: Duration | Time | int, what: str = "time") -> int:
    """Milliseconds of a ``Duration``, ``Time`` or plain int; raises a clear TypeError otherwise."""
    if isinstance(value, (Duration, Time)):
        return value.millis
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    raise TypeError(f"{what} must be a Duration, a Time or an int of milliseconds, got {value!r}")
