"""The operator contract: how every runtime operator receives and emits data.

Records move in **micro-batches**: ``values`` is a list of records and ``timestamps`` is either
a list of int64 milliseconds of the same length (entries may be None for a record without a
timestamp) or ``None`` when no record of the batch has one. Batches are immutable once emitted:
an operator never mutates a list it received or emitted (a batch may fan out to several
consumers). Watermarks, watermark status (idle/active) and end of input travel **in-band**,
through the same :class:`Output` / :class:`Input` calls, in order with the records.

Life cycle, driven by the task (or by :mod:`flinkcore.runtime.testing`)::

    op = factory()                       # one fresh instance per parallel subtask
    op.setup(context, output)            # context: OperatorContext, output: Output
    op.restore_state(snapshot)           # only when restoring (before open)
    op.open()
    op.process_batch(values, timestamps) # any number, interleaved with:
    op.process_watermark(wm) / op.process_watermark_status(idle) / processing-time callbacks
    op.prepare_snapshot_pre_barrier(id)  # a checkpoint is taken between batches:
    op.snapshot_state() -> dict
    op.notify_checkpoint_complete(id)    # ... once it is durable
    op.end_input()                       # bounded input finished: flush, then forward end_input
    op.close()

The runtime looks ``process_batch`` up after ``open`` (so an operator may choose its
implementation there, e.g. a keyed variant). One-input operators are their own :class:`Input`.
Two-input operators (:class:`AbstractTwoInputStreamOperator`) expose ``inputs()`` -> ``[input1, input2]``; the
runtime only ever talks to ``Input`` objects, so any new operator kind plugs in without a change
to the runtime: a transformation carries a zero-argument *operator factory*.

Keyed operators get ``context.key_selectors`` (one per input, None for a non-keyed input) and a
keyed state backend (``self.state_backend``); before running user code for a record or timer they
call :meth:`AbstractStreamOperator.set_current_key`. Timers: :meth:`get_internal_timer_service`.

Side outputs: ``output.collect_side(tag_id, values, timestamps)``; ``tag_id`` is the string id
of an :class:`SideOutputTag` (the user's ``OutputTag``).

Snapshots: :meth:`snapshot_state` returns plain Python data: ``{"keyed": <backend snapshot>,
"timers": {...}, "operator": <snapshot_operator_state()>}``; :meth:`restore_state` takes a list
of such dicts (several when restoring at a different parallelism).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any

from flinkcore.common.watermark import MIN_WATERMARK

__all__ = [
    "AbstractStreamOperator",
    "AbstractTwoInputStreamOperator",
    "Input",
    "OperatorContext",
    "Output",
    "SideOutputTag",
    "StreamOperator",
    "UserCodeError",
]


class SideOutputTag:
    """Identity of a side output; the user-facing ``OutputTag`` subclasses it."""

    def __init__(self, tag_id: str) -> None:
        if not isinstance(tag_id, str) or not tag_id:
            raise ValueError(f"an OutputTag needs a non-empty string id, got {tag_id!r}")
        self.tag_id = tag_id

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SideOutputTag) and other.tag_id == self.tag_id

    def __hash__(self) -> int:
        return hash(self.tag_id)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.tag_id!r})"


class UserCodeError(RuntimeError):
    """A user function raised: names the operator and the record; the cause is chained."""

    def __init__(self, operator_name: str, record: Any, cause: BaseException, where: str = "record") -> None:
        text = repr(record)
        if len(text) > 200:
            text = text[:200] + "..."
        super().__init__(
            f"operator '{operator_name}' failed on {where} {text}: {type(cause).__name__}: {cause}"
        )
        self.operator_name = operator_name
        self.record = record


class Input(ABC):
    """What receives a stream: a chained operator, an exchange writer or a collecting output."""

    @abstractmethod
    def process_batch(self, values: list, timestamps: list | None) -> None: ...

    @abstractmethod
    def process_watermark(self, watermark: int) -> None: ...

    def process_watermark_status(self, idle: bool) -> None:  # noqa: B027
        """The upstream became idle (excluded from watermark minimums) or active again."""

    @abstractmethod
    def end_input(self) -> None: ...


class Output(ABC):
    """Where an operator emits. Implementations route to chained operators or exchanges."""

    @abstractmethod
    def collect(self, values: list, timestamps: list | None) -> None: ...

    @abstractmethod
    def collect_side(self, tag_id: str, values: list, timestamps: list | None) -> None: ...

    @abstractmethod
    def emit_watermark(self, watermark: int) -> None: ...

    @abstractmethod
    def emit_watermark_status(self, idle: bool) -> None: ...

    @abstractmethod
    def end_input(self) -> None: ...


class OperatorContext:
    """What the runtime hands an operator at ``setup``: where it runs and its services."""

    def __init__(
        self,
        name: str,
        subtask_index: int = 0,
        parallelism: int = 1,
        max_parallelism: int = 128,
        key_selectors: list | None = None,
        state_backend: Any = None,
        processing_time_service: Any = None,
        config: dict | None = None,
        runtime_mode: str = "STREAMING",
        job_name: str = "job",
    ) -> None:
        self.name = name
        self.subtask_index = subtask_index
        self.parallelism = parallelism
        self.max_parallelism = max_parallelism
        self.key_selectors = key_selectors or [None]
        self.state_backend = state_backend
        self.processing_time_service = processing_time_service
        self.config = config or {}
        self.runtime_mode = runtime_mode
        self.job_name = job_name

    @property
    def is_keyed(self) -> bool:
        return any(k is not None for k in self.key_selectors)


class StreamOperator(Input):
    """The full operator contract (see the module docstring)."""

    name: str = "operator"
    #: True when ``process_batch`` also takes a columnar batch (a ``pyarrow.RecordBatch`` with
    #: timestamps as an int64 numpy array or None); other operators get lists of records
    #: (runtime/columnar.py converts at that boundary)
    accepts_columnar: bool = False

    @abstractmethod
    def setup(self, context: OperatorContext, output: Output) -> None: ...

    def open(self) -> None:
        """Called once before the first record (after restore_state)."""

    def close(self) -> None:
        """Called once at the end (after end_input, or on cancel/failure)."""

    def finish(self) -> None:
        """The job's inputs all ended and it succeeded: make final results visible (a
        transactional sink commits what it held since its own input ended). Called before
        ``close``, never on cancel or failure."""

    def inputs(self) -> list[Input]:
        """The operator's inputs; a one-input operator is its own input."""
        return [self]

    @abstractmethod
    def snapshot_state(self) -> dict: ...

    @abstractmethod
    def restore_state(self, snapshots: list[dict]) -> None: ...

    def prepare_snapshot_pre_barrier(self, checkpoint_id: int) -> None:
        """Checkpoint ``checkpoint_id`` is about to snapshot this operator (a transactional sink
        pre-commits here)."""

    def notify_checkpoint_complete(self, checkpoint_id: int) -> None:
        """Checkpoint ``checkpoint_id`` is durable (a transactional sink commits here)."""


