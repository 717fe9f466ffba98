"""Assign a million keys to Flink key groups and parallel instances with the native partitioner.

This is what decides which task slot owns which key; run: ``python python/key_groups.py``.
"""

import time

import numpy as np

from flinkcore._core import partitioner

MAX_PARALLELISM = 128
PARALLELISM = 4

keys = np.random.default_rng(42).integers(0, 10_000, 1_000_000, dtype=np.int64)
start = time.perf_counter()
groups = partitioner.key_groups_int64(keys, MAX_PARALLELISM)
elapsed = time.perf_counter() - start
owners = groups * PARALLELISM // MAX_PARALLELISM
print(
    f"{len(keys):,} keys -> {MAX_PARALLELISM} key groups in {elapsed * 1e3:.2f} ms "
    f"({len(keys) / elapsed / 1e6:.0f}M keys/s)"
)
for index, count in enumerate(np.bincount(owners, minlength=PARALLELISM)):
    print(f"  task slot {index}: {count:,} records")
