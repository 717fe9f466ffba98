"""The keyed exchange of record batches at parallelism 2, as W3 udf runs it, in one process.

Per 1024-record batch: fresh ``(key, 1)`` tuples (100k keys, as W3's map makes them) and int
timestamps (``i // 1000``, as W3's), split by ``key_by(lambda e: e[0])`` (``itemgetter(0)``) over
two channels: a local one that drops its records, and a remote one that buffers them to 512
records as ``RemoteChannel`` does, encodes each frame (``wire.encode_batch_parts``), joins its
parts (the socket's copy) and decodes it (``wire.decode_batch``) before dropping it. Stages,
each including the ones before it (so differences are what a stage adds per record):

* ``make``: the records alone (what parallelism 1 pays too);
* ``split``: plus the hash writer's split and the remote channel's buffering;
* ``encode``: plus the encoding of the remote frames;
* ``full``: plus their decoding (and the decoded records' life).

Two more start from the source's ``(key, value, ts)`` records, as W3's slot gets them, and run
the timestamp assigner (``extract_timestamp`` returning ``value[2]``, a bounded-out-of-orderness
generator's ``on_batch``) and the map ``lambda e: (e[0], 1)`` before ``full``'s exchange:

* ``unfused``: as the unfused operators do (a list comprehension of the assigner's calls, the
  generator given every timestamp, ``list(map(...))``);
* ``fused``: in one compiled loop (``window_udf.head_batch``, what runtime/fusion.py's head
  fusion runs), the generator given the batch's largest timestamp.

``fused`` - ``unfused`` is what the head fusion saves per record; parallelism 1 calls the same
two functions per record from the window's compiled loop.

Run: taskset -c 0 .venv/bin/python bench/kernels/bench_record_exchange.py   (ns/record, CPU)
     taskset -c 0 .venv/bin/python -m pytest bench/kernels/bench_record_exchange.py --benchmark-only
To compare two trees: PYTHONPATH=<other tree> (run from outside both, e.g. cd /tmp).
"""

from __future__ import annotations

import operator
import sys
import time
from itertools import chain

import numpy as np
import pytest

from flinkcore._core.window_udf import Cursor, head_batch
from flinkcore.common.watermark import MIN_WATERMARK
from flinkcore.common.watermark_strategy import BoundedOutOfOrdernessWatermarks
from flinkcore.runtime.cluster import wire
from flinkcore.runtime.exchange import make_writer
from flinkcore.runtime.graph import Partitioner
from flinkcore.runtime.operators.base import Input

RECORDS = 1 << 19
BATCH = 1024
FRAME = 512  # the remote channel's frame (task.DEFAULT_FRAME_RECORDS)
STAGES = ("make", "split", "encode", "full", "unfused", "fused")


class _Drop(Input):
    def process_batch(self, values, timestamps):
        pass

    def process_watermark(self, watermark):
        pass

    def end_input(self):
        pass


class _Remote(_Drop):
    """RemoteChannel's buffering, then encode / decode as far as ``stage`` says."""

    def __init__(self, stage: str) -> None:
        self.stage = stage
        self.chunks: list = []
        self.count = 0

    def process_batch(self, values, timestamps):
        self.chunks.append((values, timestamps))
        self.count += len(values)
        if self.count < FRAME:
            return
        chunks, self.chunks, self.count = self.chunks, [], 0
        if len(chunks) == 1:
            values, timestamps = chunks[0]
        else:
            values = list(chain.from_iterable(vs for vs, _ in chunks))
            timestamps = []
            for _, ts in chunks:
                timestamps.extend(ts)
        if self.stage == "split":
            return
        parts = wire.encode_batch_parts(values, timestamps)
        if self.stage == "encode":
            return
        del values, timestamps, chunks
        wire.decode_batch(memoryview(b"".join(parts)))


def _data() -> list[tuple[list, list, list]]:
    """Per batch: the keys, the timestamps, and the source's (key, value, ts) records."""
    rng = np.random.default_rng(42)
    keys = rng.integers(0, 100_000, RECORDS).tolist()
    values = rng.random(RECORDS).tolist()
    ts = (np.arange(RECORDS) // 1000).tolist()
    return [
        (
            keys[i : i + BATCH],
            ts[i : i + BATCH],
            list(zip(keys[i : i + BATCH], values[i : i + BATCH], ts[i : i + BATCH], strict=True)),
        )
        for i in range(0, RECORDS, BATCH)
    ]


class _EventTime:
    def extract_timestamp(self, value, record_timestamp):
        return value[2]


def _run(stage: str, data: list) -> None:
    writer = make_writer(
        Partitioner("hash", key_selector=operator.itemgetter(0)),
        [_Drop(), _Remote("full" if stage in ("unfused", "fused") else stage)],
        0,
        128,
        "x",
    )
    if stage == "make":
        for keys, _, _ in data:
            [(k, 1) for k in keys]
        return
    if stage in ("unfused", "fused"):
        extract = _EventTime().extract_timestamp
        generator = BoundedOutOfOrdernessWatermarks(100)
        fn = lambda e: (e[0], 1)  # noqa: E731 - W3's map, as a user writes it
        cur = Cursor()
        for _, _, records in data:
            if stage == "unfused":  # TimestampsAndWatermarksOperator, then MapOperator
                old = [MIN_WATERMARK] * len(records)
                ts = [extract(v, t) for v, t in zip(records, old, strict=False)]
                generator.on_batch(ts)
                writer.process_batch(list(map(fn, records)), ts)
            else:
                cur.reset()
                out, ts, others = head_batch(cur, records, None, extract, MIN_WATERMARK, fn)
                generator.on_batch([cur.max_ts, *others])
                writer.process_batch(out, ts)
        return
    for keys, ts, _ in data:
        writer.process_batch([(k, 1) for k in keys], ts)


@pytest.mark.parametrize("stage", STAGES)
def test_record_exchange(benchmark, stage):
    data = _data()
    benchmark.extra_info["records"] = RECORDS
    benchmark(_run, stage, data)


def main() -> None:
    stages = sys.argv[1:] or list(STAGES)
    data = _data()
    cpu: dict[str, list[float]] = {s: [] for s in stages}
    for _ in range(7):  # stages take turns, so a change of the machine's speed hits them alike
        for s in stages:
            c0 = time.process_time()
            _run(s, data)
            cpu[s].append(time.process_time() - c0)
    best = {s: min(cpu[s]) / RECORDS * 1e9 for s in stages}
    prev = None
    for s in stages:
        extra = "" if prev is None else f"  (+{best[s] - best[prev]:5.1f} over {prev})"
        print(f"{s:7s} {best[s]:6.1f} ns/record CPU (best of 7){extra}", flush=True)
        prev = s


if __name__ == "__main__":
    main()
