"""Operator fusion: a chain of stateless map/filter operators (optionally ending in a Python
sink) runs as ONE generated Python loop over the micro-batch.

Chained operators already pass whole batches (``list(map(f, batch))`` per hop). Fusing them
removes the intermediate lists and, on CPython 3.11+, makes each user call a cheap
Python-to-Python call instead of a call from C into the interpreter: W1 (map, filter, sink) goes
about 13% faster. Only exact built-in operator types without keys or side outputs are fused;
every operator still receives watermarks and end of input through its own ``Input`` methods —
only records take the fused path. A failure names the operator of the failing stage and the
record that stage received, as the unfused operators do.

:func:`fuse_timestamps_into_window` fuses the other common chain, a timestamp assigner feeding
an event-time window (``assign_timestamps_and_watermarks(...).key_by(...).window(...)``, with
or without one ``map`` in between): the
window operator's compiled per-record loop (``flinkcore._core.window_udf``) calls the user's
``extract_timestamp`` itself, so a batch is walked once and no list of timestamps is built. Only
watermark generators that take a batch's maximum (bounded out-of-orderness, monotonous, none,
with or without idleness) are fused: they emit nothing per record, so extracting the timestamps
before or during the window's loop is the same. Where what follows is not such a window (in a task
slot: the writer of a keyed exchange), the assigner and the optional map still run as one
compiled loop (``window_udf.head_batch``).
"""

from __future__ import annotations

from typing import Any

from flinkcore.runtime.operators.base import UserCodeError
from flinkcore.runtime.operators.udf import FilterOperator, MapOperator, SinkOperator

__all__ = ["fuse_chain", "fusable_chain", "fuse_timestamps_into_window"]

_FUSABLE = (MapOperator, FilterOperator)


def _single_target(op: Any) -> Any:
    out = op.output
    main = getattr(out, "main", None)
    if main is None or len(main) != 1 or getattr(out, "side", None):
        return None
    return main[0]


def fusable_chain(head: Any) -> list:
    """The operators a fused loop starting at ``head`` covers (``[]`` when there is nothing to fuse)."""
    if type(head) not in _FUSABLE or head.key_selector is not None:
        return []
    chain = [head]
    op = head
    while True:
        nxt = _single_target(op)
        if nxt is None or getattr(nxt, "key_selector", None) is not None:
            break
        if type(nxt) in _FUSABLE:
            chain.append(nxt)
            op = nxt
            continue
        if type(nxt) is SinkOperator:
            chain.append(nxt)
        break
    return chain if len(chain) > 1 else []


def _source(chain: list, with_ts: bool) -> str:
    """Python source of the loop body for one chain."""
    ind = " " * 16
    lines = []
    for i, op in enumerate(chain):
        if type(op) is MapOperator:
            lines.append(f"{ind}stage = {i}\n{ind}v = f{i}(v)")
        elif type(op) is FilterOperator:
            lines.append(f"{ind}stage = {i}\n{ind}if not f{i}(v):\n{ind}    continue")
        else:  # the sink
            if with_ts:
                lines.append(f"{ind}stage = {i}\n{ind}ctx._ts = t\n{ind}f{i}(v, ctx)")
            else:
                lines.append(f"{ind}stage = {i}\n{ind}f{i}(v, ctx)")
    if type(chain[-1]) is not SinkOperator:
        lines.append(f"{ind}append(v)" + (f"\n{ind}tappend(t)" if with_ts else ""))
    return "\n".join(lines)


_TEMPLATE = """
def fused(values, timestamps):
    out = []
    append = out.append
    tout = []
    tappend = tout.append
    stage = 0
    v = None
    try:
        if timestamps is None:
            ctx._ts = None
            for v in values:
{no_ts}
        else:
            for v, t in zip(values, timestamps):
{with_ts}
    except Exception as e:
        raise UserCodeError(names[stage], v, e) from e
    if output is not None and out:
        output.collect(out, None if timestamps is None else tout)
"""


def fuse_chain(chain: list) -> Any:
    """The fused ``process_batch`` of ``chain`` (as returned by :func:`fusable_chain`)."""
    ns: dict[str, Any] = {"UserCodeError": UserCodeError, "names": [op.name for op in chain]}
    for i, op in enumerate(chain):
        ns[f"f{i}"] = op.invoke if type(op) is SinkOperator else op.fn
    last = chain[-1]
    if type(last) is SinkOperator:
        ns["ctx"] = last.sink_context
        ns["output"] = None
    else:
        ns["ctx"] = None
        ns["output"] = last.output
    code = _TEMPLATE.format(no_ts=_source(chain, False), with_ts=_source(chain, True))
    if ns["ctx"] is None:
        code = code.replace("            ctx._ts = None\n", "")
    exec(compile(code, f"<fused {' -> '.join(ns['names'])}>", "exec"), ns)  # noqa: S102 - generated above
    return ns["fused"]


