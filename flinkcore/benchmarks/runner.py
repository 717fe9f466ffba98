"""Run benchmark cases of WORKLOADS.md side by side and cross-check their outputs.

For each workload the events are generated once (before any clock starts); then flinkcore's
styles and the baselines (pure-Python loop, numpy batch, C -O3) run on them in the same
process, one after the other, pinned to one core. Each case yields one record (see
``harness.Measurement.record``); a case that cannot run here (the engine lacks a feature, no C
compiler) yields a record with ``status: "skipped"`` and the reason instead of numbers.
"""

from __future__ import annotations

import sys
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from . import baselines
from .data import Events, events_for
from .harness import Measurement, checksums_agree, measure

#: Every workload of WORKLOADS.md, in the order they run.
WORKLOADS = ["W1", "W2", "W2-sparse", "W3", "W4", "L1", "nexmark"]
STYLES = ["udf", "columnar"]
#: Default N per workload: 1M events each (W3 at 300k gave each of its 100k keys three events,
#: so the per-session cost of the end-of-input flush was most of the run); `make bench` covers
#: all of them in a few minutes on one core.
DEFAULT_N = {
    "W1": 1_000_000,
    "W2": 1_000_000,
    "W2-sparse": 1_000_000,
    "W3": 1_000_000,
    "W4": 1_000_000,
    "L1": 100_000,
    "nexmark": 1_000_000,
}
#: Warm-up runs on the first events only: enough to import, compile and fill caches.
WARMUP_N = 20_000


@dataclass(frozen=True)
class Case:
    """One system/style of one workload: how to prepare its input and run it."""

    workload: str
    system: str
    style: str
    input: str
    prepare: Callable[[Events], Any]
    run: Callable[[Any], tuple[int, float]]


def _slice(ev: Events, n: int) -> Events:
    return Events(ev.key[:n], ev.value[:n], ev.ts[:n])


def cases(workload: str, styles: list[str] | None, baselines_on: bool) -> list[Case]:
    """The in-process cases of a workload: flinkcore's styles, then the Python/numpy baselines."""
    from .jobs import JOBS

    out = []
    for (w, style), (prepare, run, desc) in JOBS.items():
        if w == workload and (not styles or any(style.split("+")[0] == s for s in styles)):
            out.append(Case(w, "flinkcore", style, desc, prepare, run))
    if baselines_on:
        from .reference import PYTHON

        if workload in PYTHON:
            prepare, run, desc = baselines.python_case(workload)
            out.append(Case(workload, "python loop", "baseline", desc, prepare, run))
            prepare, run, desc = baselines.numpy_case(workload)
            out.append(Case(workload, "numpy", "baseline", desc, prepare, run))
    return out


def count_cases(workload: str, styles: list[str] | None, baselines_on: bool) -> int:
    """How many cases ``run_workload`` will run: the length of the progress bar."""
    if workload == "L1":
        from .latency import RATES

        return len(RATES) * (1 + 2 * (not styles or "udf" in styles))
    if workload == "nexmark":
        from .nexmark import QUERIES

        return len(QUERIES) if not styles or "udf" in styles else 0
    return len(cases(workload, styles, baselines_on)) + (baselines_on and workload in baselines.C_WORKLOADS)


def _skipped(case_workload: str, system: str, style: str, n: int, reason: str) -> dict[str, Any]:
    return {
        "workload": case_workload,
        "system": system,
        "style": style,
        "n": n,
        "status": "skipped",
        "reason": reason,
    }