class AbstractStreamOperator(StreamOperator):
    """Base of the built-in operators: output, keyed state, timers, watermark forwarding.

    Subclasses implement ``process_batch``; they may override ``process_watermark`` (call
    ``super()`` to fire event-time timers and forward), ``end_input`` (emit, then ``super()``),
    and ``snapshot_operator_state``/``restore_operator_state`` for non-keyed operator state.
    """

    def __init__(self, name: str | None = None) -> None:
        if name is not None:
            self.name = name
        self.output: Output = None  # type: ignore[assignment]
        self.context: OperatorContext = None  # type: ignore[assignment]
        self.state_backend: Any = None
        self.key_selector: Callable | None = None
        self.current_watermark = MIN_WATERMARK
        self._timer_services: dict[str, Any] = {}
        self._restored_timers: dict[str, list] = {}

    def setup(self, context: OperatorContext, output: Output) -> None:
        self.context = context
        self.output = output
        self.name = context.name or self.name
        self.state_backend = context.state_backend
        self.key_selector = context.key_selectors[0]

    # -- keyed -------------------------------------------------------------------------------
    def set_current_key(self, key: Any) -> None:
        self.state_backend.current_key = key

    def get_current_key(self) -> Any:
        return self.state_backend.current_key

    def get_internal_timer_service(self, name: str, triggerable: Any) -> Any:
        """Timer service ``name`` (created once; restored timers are re-registered)."""
        svc = self._timer_services.get(name)
        if svc is None:
            if self.state_backend is None:
                raise RuntimeError(
                    f"operator '{self.name}' uses timers, which need a keyed stream: call key_by() first"
                )
            from flinkcore.runtime.timers import InternalTimerService

            svc = InternalTimerService(
                name, self.state_backend, triggerable, self.context.processing_time_service
            )
            svc.current_watermark = self.current_watermark
            for snap in self._restored_timers.pop(name, []):
                svc.restore(snap, self.context.max_parallelism, self.state_backend.key_group_range)
            self._timer_services[name] = svc
        return svc

    # -- in-band events -----------------------------------------------------------------------
    def process_watermark(self, watermark: int) -> None:
        if watermark <= self.current_watermark:
            return
        self.current_watermark = watermark
        for svc in self._timer_services.values():
            svc.advance_watermark(watermark)
        self.output.emit_watermark(watermark)

    def process_watermark_status(self, idle: bool) -> None:
        self.output.emit_watermark_status(idle)

    def end_input(self) -> None:
        self.output.end_input()

    # -- snapshots ----------------------------------------------------------------------------
    def snapshot_operator_state(self) -> Any:
        """Non-keyed operator state (e.g. broadcast state, a source offset); None if none."""
        return None

    def restore_operator_state(self, states: list) -> None:
        """Restore what ``snapshot_operator_state`` returned (one entry per former instance)."""

    def snapshot_state(self) -> dict:
        return {
            "keyed": self.state_backend.snapshot() if self.state_backend is not None else None,
            "timers": {name: svc.snapshot() for name, svc in self._timer_services.items()},
            "operator": self.snapshot_operator_state(),
            "watermark": self.current_watermark,
        }

    def restore_state(self, snapshots: list[dict]) -> None:
        keyed = [s["keyed"] for s in snapshots if s.get("keyed") is not None]
        if keyed:
            if self.state_backend is None:
                raise RuntimeError(
                    f"operator '{self.name}': snapshot has keyed state but the stream is not keyed"
                )
            self.state_backend.restore(keyed)
        for snap in snapshots:
            for name, timers in (snap.get("timers") or {}).items():
                self._restored_timers.setdefault(name, []).append(timers)
        self.restore_operator_state([s.get("operator") for s in snapshots])


