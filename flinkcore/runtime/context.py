"""``RuntimeContext``: what a user function sees of the task running it (PyFlink names)."""

from __future__ import annotations

from typing import Any

from flinkcore.runtime.operators.base import OperatorContext

__all__ = ["MetricGroup", "RuntimeContext"]


class _Counter:
    def __init__(self) -> None:
        self.count = 0

    def inc(self, n: int = 1) -> None:
        self.count += n

    def dec(self, n: int = 1) -> None:
        self.count -= n

    def get_count(self) -> int:
        return self.count


class _Meter(_Counter):
    def mark_event(self, value: int = 1) -> None:
        self.count += value


class _Distribution:
    """Count, sum, min and max of the values reported with ``update``."""

    def __init__(self) -> None:
        self.count = 0
        self.sum = 0
        self.min: float | None = None
        self.max: float | None = None

    def update(self, value: float) -> None:
        self.count += 1
        self.sum += value
        self.min = value if self.min is None else min(self.min, value)
        self.max = value if self.max is None else max(self.max, value)


class MetricGroup:
    """In-process metrics: counters, gauges and meters kept in a dict (readable by tests)."""

    def __init__(self, scope: tuple[str, ...] = ()) -> None:
        self.scope = scope
        self.metrics: dict[str, Any] = {}

    def add_group(self, name: str, extra: str | None = None) -> MetricGroup:
        return MetricGroup(self.scope + ((name,) if extra is None else (name, extra)))

    def counter(self, name: str) -> _Counter:
        return self.metrics.setdefault(name, _Counter())

    def gauge(self, name: str, obj: Any) -> Any:
        self.metrics[name] = obj
        return obj

    def meter(self, name: str, time_span_in_seconds: int = 60) -> _Meter:
        return self.metrics.setdefault(name, _Meter())

    def distribution(self, name: str) -> _Distribution:
        return self.metrics.setdefault(name, _Distribution())

    def get_metric_group(self) -> MetricGroup:
        return self


class RuntimeContext:
    """Passed to ``open(runtime_context)`` of every user function."""

    def __init__(self, context: OperatorContext) -> None:
        self._ctx = context
        self._metrics = MetricGroup((context.job_name, context.name, str(context.subtask_index)))

    def get_task_name(self) -> str:
        return self._ctx.name

    def get_number_of_parallel_subtasks(self) -> int:
        return self._ctx.parallelism

    def get_max_number_of_parallel_subtasks(self) -> int:
        return self._ctx.max_parallelism

    def get_index_of_this_subtask(self) -> int:
        return self._ctx.subtask_index

    def get_attempt_number(self) -> int:
        return 0

    def get_task_name_with_subtasks(self) -> str:
        return f"{self._ctx.name} ({self._ctx.subtask_index + 1}/{self._ctx.parallelism})"

    def get_job_parameter(self, key: str, default_value: Any = None) -> Any:
        return self._ctx.config.get(key, default_value)

    def get_metrics_group(self) -> MetricGroup:
        return self._metrics

    def _backend(self, what: str) -> Any:
        backend = self._ctx.state_backend
        if backend is None:
            raise RuntimeError(
                f"{what}: keyed state can only be used on a keyed stream, i.e. after key_by() "
                f"(operator '{self._ctx.name}')"
            )
        return backend

    def get_state(self, state_descriptor: Any) -> Any:
        return self._backend("get_state").get_or_create_state(state_descriptor)

    def get_list_state(self, state_descriptor: Any) -> Any:
        return self._backend("get_list_state").get_or_create_state(state_descriptor)

    def get_map_state(self, state_descriptor: Any) -> Any:
        return self._backend("get_map_state").get_or_create_state(state_descriptor)

    def get_reducing_state(self, state_descriptor: Any) -> Any:
        return self._backend("get_reducing_state").get_or_create_state(state_descriptor)

    def get_aggregating_state(self, state_descriptor: Any) -> Any:
        return self._backend("get_aggregating_state").get_or_create_state(state_descriptor)
