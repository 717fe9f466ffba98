"""Type stub of the compiled flinkcore._core.window_udf."""

from collections.abc import Callable, Iterator
from typing import Any

KIND_AGGREGATING: int
KIND_REDUCING: int
KIND_LIST: int
KIND_FOLD_PARTIAL: int

class Cursor:
    position: int
    key: Any
    ts: Any
    value: Any
    stage: int
    max_ts: int
    def reset(self) -> None: ...

class KeyedPanes:
    fallback: dict | None
    def get(self, key: Any, default: Any = ...) -> Any: ...
    def __getitem__(self, key: Any) -> Any: ...
    def __setitem__(self, key: Any, value: Any) -> None: ...
    def __contains__(self, key: Any) -> bool: ...
    def __len__(self) -> int: ...
    def __iter__(self) -> Iterator[Any]: ...
    def keys(self) -> list: ...
    def values(self) -> list: ...
    def items(self, start: int = 0, stop: int | None = None) -> list[tuple[Any, Any]]: ...
    def update(self, other: Any) -> None: ...
    def map_values(self, fn: Callable[[Any], Any]) -> list: ...
    def to_dict(self) -> dict: ...

class Session:
    key: Any
    start: Any
    end: Any
    acc: Any
    def __init__(self, key: Any, start: Any, end: Any, acc: Any) -> None: ...

class SessionMap:
    """key -> open session(s); small non-negative int keys are slots of a C array."""

    capacity: int
    in_slots: int
    def get(self, key: Any, default: Any = None) -> Any: ...
    def pop(self, key: Any, default: Any = ...) -> Any: ...
    def __getitem__(self, key: Any) -> Any: ...
    def __setitem__(self, key: Any, value: Any) -> None: ...
    def __delitem__(self, key: Any) -> None: ...
    def __contains__(self, key: Any) -> bool: ...
    def __len__(self) -> int: ...
    def __iter__(self) -> Iterator[Any]: ...
    def keys(self) -> list: ...
    def values(self) -> list: ...
    def items(self) -> list[tuple[Any, Any]]: ...
    def clear(self) -> None: ...

def head_batch(
    cur: Cursor,
    values: list,
    timestamps: Any,
    extract: Callable[[Any, Any], Any],
    no_timestamp: Any,
    pre: Callable[[Any], Any] | None,
) -> tuple[list, list, list]: ...
def tumbling_batch(
    cur: Cursor,
    values: list,
    timestamps: list | None,
    extract: Callable[[Any, Any], Any] | None,
    no_timestamp: Any,
    pre: Callable[[Any], Any] | None,
    first: int,
    key_of: Callable[[Any], Any],
    key_index: int,
    size: int,
    offset: int,
    fired_until: int,
    kind: int,
    create: Callable[[], Any] | None,
    fn: Callable[[Any, Any], Any] | None,
    windows: dict,
    open_window: Callable[[int], Any],
) -> int: ...
def session_batch(
    cur: Cursor,
    values: list,
    timestamps: list | None,
    extract: Callable[[Any, Any], Any] | None,
    no_timestamp: Any,
    pre: Callable[[Any], Any] | None,
    first: int,
    key_of: Callable[[Any], Any],
    key_index: int,
    gap: int,
    watermark: int,
    kind: int,
    create: Callable[[], Any] | None,
    fn: Callable[[Any, Any], Any] | None,
    single: SessionMap | dict,
    multi: SessionMap | dict,
    wheel: dict,
) -> int: ...
def due_sessions(
    wheel: dict, buckets: list, watermark: int, gap: int, single: SessionMap | dict
) -> tuple[list[Session], list[Session], bool]: ...
def emit_sessions(
    closed: list[Session], result: Callable[[Any], Any] | None, values: list, timestamps: list
) -> None: ...

#: the accumulator of a global session that has only extents so far
EMPTY_ACC: Any

class LocalSession:
    key: Any
    acc: Any
    start: int
    end: int
    pending: bool
    sent_start: int
    sent_end: int
    deadline: int
    def __init__(self, key: Any) -> None: ...

def local_deadline(s: LocalSession) -> int: ...
def local_schedule(s: LocalSession, wheel: dict, overdue: list, watermark: int, width: int) -> None: ...
def local_session_batch(
    cur: Cursor,
    values: list,
    timestamps: list | None,
    extract: Callable[[Any, Any], Any] | None,
    no_timestamp: Any,
    pre: Callable[[Any], Any] | None,
    first: int,
    key_of: Callable[[Any], Any],
    key_index: int,
    gap: int,
    watermark: int,
    kind: int,
    create: Callable[[], Any] | None,
    fn: Callable[[Any, Any], Any],
    state: dict,
    wheel: dict,
    overdue: list,
    width: int,
) -> int: ...
def local_send(sessions: list[LocalSession], forwarded: int, out_values: list, out_ts: list) -> int: ...
def local_send_overdue(
    sessions: list[LocalSession],
    watermark: int,
    forwarded: int,
    width: int,
    wheel: dict,
    out_values: list,
    out_ts: list,
) -> tuple[int, int]: ...
def local_send_due(
    wheel: dict,
    buckets: list,
    watermark: int,
    forwarded: int,
    width: int,
    out_values: list,
    out_ts: list,
) -> tuple[int, int]: ...
def merge_partial_sessions(
    values: list,
    timestamps: list,
    first: int,
    gap: int,
    merge: Callable[[Any, Any], Any],
    single: SessionMap | dict,
    multi: SessionMap | dict,
    wheel: dict,
) -> int: ...

class MessageKey:
    key_of: Callable[[Any], Any]
    key_index: int
    def __init__(self, key_of: Callable[[Any], Any], key_index: int = -1) -> None: ...
    def __call__(self, value: Any) -> Any: ...

def local_pass_through(
    cur: Cursor,
    values: list,
    timestamps: list | None,
    extract: Callable[[Any, Any], Any] | None,
    no_timestamp: Any,
    pre: Callable[[Any], Any] | None,
    first: int,
    key_of: Callable[[Any], Any],
    out_values: list,
    out_ts: list,
) -> int: ...
def records_end(values: list, first: int) -> int: ...
def has_lists(values: list) -> bool: ...
