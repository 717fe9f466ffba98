"""L1: W1's pipeline fed at a fixed rate; latency from entering the source to leaving the sink.

flinkcore is fed by a rate-limited ``DataGeneratorSource`` (latency: the sink's time minus the
time the source generated the event) and, where it exists, by the embedded push API. The
push API and the pure-Python baseline are fed by a pacer that releases event i at
``t0 + i / rate`` (10k, 100k, 1M events/s; at high rates in small bursts, since Python cannot
sleep a microsecond); their latency is from handing the event in to its result coming out.
Reported per rate: p50, p99 and p99.9 in microseconds.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from .data import events_for
from .harness import checksums_agree, latency_percentiles, peak_rss_mb, reset_peak_rss
from .reference import w1_numpy

RATES = [10_000, 100_000, 1_000_000]


def _paced(n: int, rate: int, push: Callable[[int], None]) -> float:
    """Call ``push(i)`` for i in 0..n-1 no earlier than each one's due time; return t0 (ns)."""
    period_ns = 1e9 / rate
    t0 = time.perf_counter_ns()
    i = 0
    while i < n:
        due = int((time.perf_counter_ns() - t0) / period_ns) + 1
        if due <= i:
            wait_ns = t0 + i * period_ns - time.perf_counter_ns()
            if wait_ns > 200_000:
                time.sleep(wait_ns / 2e9)
            continue
        for j in range(i, min(due, n)):
            push(j)
        i = min(due, n)
    return t0


def python_loop_latency(keys: list[int], values: list[float], rate: int) -> tuple[np.ndarray, int, float]:
    """The W1 pure-Python loop, per event as it is due: the floor of in-process latency."""
    n = len(keys)
    out = np.zeros(n, dtype=np.int64)
    emitted = np.zeros(n, dtype=bool)
    stats = [0, 0.0]

    t_in = np.zeros(n, dtype=np.int64)

    def push(i: int) -> None:
        t_in[i] = time.perf_counter_ns()
        v = values[i] * 2.0
        if keys[i] % 2 == 0:
            stats[0] += 1
            stats[1] += v
            out[i] = time.perf_counter_ns()
            emitted[i] = True

    _paced(n, rate, push)
    return (out - t_in)[emitted], stats[0], stats[1]


def _w1_into(source_stream, out: np.ndarray, emitted: np.ndarray, stats: list) -> None:
    """W1's map and filter, then a sink that stamps when each event (by index) left it."""

    def sink(value: Any, context: Any = None) -> None:
        i = value[2]
        out[i] = time.perf_counter_ns()
        emitted[i] = True
        stats[0] += 1
        stats[1] += value[1]

    source_stream.map(lambda e: (e[0], e[1] * 2.0, e[2])).filter(lambda e: e[0] % 2 == 0).add_sink(sink)


def flinkcore_latency(keys: list[int], values: list[float], rate: int) -> tuple[np.ndarray, int, float]:
    """W1 fed by a rate-limited ``DataGeneratorSource``: latency from generation to the sink.

    The generator function stamps each event when the source creates it (that is when it
    enters the source); the sink stamps it when it leaves.
    """
    from flinkcore.common import WatermarkStrategy
    from flinkcore.datastream import StreamExecutionEnvironment
    from flinkcore.datastream.connectors.datagen import DataGeneratorSource

    n = len(keys)
    t_in = np.zeros(n, dtype=np.int64)
    out = np.zeros(n, dtype=np.int64)
    emitted = np.zeros(n, dtype=bool)
    stats = [0, 0.0]

    def generate(i: int) -> tuple[int, float, int]:
        t_in[i] = time.perf_counter_ns()
        return keys[i], values[i], i

    env = StreamExecutionEnvironment.get_execution_environment()
    env.set_parallelism(1)
    source = DataGeneratorSource(generate, count=n, records_per_second=rate)
    _w1_into(env.from_source(source, WatermarkStrategy.no_watermarks(), "paced"), out, emitted, stats)
    env.execute("L1")
    return (out - t_in)[emitted], stats[0], stats[1]