def run_workload(
    workload: str,
    n: int,
    styles: list[str] | None = None,
    repeats: int = 3,
    baselines_on: bool = True,
    c_source: str | None = None,
    progress: Callable[[str], None] | None = None,
) -> Iterator[dict[str, Any]]:
    """Yield one record per case of ``workload`` at ``n`` events, cross-checked.

    Every record of a run gets ``agrees``: whether its (results, checksum) equals the first
    measured case's, to float rounding (the sums are added in different orders).
    """
    if workload == "L1":
        from .latency import run_latency

        yield from run_latency(n, styles=styles, progress=progress)
        return
    if workload == "nexmark":
        if not styles or "udf" in styles:  # the queries are written in the udf style only
            yield from run_nexmark(n, repeats=repeats, progress=progress)
        return
    events = events_for(workload, n)
    warm = _slice(events, min(n, WARMUP_N))
    reference: tuple[int, float] | None = None
    todo: list[Any] = cases(workload, styles, baselines_on)
    c_path = baselines.find_c_source(c_source) if baselines_on else None
    if baselines_on and workload in baselines.C_WORKLOADS:
        todo.append("c")
    for case in todo:
        label = "c -O3" if case == "c" else f"{case.system}/{case.style}"
        if progress:
            progress(f"{workload} {label} N={n}")
        try:
            if case == "c":
                if c_path is None:
                    yield _skipped(workload, "c -O3", "baseline", n, "C source not found (bench/baselines)")
                    continue
                m = baselines.run_c(workload, events, repeats, c_path)
            else:
                m = Measurement(workload, case.system, case.style, n, case.input)
                measure(case.run, case.prepare(events), m, repeats=repeats, warmup=case.prepare(warm))
        except (ImportError, NotImplementedError) as exc:
            # The engine does not (yet) offer what this job needs: report it, keep going.
            reason = f"{type(exc).__name__}: {exc}"
            yield _skipped(workload, label.split("/")[0], label.split("/")[-1], n, reason)
            continue
        except Exception as exc:  # a failing case must not hide the others' numbers
            yield {
                **_skipped(
                    workload,
                    label.split("/")[0],
                    label.split("/")[-1],
                    n,
                    f"failed: {type(exc).__name__}: {exc}",
                ),
                "status": "failed",
                "traceback": traceback.format_exc(limit=5),
            }
            continue
        rec = m.record()
        outcome = (m.results, m.checksum)
        if reference is None:
            reference = outcome
        rec["agrees"] = checksums_agree(reference, outcome)
        rec["status"] = "ok"
        yield rec


def run_nexmark(
    n: int, repeats: int = 3, progress: Callable[[str], None] | None = None
) -> Iterator[dict[str, Any]]:
    """Nexmark q0-q8 on N generated events; each query checked against its Python reference."""
    from . import nexmark

    nx = nexmark.generate(n)
    warm = nexmark.generate(min(n, WARMUP_N))
    for query in nexmark.QUERIES:
        if progress:
            progress(f"nexmark {query} N={n}")
        expected = nexmark.reference(query, nx)
        m = Measurement(
            f"nexmark-{query}",
            "flinkcore",
            "udf",
            nexmark.events_per_query(query, nx),
            "from_collection(list of tuples)",
        )
        try:
            measure(lambda a: nexmark.run_query(*a), (query, nx), m, repeats=repeats, warmup=(query, warm))
        except (ImportError, NotImplementedError) as exc:
            yield _skipped(m.workload, "flinkcore", "udf", m.n, f"{type(exc).__name__}: {exc}")
            continue
        except Exception as exc:
            yield {
                **_skipped(m.workload, "flinkcore", "udf", m.n, f"failed: {type(exc).__name__}: {exc}"),
                "status": "failed",
                "traceback": traceback.format_exc(limit=5),
            }
            continue
        rec = m.record()
        rec.update(
            status="ok",
            agrees=checksums_agree(expected, (m.results, m.checksum)),
            expected_results=expected[0],
            expected_checksum=expected[1],
        )
        yield rec


def progress_printer(total: int, stream=sys.stderr) -> Callable[[str], None]:
    """A one-line progress bar on stderr: ``[####......] 4/10 W2 numpy/baseline N=1000000``."""
    state = {"i": 0}
    tty = stream.isatty()

    def show(label: str) -> None:
        state["i"] += 1
        i = min(state["i"], total) if total else state["i"]
        width = 20
        filled = int(width * (i - 1) / total) if total else 0
        line = f"[{'#' * filled}{'.' * (width - filled)}] {i}/{total} {label}"
        if tty:
            stream.write("\r\x1b[K" + line)
        else:
            stream.write(line + "\n")
        stream.flush()

    return show