class _SecondInput(Input):
    """Adapter that routes input 2 of a two-input operator to its ``*2`` methods."""

    def __init__(self, op: AbstractTwoInputStreamOperator) -> None:
        self.process_batch = op.process_batch2  # type: ignore[method-assign]
        self._op = op

    def process_batch(self, values: list, timestamps: list | None) -> None:  # replaced in __init__
        self._op.process_batch2(values, timestamps)

    def process_watermark(self, watermark: int) -> None:
        self._op.process_watermark2(watermark)

    def process_watermark_status(self, idle: bool) -> None:
        self._op.process_watermark_status2(idle)

    def end_input(self) -> None:
        self._op.end_input2()


class _FirstInput(_SecondInput):
    def __init__(self, op: AbstractTwoInputStreamOperator) -> None:
        self.process_batch = op.process_batch1  # type: ignore[method-assign]
        self._op = op

    def process_watermark(self, watermark: int) -> None:
        self._op.process_watermark1(watermark)

    def process_watermark_status(self, idle: bool) -> None:
        self._op.process_watermark_status1(idle)

    def end_input(self) -> None:
        self._op.end_input1()


class AbstractTwoInputStreamOperator(AbstractStreamOperator):
    """Two inputs: the combined watermark is the minimum over inputs, idle inputs left out;
    end of input is forwarded once both inputs ended."""

    def __init__(self, name: str | None = None) -> None:
        super().__init__(name)
        self._input_watermarks = [MIN_WATERMARK, MIN_WATERMARK]
        self._input_idle = [False, False]
        self._input_ended = [False, False]
        self._inputs = [_FirstInput(self), _SecondInput(self)]

    def setup(self, context: OperatorContext, output: Output) -> None:
        super().setup(context, output)
        selectors = list(context.key_selectors) + [None, None]
        self.key_selector1, self.key_selector2 = selectors[0], selectors[1]

    def inputs(self) -> list[Input]:
        return self._inputs

    def process_batch(self, values: list, timestamps: list | None) -> None:
        raise TypeError(f"two-input operator '{self.name}' takes records through inputs()")

    @abstractmethod
    def process_batch1(self, values: list, timestamps: list | None) -> None: ...

    @abstractmethod
    def process_batch2(self, values: list, timestamps: list | None) -> None: ...

    def _combined_watermark(self) -> None:
        active = [wm for wm, idle in zip(self._input_watermarks, self._input_idle, strict=False) if not idle]
        if active:
            AbstractStreamOperator.process_watermark(self, min(active))

    def process_watermark1(self, watermark: int) -> None:
        self._input_watermarks[0] = max(self._input_watermarks[0], watermark)
        self._combined_watermark()

    def process_watermark2(self, watermark: int) -> None:
        self._input_watermarks[1] = max(self._input_watermarks[1], watermark)
        self._combined_watermark()

    def process_watermark(self, watermark: int) -> None:
        raise TypeError(f"two-input operator '{self.name}' takes watermarks through inputs()")

    def _status(self, index: int, idle: bool) -> None:
        was_idle = all(self._input_idle)
        self._input_idle[index] = idle
        now_idle = all(self._input_idle)
        if now_idle != was_idle:
            self.output.emit_watermark_status(now_idle)
        if not idle or not now_idle:
            self._combined_watermark()

    def process_watermark_status1(self, idle: bool) -> None:
        self._status(0, idle)

    def process_watermark_status2(self, idle: bool) -> None:
        self._status(1, idle)

    def end_input1(self) -> None:
        self._end(0)

    def end_input2(self) -> None:
        self._end(1)

    def _end(self, index: int) -> None:
        self._input_ended[index] = True
        if all(self._input_ended):
            self.end_input()
