"""Keyed-state updates per second, heap vs LMDB backend, in micro-batches (issue 6's bench).

Each update is the W4 shape: read a ValueState, add, write it back, for keys drawn uniformly
from ``--keys`` keys, in batches of ``--batch`` records (one LMDB write transaction each).

    taskset -c 0 .venv/bin/python bench/state/state_updates.py --n 1000000 --keys 10000
"""

import argparse
import resource
import statistics
import tempfile
import time

import numpy as np

from flinkcore.state import HeapKeyedStateBackend, ValueStateDescriptor
from flinkcore.state.lmdb_backend import LmdbKeyedStateBackend


def run(backend, keys: list, batch: int) -> float:
    state = backend.get_or_create_state(ValueStateDescriptor("sum"))
    set_key = backend.set_current_key
    start = time.process_time()
    for lo in range(0, len(keys), batch):
        backend.start_batch()
        for k in keys[lo : lo + batch]:
            set_key(k)
            v = state.value()
            state.update(1 if v is None else v + 1)
        backend.finish_batch()
    return time.process_time() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--keys", type=int, default=10_000)
    parser.add_argument("--batch", type=int, default=1_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    keys = np.random.default_rng(42).integers(0, args.keys, args.n).tolist()
    results = {}
    for name in ("heap", "lmdb"):
        times = []
        for _ in range(args.repeat):
            with tempfile.TemporaryDirectory() as tmp:
                backend = HeapKeyedStateBackend() if name == "heap" else LmdbKeyedStateBackend(path=tmp)
                times.append(run(backend, keys, args.batch))
                backend.dispose()
        results[name] = args.n / statistics.median(times)
        print(
            f"{name:5s} {results[name] / 1e6:6.2f}M updates per CPU-second "
            f"(median of {args.repeat}, spread {min(times):.3f}-{max(times):.3f} s)"
        )
    print(
        f"lmdb/heap = {results['lmdb'] / results['heap']:.2f}; "
        f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB"
    )


if __name__ == "__main__":
    main()
