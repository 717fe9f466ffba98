"""The keyed split of Arrow batches (the hash writer's columnar path) and its native kernels.

64k-row batches of (key int64, value float64, ts int64), 16 distinct batches per round (25 MB:
the rows come from memory, not from the cache, as a source's batch does), split over 2 or 4
channels by ``key_by("key")``: the timestamps are the ``ts`` column's memory (as the timestamp
assigner reads them) or an array of their own.

Run: taskset -c 0 .venv/bin/python -m pytest bench/kernels/bench_column_split.py --benchmark-only
     taskset -c 0 .venv/bin/python bench/kernels/bench_column_split.py   (ns/row, wall and CPU)
"""

from __future__ import annotations

import operator
import time

import numpy as np
import pyarrow as pa
import pytest

from flinkcore._core import partitioner
from flinkcore.runtime.exchange import make_writer
from flinkcore.runtime.graph import Partitioner
from flinkcore.runtime.operators.base import Input

ROWS = 1 << 16
BATCHES = 16


class _Drop(Input):
    def process_batch(self, values, timestamps):
        pass

    def process_watermark(self, watermark):
        pass

    def end_input(self):
        pass


def _batches(ts_column: bool) -> list[tuple[pa.RecordBatch, np.ndarray]]:
    rng = np.random.default_rng(7)
    out = []
    for b in range(BATCHES):
        ts = np.arange(b * ROWS, (b + 1) * ROWS, dtype=np.int64)
        batch = pa.RecordBatch.from_arrays(
            [pa.array(rng.integers(0, 100_000, ROWS)), pa.array(rng.random(ROWS)), pa.array(ts)],
            names=["key", "value", "ts"],
        )
        out.append((batch, batch.column("ts").to_numpy() if ts_column else ts.copy()))
    return out


def _writer(n: int):
    channels = [_Drop() for _ in range(n)]
    return make_writer(
        Partitioner("hash", key_selector=operator.itemgetter("key")), channels, 0, 128, "split"
    )


def _split_all(writer, batches) -> None:
    for batch, ts in batches:
        writer.process_batch(batch, ts)


@pytest.mark.parametrize("ts_column", [True, False], ids=["ts-is-column", "own-ts"])
@pytest.mark.parametrize("n", [2, 4])
def test_hash_writer_split(benchmark, n, ts_column):
    batches = _batches(ts_column)
    writer = _writer(n)
    _split_all(writer, batches)  # the key table is built
    benchmark.extra_info["rows"] = ROWS * BATCHES
    benchmark(_split_all, writer, batches)


def test_split_columns_kernel(benchmark):
    rng = np.random.default_rng(3)
    table = rng.integers(0, 2, 100_000).astype(np.uint16)
    data = []
    for _ in range(BATCHES):
        keys = rng.integers(0, 100_000, ROWS)
        channels, counts = partitioner.table_channels(keys, table, 2)
        data.append((channels, counts, [keys, rng.random(ROWS), rng.integers(0, 2**40, ROWS)]))

    def run():
        for channels, counts, columns in data:
            out = [np.frombuffer(pa.allocate_buffer(c.nbytes), dtype=c.dtype) for c in columns]
            partitioner.split_columns(channels, counts, columns, out)

    benchmark.extra_info["rows"] = ROWS * BATCHES
    benchmark(run)


def main() -> None:
    for n in (2, 4):
        for ts_column in (True, False):
            batches = _batches(ts_column)
            writer = _writer(n)
            _split_all(writer, batches)
            walls, cpus = [], []
            for _ in range(7):
                t0, c0 = time.perf_counter(), time.process_time()
                for _ in range(4):
                    _split_all(writer, batches)
                walls.append(time.perf_counter() - t0)
                cpus.append(time.process_time() - c0)
            rows = 4 * ROWS * BATCHES
            label = "ts is a column" if ts_column else "own timestamps"
            print(
                f"{n} channels, {label:14s}: {min(walls) / rows * 1e9:5.2f} ns/row wall (best of 7), "
                f"{sorted(cpus)[3] / rows * 1e9:5.2f} ns/row CPU (median)",
                flush=True,
            )


if __name__ == "__main__":
    main()
