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


def main() -> None:
    """Interleaved best-of timings in one process: keys/s of each path and the ratio to Python."""
    import time

    def best(fn, *args, repeat=9):
        t = float("inf")
        for _ in range(repeat):
            t0 = time.perf_counter()
            fn(*args)
            t = min(t, time.perf_counter() - t0)
        return t

    py_keys = KEYS[:50_000].tolist()
    py = best(lambda: [ref.murmur_hash(ref.hash_int64(k)) % 128 for k in py_keys], repeat=3) / len(py_keys)
    print(f"Python reference loop      {1 / py / 1e6:8.2f} M keys/s")
    tuples = [(f"user-{k}", int(k)) for k in KEYS[:100_000]]
    for label, keys, mp in (
        ("int64 array, mp=128", KEYS, 128),
        ("int64 array, mp=100", KEYS, 100),
        ("U str array (100k)", STR_KEYS, 128),
        ("list of (str, int) tuples", tuples, 128),
    ):
        t = best(partitioner.key_groups, keys, mp) / len(keys)
        print(f"{label:26s} {1 / t / 1e6:8.2f} M keys/s  ({py / t:,.0f}x the Python reference loop)")


if __name__ == "__main__":
    main()
