"""Operator test harnesses (Flink's ``KeyedOneInputStreamOperatorTestHarness`` and friends).

Drive one operator with elements, watermarks, processing time, snapshots and end of input,
with no job around it, and look at what it emitted::

    h = KeyedOneInputStreamOperatorTestHarness(op, key_selector=lambda v: v[0])
    h.open()
    h.process_element(("a", 1), 10)
    h.process_watermark(10)
    h.set_processing_time(1_000)
    snap = h.snapshot()          # restore with a new harness: h2.initialize_state(snap)
    h.end_input()
    h.get_output()               # [StreamRecord(value, timestamp), Watermark(ts), ...]
    h.extract_output_values()    # only the record values
    h.get_side_output(tag)       # StreamRecords of one side output
"""

from __future__ import annotations

import copy
import pickle
from collections.abc import Callable
from typing import Any, NamedTuple

from flinkcore.common.watermark import Watermark
from flinkcore.runtime.operators.base import OperatorContext, Output, StreamOperator
from flinkcore.runtime.processing_time import ManualClock, ProcessingTimeService
from flinkcore.state.heap import HeapKeyedStateBackend
from flinkcore.state.key_groups import key_group_range_for

__all__ = [
    "KeyedOneInputStreamOperatorTestHarness",
    "KeyedTwoInputStreamOperatorTestHarness",
    "OneInputStreamOperatorTestHarness",
    "StreamRecord",
    "TwoInputStreamOperatorTestHarness",
]


class StreamRecord(NamedTuple):
    """A record as emitted: its value and timestamp (None when it has none)."""

    value: Any
    timestamp: int | None = None


class _CollectingOutput(Output):
    def __init__(self) -> None:
        self.output: list = []
        self.side: dict[str, list[StreamRecord]] = {}
        self.watermark_statuses: list[bool] = []
        self.ended = False

    def collect(self, values: list, timestamps: list | None) -> None:
        if timestamps is None:
            self.output.extend(StreamRecord(v, None) for v in values)
        else:
            self.output.extend(StreamRecord(v, t) for v, t in zip(values, timestamps, strict=False))

    def collect_side(self, tag_id: str, values: list, timestamps: list | None) -> None:
        out = self.side.setdefault(tag_id, [])
        ts = timestamps if timestamps is not None else [None] * len(values)
        out.extend(StreamRecord(v, t) for v, t in zip(values, ts, strict=False))

    def emit_watermark(self, watermark: int) -> None:
        self.output.append(Watermark(watermark))

    def emit_watermark_status(self, idle: bool) -> None:
        self.watermark_statuses.append(idle)

    def end_input(self) -> None:
        self.ended = True


class _HarnessBase:
    def __init__(
        self,
        operator: StreamOperator,
        key_selectors: list,
        parallelism: int = 1,
        subtask_index: int = 0,
        max_parallelism: int = 128,
        runtime_mode: str = "STREAMING",
        config: dict | None = None,
        state_backend_factory: Callable[..., Any] | None = None,
    ) -> None:
        self.operator = operator
        self.clock = ManualClock(0)
        self.processing_time_service = ProcessingTimeService(self.clock)
        self._out = _CollectingOutput()
        backend = None
        if any(k is not None for k in key_selectors):
            factory = state_backend_factory or HeapKeyedStateBackend
            backend = factory(
                max_parallelism=max_parallelism,
                key_group_range=key_group_range_for(subtask_index, max_parallelism, parallelism)
                if parallelism > 1
                else None,
                ttl_time_provider=self.clock,
            )
        self.state_backend = backend
        self.context = OperatorContext(
            name=getattr(operator, "name", type(operator).__name__),
            subtask_index=subtask_index,
            parallelism=parallelism,
            max_parallelism=max_parallelism,
            key_selectors=key_selectors,
            state_backend=backend,
            processing_time_service=self.processing_time_service,
            config=config,
            runtime_mode=runtime_mode,
        )
        operator.setup(self.context, self._out)
        self._opened = False
        self._pending_restore: list[dict] | None = None

    # -- life cycle ---------------------------------------------------------------------------
    def initialize_state(self, *snapshots: dict) -> None:
        """Restore from one or more snapshots (more than one: a rescaled restore). Before open()."""
        if self._opened:
            raise RuntimeError("initialize_state() must be called before open()")
        self.operator.restore_state([pickle.loads(pickle.dumps(s)) for s in snapshots])

    def open(self) -> None:
        self.operator.open()
        self._opened = True

    def _ensure_open(self) -> None:
        if not self._opened:
            self.open()

    def close(self) -> None:
        self.operator.close()

    def snapshot(self) -> dict:
        """The operator's state as a checkpoint would write it (a deep copy)."""
        self._ensure_open()
        return copy.deepcopy(pickle.loads(pickle.dumps(self.operator.snapshot_state())))

    def set_processing_time(self, time: int) -> None:
        self._ensure_open()
        self.clock.now = time
        self.processing_time_service.advance(time)

    def get_processing_time(self) -> int:
        return self.clock.now

    # -- output -------------------------------------------------------------------------------
    def get_output(self) -> list:
        return list(self._out.output)

    def extract_output_values(self) -> list:
        return [r.value for r in self._out.output if isinstance(r, StreamRecord)]

    def extract_output_records(self) -> list[StreamRecord]:
        return [r for r in self._out.output if isinstance(r, StreamRecord)]

    def get_watermarks(self) -> list[int]:
        return [w.timestamp for w in self._out.output if isinstance(w, Watermark)]

    def get_side_output(self, tag: Any) -> list[StreamRecord]:
        return list(self._out.side.get(getattr(tag, "tag_id", tag), []))

    def get_side_output_values(self, tag: Any) -> list:
        return [r.value for r in self.get_side_output(tag)]

    def get_watermark_statuses(self) -> list[bool]:
        return list(self._out.watermark_statuses)

    def clear_output(self) -> None:
        self._out.output.clear()
        self._out.side.clear()

    @property
    def ended(self) -> bool:
        """True once the operator forwarded end of input."""
        return self._out.ended

    def num_keyed_state_entries(self) -> int:
        if self.state_backend is None:
            return 0
        snap = self.state_backend.snapshot()
        if snap["backend"] == "lmdb":
            from flinkcore.state.lmdb_backend import snapshot_records

            return sum(len(records) for records in snapshot_records(snap).values())
        return sum(len(keys) for s in snap["states"].values() for _, _, keys, _ in s["tables"])