def _batch_generator(generator: Any) -> bool:
    """True for the built-in generators whose ``on_batch`` only takes the batch's maximum."""
    from flinkcore.common.watermark_strategy import (
        BoundedOutOfOrdernessWatermarks,
        NoWatermarksGenerator,
        WatermarksWithIdleness,
    )

    if type(generator) is WatermarksWithIdleness:
        generator = generator.generator
    return isinstance(generator, (BoundedOutOfOrdernessWatermarks, NoWatermarksGenerator)) and type(
        generator
    ).on_batch in (BoundedOutOfOrdernessWatermarks.on_batch, NoWatermarksGenerator.on_batch)


def fuse_timestamps_into_window(op: Any) -> Any:
    """The fused ``process_batch`` of a TimestampsAndWatermarks operator ``op`` whose only output
    is a window operator with a compiled loop (``fusable``), directly or through one Map
    operator, or None when it cannot be fused.

    Call it after ``open`` (the assigner and generator exist then). Columnar batches take the
    operator's own path. The map's ``process_batch`` is bypassed for records only: watermarks
    and end of input still pass through it.
    """
    from flinkcore.runtime.operators.udf import MapOperator
    from flinkcore.runtime.operators.watermarks import TimestampsAndWatermarksOperator

    if type(op) is not TimestampsAndWatermarksOperator or op.assigner is None or op._on_batch is None:
        return None
    window = _single_target(op)
    pre = None
    names = (op.name, None)
    if type(window) is MapOperator and window.key_selector is None:
        pre, names = window.fn, (op.name, window.name)
        window = _single_target(window)
    if not _batch_generator(op.generator):
        return None
    if not getattr(window, "fusable", False):
        return _fuse_head(op)
    original = op.process_batch
    extract = op.assigner.extract_timestamp
    on_batch = op._on_batch
    fused_batch = window.fused_batch

    def fused(values: Any, timestamps: Any) -> None:
        if type(values) is not list:
            original(values, timestamps)
            return
        if op.idle:
            op._set_idle(False)
        seen = fused_batch(values, timestamps, extract, names, pre)
        if seen:
            on_batch(seen)

    return fused


def _fuse_head(op: Any) -> Any:
    """The fused ``process_batch`` of a TimestampsAndWatermarks operator ``op`` (with a batch
    generator) whose output is not a compiled window, directly or through one Map operator
    (at parallelism > 1: the keyed exchange's writer): the assigner and the map run in one
    compiled loop (``window_udf.head_batch``) instead of a list comprehension and
    ``list(map(...))``, and the watermark generator gets the batch's largest timestamp instead
    of every timestamp. The records go on as the map's (else the assigner's) output; the map's
    ``process_batch`` is bypassed for records only, as in the window fusion."""
    from flinkcore._core import window_udf
    from flinkcore.common.watermark import MIN_WATERMARK
    from flinkcore.runtime.columnar import RowsInput

    target = _single_target(op)
    if type(target) is RowsInput:  # a task slot's wrapper: lists of records pass through it as they are
        target = target.target
    pre, emitter, names = None, op, (op.name, None)
    if type(target) is MapOperator and target.key_selector is None:
        pre, emitter, names = target.fn, target, (op.name, target.name)
    original = op.process_batch
    extract = op.assigner.extract_timestamp
    on_batch = op._on_batch
    head = window_udf.head_batch
    cur = window_udf.Cursor()

    def fused(values: Any, timestamps: Any) -> None:
        if type(values) is not list:
            original(values, timestamps)
            return
        cur.reset()
        try:
            out, ts, others = head(cur, values, timestamps, extract, MIN_WATERMARK, pre)
        except Exception as e:
            value = values[cur.position]
            if cur.stage == 2:
                raise UserCodeError(names[1], value, e) from e
            raise UserCodeError(names[0], value, e, where="record (timestamp assigner)") from e
        if op.idle:
            op._set_idle(False)
        if values:
            on_batch([cur.max_ts, *others])
        emitter.output.collect(out, ts)

    return fused
