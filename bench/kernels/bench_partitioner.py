"""Key-group assignment: native vectorised kernel vs the pure-Python loop over the same keys.

Run: taskset -c 0 .venv/bin/python -m pytest bench/kernels/bench_partitioner.py --benchmark-only
"""

import numpy as np
import pytest

from flinkcore._core import partitioner
from flinkcore._core._reference import partitioner as ref

N = 1_000_000
KEYS = np.random.default_rng(42).integers(0, 10_000, N, dtype=np.int64)
STR_KEYS = np.array([f"user-{k}" for k in KEYS[:100_000]])


@pytest.mark.parametrize("max_parallelism", [128, 100])
def test_native_key_groups_int64(benchmark, max_parallelism):
    benchmark.extra_info["keys"] = N
    out = benchmark(partitioner.key_groups, KEYS, max_parallelism)
    assert len(out) == N


def test_python_loop_key_groups_int64(benchmark):
    keys = KEYS[:20_000].tolist()
    benchmark.extra_info["keys"] = len(keys)
    benchmark(lambda: [ref.murmur_hash(ref.hash_int64(k)) % 128 for k in keys])


def test_native_key_groups_unicode_array(benchmark):
    benchmark.extra_info["keys"] = len(STR_KEYS)
    benchmark(partitioner.key_groups, STR_KEYS, 128)


def test_native_key_group_scalar_python_keys(benchmark):
    keys = [(f"user-{k}", int(k)) for k in KEYS[:100_000]]
    benchmark.extra_info["keys"] = len(keys)
    benchmark(partitioner.key_groups, keys, 128)
