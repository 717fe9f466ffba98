"""Unpickled function objects that keep CPython's compact attribute storage.

CPython (3.11 on) keeps a plain object's attributes in a compact array next to the object, with
no dict, as long as nothing asks for its ``__dict__``; ``self.x`` is then a specialized load or
store. Pickle's and ``copy``'s default restore writes the state into ``obj.__dict__``, which
makes the dict real for good: from then on every attribute access of the object is a dict lookup,
~2.5x slower (a sink's ``self.results += 1; self.total += value``: 48 ns per call on a fresh
object, 125 ns on an unpickled one). Worker processes get every function of a job unpickled, so a
function class that keeps state in attributes ran slower at parallelism 2 than in this process
at parallelism 1. :class:`CompactAttributes` restores the attributes one by one instead; the base
classes users subclass (functions, timestamp assigners, watermark generators, encoders and
serialization schemas, ``flinkcore.jit``'s functions) inherit it.

Pickling an object reads its ``__dict__`` too (the function objects the caller keeps in the driver
lose the compact storage when a job is sent to workers); there is no way around that on 3.11.
"""

from __future__ import annotations

from typing import Any

__all__ = ["CompactAttributes", "restore_attributes"]


def restore_attributes(obj: Any, state: Any) -> None:
    """Restore pickle's default ``state`` of ``obj`` (its ``__dict__``, or ``(dict, slots)``) as
    pickle does, but by setting each attribute, so the object keeps its compact storage. A name a
    data descriptor of the class would take (a property) goes into ``__dict__`` as pickle puts it."""
    slots = None
    if isinstance(state, tuple) and len(state) == 2:
        state, slots = state
    if state:
        if not isinstance(state, dict):
            obj.__dict__.update(state)  # what pickle does (and how it fails) with such a state
        else:
            cls = type(obj)
            for name, value in state.items():
                if type(name) is str and not hasattr(type(getattr(cls, name, None)), "__set__"):
                    object.__setattr__(obj, name, value)
                else:
                    obj.__dict__[name] = value
    if slots:
        for name, value in slots.items():
            setattr(obj, name, value)


class CompactAttributes:
    """Mixin: instances restored by pickle or ``copy`` keep compact attribute storage (see the
    module docstring). A subclass's own ``__setstate__`` takes precedence."""

    __slots__ = ()

    def __setstate__(self, state: Any) -> None:
        restore_attributes(self, state)