def flinkcore_push_latency(keys: list[int], values: list[float], rate: int) -> tuple[np.ndarray, int, float]:
    """W1 embedded in the caller (``from_push_source`` + ``execute_embedded``), per pushed event.

    The pipeline ends unconsumed, so ``push`` returns what left it: the event's latency is from
    the call of ``push`` to its output coming back.
    """
    from flinkcore.datastream import StreamExecutionEnvironment

    n = len(keys)
    out = np.zeros(n, dtype=np.int64)
    emitted = np.zeros(n, dtype=bool)
    stats = [0, 0.0]
    env = StreamExecutionEnvironment.get_execution_environment()
    env.set_parallelism(1)
    env.from_push_source("events").map(lambda e: (e[0], e[1] * 2.0, e[2])).filter(lambda e: e[0] % 2 == 0)
    job = env.execute_embedded("L1 push")

    t_in = np.zeros(n, dtype=np.int64)

    def push(i: int) -> None:
        t_in[i] = time.perf_counter_ns()
        for value in job.push((keys[i], values[i], i)):
            out[value[2]] = time.perf_counter_ns()
            emitted[value[2]] = True
            stats[0] += 1
            stats[1] += value[1]

    try:
        _paced(n, rate, push)
    finally:
        job.close()
    return (out - t_in)[emitted], stats[0], stats[1]


def run_latency(
    n: int,
    styles: list[str] | None = None,
    rates: list[int] | None = None,
    progress: Callable[[str], None] | None = None,
) -> Iterator[dict[str, Any]]:
    """One record per (system, rate): p50/p99/p99.9 latency, results and checksum."""
    ev = events_for("L1", n)
    keys, values = ev.key.tolist(), ev.value.tolist()
    systems: list[tuple[str, str, Any]] = []
    if not styles or "udf" in styles:
        systems.append(("flinkcore", "udf (rate-limited source)", flinkcore_latency))
        systems.append(("flinkcore", "udf (push API)", flinkcore_push_latency))
    systems.append(("python loop", "baseline", python_loop_latency))
    for rate in rates or RATES:
        m = min(n, rate * 2)  # two seconds of input per rate
        expected = w1_numpy(ev.key[:m], ev.value[:m], ev.ts[:m])
        for system, style, fn in systems:
            if progress:
                progress(f"L1 {system}/{style} {rate}/s N={m}")
            try:
                reset_peak_rss()
                w0, c0 = time.perf_counter(), time.process_time()
                lat, results, checksum = fn(keys[:m], values[:m], rate)
                wall, cpu = time.perf_counter() - w0, time.process_time() - c0
            except (ImportError, NotImplementedError) as exc:
                yield {
                    "workload": "L1",
                    "system": system,
                    "style": style,
                    "n": m,
                    "rate": rate,
                    "status": "skipped",
                    "reason": f"{type(exc).__name__}: {exc}",
                }
                continue
            except Exception as exc:  # one failing system must not hide the others' numbers
                yield {
                    "workload": "L1",
                    "system": system,
                    "style": style,
                    "n": m,
                    "rate": rate,
                    "status": "failed",
                    "reason": f"failed: {type(exc).__name__}: {exc}",
                }
                continue
            yield {
                "workload": "L1",
                "system": system,
                "style": style,
                "n": m,
                "rate": rate,
                "events_per_s": m / wall,
                "events_per_cpu_s": m / cpu if cpu else None,
                "wall_s": wall,
                "cpu_s": cpu,
                "repeats": 1,
                "results": results,
                "checksum": checksum,
                "peak_rss_mb": round(peak_rss_mb(), 1),
                "input": f"paced at {rate} events/s",
                "status": "ok",
                "agrees": checksums_agree(expected, (results, checksum)),
                **latency_percentiles(lat),
            }
