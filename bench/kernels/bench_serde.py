"""Record serialization: flinkcore serde vs pickle protocol 5 over the same batch of typical records
(a tuple of int, float and short str), encode and decode timed separately.

Run: taskset -c 0 .venv/bin/python -m pytest bench/kernels/bench_serde.py --benchmark-only
     taskset -c 0 .venv/bin/python bench/kernels/bench_serde.py     # prints the ratio table
"""

import pickle
import random
import sys
import time

import pytest

from flinkcore._core import serde

SIZES = (1_000, 10_000, 100_000)


def records(n: int) -> list:
    rng = random.Random(42)
    return [(rng.randrange(10**6), rng.random(), f"user-{rng.randrange(1000)}") for _ in range(n)]


CODECS = {
    "serde": (serde.dumps_batch, serde.loads_batch),
    "pickle5": (lambda r: pickle.dumps(r, protocol=5), pickle.loads),
}


@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("codec", CODECS)
def test_encode(benchmark, codec, n):
    dumps, _ = CODECS[codec]
    recs = records(n)
    benchmark.extra_info["records"] = n
    benchmark(dumps, recs)


@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("codec", CODECS)
def test_decode(benchmark, codec, n):
    dumps, loads = CODECS[codec]
    data = dumps(records(n))
    benchmark.extra_info["records"] = n
    benchmark(loads, data)


def _best(fn, arg, repeat: int, number: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        for _ in range(number):
            fn(arg)
        best = min(best, (time.perf_counter() - t0) / number)
    return best


def _alloc_floor():
    """build(n, s): the records' objects made with no parsing (compiled on the fly), or None."""
    try:
        import pyximport

        pyximport.install(language_level=3, inplace=False)
        sys.path.insert(0, str(__import__("pathlib").Path(__file__).parent))
        import alloc_floor

        return alloc_floor.build
    except Exception as e:  # a missing compiler only costs this one column
        print(f"(no allocation floor: {e})")
        return None


def main() -> None:
    """Interleaved best-of timings in one process, so the ratio holds on a noisy machine."""
    build = _alloc_floor()
    print(
        "records  pickle5 enc/dec (us)  serde enc/dec (us)  enc x  dec x  enc+dec x  "
        "alloc floor (us)  bytes pickle/serde"
    )
    for n in SIZES:
        recs = records(n)
        number = max(1, 300_000 // n)
        t = {}
        for name, (dumps, loads) in CODECS.items():
            data = dumps(recs)
            t[name] = (_best(dumps, recs, 9, number) * 1e6, _best(loads, data, 9, number) * 1e6, len(data))
        floor = _best(lambda k: build(k, "user-1"), n, 9, number) * 1e6 if build else float("nan")
        (pe, pd, pb), (se, sd, sb) = t["pickle5"], t["serde"]
        print(
            f"{n:>7}  {pe:9.0f} / {pd:9.0f}  {se:8.0f} / {sd:8.0f}  {pe / se:5.2f}  {pd / sd:5.2f}  "
            f"{(pe + pd) / (se + sd):9.2f}  {floor:16.0f}  {pb}/{sb}"
        )


if __name__ == "__main__":
    sys.exit(main())
