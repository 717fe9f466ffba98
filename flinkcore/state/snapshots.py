"""Deferred snapshots: the part of a checkpoint that may be written while processing goes on.

During the synchronous phase of a checkpoint (inside :func:`deferred_snapshots`), a backend that
can take a consistent view cheaply (LMDB: a read transaction) returns a
:class:`DeferredSnapshot` in place of its data; the checkpoint writer thread later calls
:func:`resolve_deferred` on the whole job snapshot. Outside that context every snapshot is
materialized at once, so tests and the operator harness only ever see plain data.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Callable, Iterator
from typing import Any

__all__ = ["DeferredSnapshot", "deferred_snapshots", "resolve_deferred", "snapshots_may_be_deferred"]

_DEFERRED = contextvars.ContextVar("flinkcore_deferred_snapshots", default=False)


class DeferredSnapshot:
    """Snapshot data still to be copied out of a pinned consistent view (call it once)."""

    __slots__ = ("_materialize",)

    def __init__(self, materialize: Callable[[], Any]) -> None:
        self._materialize = materialize

    def resolve(self) -> Any:
        return self._materialize()


@contextlib.contextmanager
def deferred_snapshots() -> Iterator[None]:
    """Within this block, backends may return :class:`DeferredSnapshot` objects."""
    token = _DEFERRED.set(True)
    try:
        yield
    finally:
        _DEFERRED.reset(token)


def snapshots_may_be_deferred() -> bool:
    return _DEFERRED.get()


def resolve_deferred(value: Any) -> Any:
    """``value`` with every DeferredSnapshot inside dicts, lists and tuples materialized."""
    if isinstance(value, DeferredSnapshot):
        return value.resolve()
    if isinstance(value, dict):
        return {k: resolve_deferred(v) for k, v in value.items()}
    if isinstance(value, list):
        return [resolve_deferred(v) for v in value]
    if isinstance(value, tuple) and type(value) is tuple:
        return tuple(resolve_deferred(v) for v in value)
    return value
