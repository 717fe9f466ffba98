"""Key selectors the engine can run without a Python frame per record.

A PyFlink job's key selector is most often ``lambda v: v[c]``; recognised from its bytecode, it
runs as ``operator.itemgetter(c)`` (the same subscript, in C) wherever keys of a whole batch are
computed: the keyed exchange's hash writer and the window operators' compiled loops.
"""

from __future__ import annotations

import operator
from typing import Any

__all__ = ["fast_key_selector", "subscript_constant"]


def subscript_constant(fn: Any) -> tuple[bool, Any]:
    """``(True, c)`` when ``fn`` is exactly ``lambda v: v[c]`` (a constant subscript, nothing else)."""
    code = getattr(fn, "__code__", None)
    if code is None or code.co_argcount != 1 or fn.__closure__ or code.co_flags & 0x0C:
        return False, None
    import dis

    skip = ("RESUME", "NOP", "CACHE")
    ops = [(i.opname, i.argval) for i in dis.get_instructions(fn) if i.opname not in skip]
    if (
        len(ops) == 4
        and ops[0] == ("LOAD_FAST", code.co_varnames[0])
        and ops[1][0] == "LOAD_CONST"
        and ops[2][0] == "BINARY_SUBSCR"
        and ops[3][0] == "RETURN_VALUE"
    ):
        return True, ops[1][1]
    return False, None


def fast_key_selector(fn: Any) -> Any:
    """``operator.itemgetter(c)`` for a key selector ``lambda v: v[c]``: the same subscript,
    without a Python frame per record; any other selector as it is."""
    ok, const = subscript_constant(fn)
    return operator.itemgetter(const) if ok else fn
