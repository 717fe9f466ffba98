"""(+) ``flinkcore.jit``: numeric user functions compiled over whole columns (numba, optional).

A function marked ``@flinkcore.jit`` names the fields it reads by its parameters::

    @flinkcore.jit
    def even(key):
        return key % 2 == 0

    env.from_arrow(table).filter(even)

On a typed (columnar) stream ``filter`` runs it as one numba ufunc over the batch's columns: no
Python call per record. numba is the optional extra ``flinkcore[jit]`` and is imported only when
a columnar batch first meets such a function; without numba (or on an untyped stream) the same
function runs per record with the record's fields as arguments, with the same results. Records
without field names (tuples) pass their fields positionally.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

__all__ = ["JitFunction", "jit", "numba_available"]


def numba_available() -> bool:
    """True when numba can be imported (the ``flinkcore[jit]`` extra is installed)."""
    try:
        import numba  # noqa: F401
    except ImportError:
        return False
    return True


class JitFunction:
    """A numeric function of named fields, callable per record and compilable over columns."""

    def __init__(self, fn: Callable[..., Any]) -> None:
        if not callable(fn):
            raise TypeError(f"flinkcore.jit takes a function, got {fn!r}")
        params = inspect.signature(fn).parameters.values()
        if any(p.kind not in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) for p in params):
            raise TypeError(
                f"a flinkcore.jit function takes one plain parameter per field it reads; {fn.__name__} has "
                f"{inspect.signature(fn)}"
            )
        self.fn = fn
        self.params: tuple[str, ...] = tuple(p.name for p in params)
        if not self.params:
            raise TypeError(f"a flinkcore.jit function reads at least one field; {fn.__name__} takes none")
        self.__name__ = getattr(fn, "__name__", "jit_function")
        self.__doc__ = fn.__doc__
        self._ufunc: Any = None

    def __call__(self, record: Any) -> Any:
        """The function on one record: its fields named by the parameters (positional for tuples)."""
        if getattr(record, "_fields", None):
            return self.fn(*[record[name] for name in self.params])
        return self.fn(*record[: len(self.params)])

    def columns_kernel(self) -> Callable[..., Any] | None:
        """A ufunc over whole columns (compiled by numba on first use per dtype), or None
        without numba."""
        if self._ufunc is None:
            if not numba_available():
                return None
            import numba

            self._ufunc = numba.vectorize(cache=False)(self.fn)
        return self._ufunc

    def __repr__(self) -> str:
        return f"flinkcore.jit({self.__name__}{self.params})"


def jit(fn: Callable[..., Any]) -> JitFunction:
    """Mark a numeric function of record fields for compilation over column batches."""
    return JitFunction(fn)
