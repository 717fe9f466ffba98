"""The keyed split of Arrow batches (the hash writer's columnar path) and its native kernel.

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


def _kernel_data() -> tuple[np.ndarray, list]:
    """A 2-channel key table and 16 batches of (keys, [key, value, ts]) columns."""
    rng = np.random.default_rng(3)
    table = rng.integers(0, 2, 100_000).astype(np.uint16)
    data = []
    for _ in range(BATCHES):
        keys = rng.integers(0, 100_000, ROWS)
        data.append((keys, [keys, rng.random(ROWS), rng.integers(0, 2**40, ROWS)]))
    return table, data


def _scatter_all(table, data, bits=False) -> None:
    """The native one-pass scatter alone: each batch's 3 columns into 2 channels' buffers of
    Arrow's pool (as the writer allocates them); ``bits``: the table as one bit per key."""
    offsets = [0, ROWS * 8, 2 * ROWS * 8]
    if bits:
        table = np.packbits(table.astype(np.uint8), bitorder="little")
    for keys, columns in data:
        out = [np.frombuffer(pa.allocate_buffer(3 * ROWS * 8), dtype=np.uint8) for _ in range(2)]
        partitioner.scatter_columns(keys, table, 2, columns, out, offsets, bits)


@pytest.mark.parametrize("bits", [False, True], ids=["uint16-table", "bit-table"])
def test_scatter_columns_kernel(benchmark, bits):
    table, data = _kernel_data()
    benchmark.extra_info["rows"] = ROWS * BATCHES
    benchmark(_scatter_all, table, data, bits)


def _ns_per_row(fn, *args) -> tuple[float, float]:
    """Best-of-7 wall and median CPU time per row of 4 calls of ``fn`` (after one to warm up)."""
    fn(*args)
    walls, cpus = [], []
    for _ in range(7):
        t0, c0 = time.perf_counter(), time.process_time()
        for _ in range(4):
            fn(*args)
        walls.append(time.perf_counter() - t0)
        cpus.append(time.process_time() - c0)
    rows = 4 * ROWS * BATCHES
    return min(walls) / rows * 1e9, sorted(cpus)[3] / rows * 1e9


def main() -> None:
    for n in (2, 4):
        for ts_column in (True, False):
            wall, cpu = _ns_per_row(_split_all, _writer(n), _batches(ts_column))
            label = "ts is a column" if ts_column else "own timestamps"
            print(
                f"{n} channels, {label:14s}: {wall:5.2f} ns/row wall (best of 7), "
                f"{cpu:5.2f} ns/row CPU (median)",
                flush=True,
            )
    for bits in (False, True):
        wall, cpu = _ns_per_row(_scatter_all, *_kernel_data(), bits)
        label = "bit table" if bits else "uint16 table"
        print(
            f"scatter_columns alone, 2 ch, {label:12s}: {wall:5.2f} ns/row wall (best of 7), "
            f"{cpu:5.2f} ns/row CPU (median)"
        )


if __name__ == "__main__":
    main()
