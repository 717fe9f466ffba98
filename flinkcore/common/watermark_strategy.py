"""``WatermarkStrategy``: how a stream gets event timestamps and watermarks.

The strategy is a description (a config object); the runtime's timestamps-and-watermarks
operator creates the assigner and generator from it, one per parallel instance. The built-in
generators follow Flink's exactly:

* bounded out-of-orderness B: watermark = max timestamp seen - B - 1, emitted periodically;
* monotonous timestamps: the same with B = 0;
* no watermarks: none (a bounded input still ends with the maximum watermark);
* ``with_idleness(d)``: a stream that saw no event for ``d`` of processing time is marked idle,
  so downstream watermark minimums leave it out until it has events again.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any

from flinkcore.common.pickling import CompactAttributes
from flinkcore.common.time import Duration, to_millis
from flinkcore.common.watermark import MIN_WATERMARK, Watermark

__all__ = [
    "BoundedOutOfOrdernessWatermarks",
    "NoWatermarksGenerator",
    "TimestampAssigner",
    "WatermarkGenerator",
    "WatermarkGeneratorSupplier",
    "WatermarkOutput",
    "WatermarkStrategy",
    "WatermarksWithIdleness",
]


class TimestampAssigner(CompactAttributes, ABC):
    """Extracts the event timestamp (int ms) of a record."""

    @abstractmethod
    def extract_timestamp(self, value: Any, record_timestamp: int) -> int: ...


class WatermarkOutput(ABC):
    """What a WatermarkGenerator emits to."""

    @abstractmethod
    def emit_watermark(self, watermark: Watermark) -> None: ...

    @abstractmethod
    def mark_idle(self) -> None: ...

    def mark_active(self) -> None:  # noqa: B027
        """Flink 1.19+: explicitly mark the output active again."""


class WatermarkGenerator(CompactAttributes, ABC):
    """Generates watermarks from events (punctuated) or periodically."""

    @abstractmethod
    def on_event(self, event: Any, event_timestamp: int, output: WatermarkOutput) -> None: ...

    @abstractmethod
    def on_periodic_emit(self, output: WatermarkOutput) -> None: ...


class WatermarkGeneratorSupplier:
    """``for_generator`` also accepts an object with ``create_watermark_generator(context)``."""

    def create_watermark_generator(self, context: Any) -> WatermarkGenerator:
        raise NotImplementedError


class BoundedOutOfOrdernessWatermarks(WatermarkGenerator):
    """Watermark = max timestamp - out_of_orderness - 1 (Flink's BoundedOutOfOrdernessWatermarks)."""

    def __init__(self, out_of_orderness_ms: int) -> None:
        if out_of_orderness_ms < 0:
            raise ValueError(f"max out-of-orderness must be >= 0, got {out_of_orderness_ms}")
        self.out_of_orderness = out_of_orderness_ms
        self.max_timestamp = MIN_WATERMARK + out_of_orderness_ms + 1

    def on_event(self, event: Any, event_timestamp: int, output: WatermarkOutput) -> None:
        if event_timestamp > self.max_timestamp:
            self.max_timestamp = event_timestamp

    def on_batch(self, timestamps: list) -> None:
        """All events of a micro-batch at once (the runtime's fast path); ``timestamps`` is a
        list or an int64 numpy array."""
        if len(timestamps):
            m = int(timestamps.max()) if hasattr(timestamps, "max") else max(timestamps)
            if m > self.max_timestamp:
                self.max_timestamp = m

    def on_periodic_emit(self, output: WatermarkOutput) -> None:
        output.emit_watermark(Watermark(self.max_timestamp - self.out_of_orderness - 1))


class AscendingTimestampsWatermarks(BoundedOutOfOrdernessWatermarks):
    def __init__(self) -> None:
        super().__init__(0)


class NoWatermarksGenerator(WatermarkGenerator):
    def on_event(self, event: Any, event_timestamp: int, output: WatermarkOutput) -> None:
        pass

    def on_batch(self, timestamps: list) -> None:
        pass

    def on_periodic_emit(self, output: WatermarkOutput) -> None:
        pass


class WatermarksWithIdleness(WatermarkGenerator):
    """Wraps a generator; marks the output idle after ``timeout_ms`` without events."""

    def __init__(
        self, generator: WatermarkGenerator, timeout_ms: int, clock: Callable[[], int] | None = None
    ) -> None:
        if timeout_ms <= 0:
            raise ValueError(f"idle timeout must be positive, got {timeout_ms} ms")
        self.generator = generator
        self.timeout_ms = timeout_ms
        self.clock = clock or (lambda: int(time.time() * 1000))
        self._counter = 0
        self._last_counter = -1
        self._start_of_inactivity = 0
        self.is_idle = False
        if not callable(getattr(generator, "on_batch", None)):
            self.on_batch = None  # type: ignore[assignment]  # a user generator sees every event

    def on_event(self, event: Any, event_timestamp: int, output: WatermarkOutput) -> None:
        self.generator.on_event(event, event_timestamp, output)
        self._counter += 1

    def on_batch(self, timestamps: list) -> None:
        self.generator.on_batch(timestamps)  # type: ignore[attr-defined]
        self._counter += 1

    def _check_if_idle(self) -> bool:
        if self._counter != self._last_counter:
            self._last_counter = self._counter
            self._start_of_inactivity = 0
            return False
        now = self.clock()
        if self._start_of_inactivity == 0:
            self._start_of_inactivity = now
            return False
        return now - self._start_of_inactivity > self.timeout_ms

    def on_periodic_emit(self, output: WatermarkOutput) -> None:
        if self._check_if_idle():
            if not self.is_idle:
                self.is_idle = True
                output.mark_idle()
        else:
            self.is_idle = False
            self.generator.on_periodic_emit(output)


class _CallableAssigner(TimestampAssigner):
    def __init__(self, fn: Callable) -> None:
        self.fn = fn

    def extract_timestamp(self, value: Any, record_timestamp: int) -> int:
        return self.fn(value, record_timestamp)


class FieldTimestampAssigner(TimestampAssigner):
    """Reads the timestamp from a field (index of a tuple/list, or a name of a Row/dict)."""

    def __init__(self, field: int | str) -> None:
        self.field = field

    def extract_timestamp(self, value: Any, record_timestamp: int) -> int:
        return value[self.field]


class WatermarkStrategy:
    """Builds timestamp assigners and watermark generators (``pyflink.common.WatermarkStrategy``)."""

    def __init__(
        self,
        generator_factory: Callable[[Any], WatermarkGenerator],
        kind: str = "custom",
        out_of_orderness_ms: int | None = None,
    ) -> None:
        self._generator_factory = generator_factory
        self.kind = kind
        self.out_of_orderness_ms = out_of_orderness_ms
        self.timestamp_assigner: TimestampAssigner | None = None
        self.idle_timeout_ms: int | None = None
        self.alignment: tuple[str, int, int] | None = None

    def _copy(self) -> WatermarkStrategy:
        s = WatermarkStrategy(self._generator_factory, self.kind, self.out_of_orderness_ms)
        s.timestamp_assigner = self.timestamp_assigner
        s.idle_timeout_ms = self.idle_timeout_ms
        s.alignment = self.alignment
        return s

    # -- built-in strategies ------------------------------------------------------------------
    @staticmethod
    def for_monotonous_timestamps() -> WatermarkStrategy:
        return WatermarkStrategy(lambda ctx: AscendingTimestampsWatermarks(), "monotonous", 0)

    @staticmethod
    def for_bounded_out_of_orderness(max_out_of_orderness: Duration | int) -> WatermarkStrategy:
        ms = to_millis(max_out_of_orderness, "max_out_of_orderness")
        if ms < 0:
            raise ValueError(f"max out-of-orderness must be >= 0, got {ms} ms")
        return WatermarkStrategy(lambda ctx: BoundedOutOfOrdernessWatermarks(ms), "bounded", ms)

    @staticmethod
    def no_watermarks() -> WatermarkStrategy:
        return WatermarkStrategy(lambda ctx: NoWatermarksGenerator(), "none")

    @staticmethod
    def for_generator(generator_supplier: Any) -> WatermarkStrategy:
        """``generator_supplier``: a callable ``(context) -> WatermarkGenerator`` or an object with
        ``create_watermark_generator(context)``."""
        if hasattr(generator_supplier, "create_watermark_generator"):
            factory = generator_supplier.create_watermark_generator
        elif callable(generator_supplier):
            factory = generator_supplier
        else:
            raise TypeError(
                f"for_generator needs a callable returning a WatermarkGenerator, got {generator_supplier!r}"
            )
        return WatermarkStrategy(factory, "custom")

    # -- options ------------------------------------------------------------------------------
    def with_timestamp_assigner(self, timestamp_assigner: Any) -> WatermarkStrategy:
        """A TimestampAssigner, a callable ``(value, record_timestamp) -> int``, or (+) a field
        index/name to read the timestamp from."""
        s = self._copy()
        if isinstance(timestamp_assigner, TimestampAssigner):
            s.timestamp_assigner = timestamp_assigner
        elif isinstance(timestamp_assigner, (int, str)) and not isinstance(timestamp_assigner, bool):
            s.timestamp_assigner = FieldTimestampAssigner(timestamp_assigner)
        elif callable(getattr(timestamp_assigner, "extract_timestamp", None)):
            s.timestamp_assigner = timestamp_assigner
        elif callable(timestamp_assigner):
            s.timestamp_assigner = _CallableAssigner(timestamp_assigner)
        else:
            raise TypeError(
                f"expected a TimestampAssigner, a callable or a field, got {timestamp_assigner!r}"
            )
        return s

    def with_idleness(self, idle_timeout: Duration | int) -> WatermarkStrategy:
        s = self._copy()
        s.idle_timeout_ms = to_millis(idle_timeout, "idle_timeout")
        if s.idle_timeout_ms <= 0:
            raise ValueError(f"idle timeout must be positive, got {s.idle_timeout_ms} ms")
        return s

    def with_watermark_alignment(
        self,
        watermark_group: str,
        max_allowed_watermark_drift: Duration | int,
        update_interval: Duration | int = 1000,
    ) -> WatermarkStrategy:
        """Accepted; alignment matters across parallel source splits, which one process reads in
        lockstep anyway."""
        s = self._copy()
        s.alignment = (watermark_group, to_millis(max_allowed_watermark_drift), to_millis(update_interval))
        return s

    # -- used by the runtime ------------------------------------------------------------------
    def create_timestamp_assigner(self, context: Any = None) -> TimestampAssigner | None:
        return self.timestamp_assigner

    def create_watermark_generator(self, context: Any = None, clock: Callable[[], int] | None = None) -> Any:
        gen = self._generator_factory(context)
        if not isinstance(gen, WatermarkGenerator) and not (
            hasattr(gen, "on_event") and hasattr(gen, "on_periodic_emit")
        ):
            raise TypeError(f"the watermark generator supplier returned {gen!r}, not a WatermarkGenerator")
        if self.idle_timeout_ms is not None:
            gen = WatermarksWithIdleness(gen, self.idle_timeout_ms, clock)
        return gen
