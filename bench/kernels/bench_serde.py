"""Record serialization: flinkcore serde vs pickle protocol 5 over the same batch of typical records
(a tuple of int < 1e6, float and short str), encode and decode timed separately.

Run: taskset -c 0 .venv/bin/python -m pytest bench/kernels/bench_serde.py --benchmark-only
     taskset -c 0 .venv/bin/python bench/kernels/bench_serde.py     # prints the ratio table

The table cycles through several batches drawn from the same distribution (not one batch over and
over), so the decoder's string cache sees what a stream gives it: the same keys again, in new batches.
Every case is timed interleaved with the others (best of the repeats), as CPU time of this process.
"""

import pickle
import random
import sys
import time

import pytest

from flinkcore._core import serde

SIZES = (1_000, 10_000, 100_000)


def records(n: int, seed: int = 42, keys: int = 1000) -> list:
    """``(int < 1e6, float, "user-<k < keys>")`` tuples: the typical keyed event."""
    rng = random.Random(seed)
    return [(rng.randrange(10**6), rng.random(), f"user-{rng.randrange(keys)}") for _ in range(n)]


def generic_records(n: int, seed: int = 42) -> list:
    """Records that are not one row layout (an optional field): the value-by-value path."""
    rng = random.Random(seed)
    return [
        (rng.randrange(10**6), rng.random(), f"user-{rng.randrange(1000)}" if i % 10 else None)
        for i in range(n)
    ]


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


def _interleaved(cases: dict, repeats: int, number: int) -> dict:
    """Best CPU time per call of each case (fn, args): every repeat runs every case once."""
    best = dict.fromkeys(cases, float("inf"))
    for _ in range(repeats):
        for name, (fn, args) in cases.items():
            t0 = time.process_time()
            for _ in range(number):
                for a in args:
                    fn(a)
            best[name] = min(best[name], (time.process_time() - t0) / (number * len(args)))
    return best


def row(label: str, batches: list, build=None, repeats: int = 15) -> None:
    n = len(batches[0])
    number = max(1, 200_000 // (n * len(batches)))
    cases = {}
    size = {}
    for name, (dumps, loads) in CODECS.items():
        datas = [dumps(b) for b in batches]
        assert all(loads(d) == b for d, b in zip(datas, batches, strict=True))
        size[name] = len(datas[0])
        cases[name + " enc"] = (dumps, batches)
        cases[name + " dec"] = (loads, datas)
    if build is not None:
        cases["floor"] = (lambda k: build(k, "user-1"), [n])
    t = {k: v * 1e6 for k, v in _interleaved(cases, repeats, number).items()}
    pe, pd, se, sd = t["pickle5 enc"], t["pickle5 dec"], t["serde enc"], t["serde dec"]
    floor = t.get("floor", float("nan"))
    print(
        f"{label:<22} {n:>7}  {pe:8.0f} / {pd:8.0f}  {se:7.0f} / {sd:7.0f}  {pe / se:6.2f}  {pd / sd:6.2f}  "
        f"{(pe + pd) / (se + sd):9.2f}  {floor:11.0f}  {size['pickle5']}/{size['serde']}"
    )


def main() -> None:
    build = _alloc_floor()
    print(
        "batches                records  pickle5 enc/dec (us)  serde enc/dec (us)  enc x   dec x  "
        "enc+dec x  floor (us)  bytes pickle/serde"
    )
    for n in SIZES:
        k = max(2, 8_000 // n)
        row(f"typical, {k} batches", [records(n, seed) for seed in range(k)], build)
    row("typical, 1 batch", [records(1000)], build)
    row("unique strs, 8 batches", [records(1000, seed, keys=10**9) for seed in range(8)])
    row("value layout, 8 batches", [generic_records(1000, seed) for seed in range(8)])


if __name__ == "__main__":
    sys.exit(main())