def _batch(value: Any, timestamp: int | None) -> tuple[list, list | None]:
    return [value], (None if timestamp is None else [timestamp])


class OneInputStreamOperatorTestHarness(_HarnessBase):
    """Drives a one-input operator."""

    def __init__(self, operator: StreamOperator, key_selector: Callable | None = None, **kwargs: Any) -> None:
        super().__init__(operator, [key_selector], **kwargs)

    def process_element(self, value: Any, timestamp: int | None = None) -> None:
        self._ensure_open()
        self.operator.process_batch(*_batch(value, timestamp))

    def process_elements(self, values: list, timestamps: list | None = None) -> None:
        """One micro-batch (as the runtime delivers them)."""
        self._ensure_open()
        self.operator.process_batch(list(values), None if timestamps is None else list(timestamps))

    def process_watermark(self, watermark: int | Watermark) -> None:
        self._ensure_open()
        self.operator.process_watermark(getattr(watermark, "timestamp", watermark))

    def process_watermark_status(self, idle: bool) -> None:
        self._ensure_open()
        self.operator.process_watermark_status(idle)

    def end_input(self) -> None:
        self._ensure_open()
        self.operator.end_input()


class KeyedOneInputStreamOperatorTestHarness(OneInputStreamOperatorTestHarness):
    """Drives a keyed one-input operator with a heap state backend (or the given factory)."""

    def __init__(self, operator: StreamOperator, key_selector: Callable, **kwargs: Any) -> None:
        if key_selector is None:
            raise ValueError("a keyed harness needs a key_selector")
        super().__init__(operator, key_selector, **kwargs)


class TwoInputStreamOperatorTestHarness(_HarnessBase):
    """Drives a two-input operator through its ``inputs()``."""

    def __init__(
        self,
        operator: StreamOperator,
        key_selector1: Callable | None = None,
        key_selector2: Callable | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(operator, [key_selector1, key_selector2], **kwargs)
        self._inputs = operator.inputs()

    def process_element1(self, value: Any, timestamp: int | None = None) -> None:
        self._ensure_open()
        self._inputs[0].process_batch(*_batch(value, timestamp))

    def process_element2(self, value: Any, timestamp: int | None = None) -> None:
        self._ensure_open()
        self._inputs[1].process_batch(*_batch(value, timestamp))

    def process_watermark1(self, watermark: int) -> None:
        self._ensure_open()
        self._inputs[0].process_watermark(watermark)

    def process_watermark2(self, watermark: int) -> None:
        self._ensure_open()
        self._inputs[1].process_watermark(watermark)

    def process_watermark_status1(self, idle: bool) -> None:
        self._ensure_open()
        self._inputs[0].process_watermark_status(idle)

    def process_watermark_status2(self, idle: bool) -> None:
        self._ensure_open()
        self._inputs[1].process_watermark_status(idle)

    def end_input1(self) -> None:
        self._ensure_open()
        self._inputs[0].end_input()

    def end_input2(self) -> None:
        self._ensure_open()
        self._inputs[1].end_input()


class KeyedTwoInputStreamOperatorTestHarness(TwoInputStreamOperatorTestHarness):
    def __init__(
        self, operator: StreamOperator, key_selector1: Callable, key_selector2: Callable, **kwargs: Any
    ) -> None:
        if key_selector1 is None or key_selector2 is None:
            raise ValueError("a keyed two-input harness needs both key selectors")
        super().__init__(operator, key_selector1, key_selector2, **kwargs)
