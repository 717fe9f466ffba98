"""Before/after of the serde and timer kernels in ONE process: load the extension files of two builds
(e.g. the base commit built in a scratch copy, and this tree) side by side, with the baselines.

    git archive <base> | tar -x -C /tmp/base && (cd /tmp/base && ../path/.venv/bin/python setup.py -q \
        build_clib build_ext --inplace)
    taskset -c 0 .venv/bin/python bench/kernels/ab_builds.py serde /tmp/base/flinkcore/_core/serde.*.so \
        flinkcore/_core/serde.*.so
    taskset -c 0 .venv/bin/python bench/kernels/ab_builds.py timers /tmp/base/flinkcore/_core/timers.*.so \
        flinkcore/_core/timers.*.so

Each build's module is its own copy (its own string cache, its own heap code). Best CPU time of
interleaved repeats, like bench_serde.py / bench_timers.py.
"""

import importlib.machinery
import importlib.util
import pathlib
import pickle
import sys
import time

sys.path.insert(0, str(pathlib.Path(__file__).parent))

import bench_timers  # noqa: E402
from bench_serde import records  # noqa: E402


def load(name: str, path: str):
    loader = importlib.machinery.ExtensionFileLoader(f"flinkcore._core.{name}", path)
    spec = importlib.util.spec_from_file_location(f"flinkcore._core.{name}", path, loader=loader)
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


def best_of(cases: dict, repeats: int) -> dict:
    best = dict.fromkeys(cases, float("inf"))
    for _ in range(repeats):
        for name, fn in cases.items():
            t0 = time.process_time()
            fn()
            best[name] = min(best[name], time.process_time() - t0)
    return best


def serde_cases(paths: list) -> None:
    batches = [records(1000, seed) for seed in range(8)]
    calls = 25 * len(batches)

    def run(fn, args):
        def go():
            for _ in range(25):
                for a in args:
                    fn(a)

        return go

    cases = {}
    for path in paths:
        m = load("serde", path)
        datas = [m.dumps_batch(b) for b in batches]
        cases[f"{path} enc"] = run(m.dumps_batch, batches)
        cases[f"{path} dec"] = run(m.loads_batch, datas)
    pdatas = [pickle.dumps(b, protocol=5) for b in batches]
    cases["pickle enc"] = run(lambda b: pickle.dumps(b, protocol=5), batches)
    cases["pickle dec"] = run(pickle.loads, pdatas)
    best = {k: v / calls * 1e6 for k, v in best_of(cases, 15).items()}
    pickle_total = best["pickle enc"] + best["pickle dec"]
    print("1,000-record batches (8 of them, cycled); us per batch; enc+dec vs pickle 5")
    for path in [*paths, "pickle"]:
        enc, dec = best[f"{path} enc"], best[f"{path} dec"]
        print(f"{path:60s} enc {enc:6.1f}  dec {dec:6.1f}  enc+dec x {pickle_total / (enc + dec):5.2f}")


def timer_cases(paths: list) -> None:
    b = bench_timers
    cases = {}
    for path in paths:
        T = load("timers", path).TimerQueue

        def stream(T=T):
            q = T()
            reg, adv = q.register, q.advance
            for r, batch in enumerate(b.STREAM):
                for ts, k in batch:
                    reg(ts, k, None)
                adv(r * 1000 + 999)

        def many(T=T):
            q = T()
            for r, (ts, keys) in enumerate(b.STREAM_ARRAYS):
                q.register_many(ts, keys, None)
                q.advance(r * 1000 + 999)

        def pop_until(T=T):
            q = T()
            reg, pop = q.register, q.pop_until
            for r, batch in enumerate(b.STREAM):
                for ts, k in batch:
                    reg(ts, k, None)
                while pop(r * 1000 + 999) is not None:
                    pass

        cases[f"{path} register + advance"] = stream
        cases[f"{path} register_many + advance"] = many
        cases[f"{path} register + pop_until"] = pop_until
    cases["interpreter floor (loop + max())"] = b.floor_stream
    best = best_of(cases, 7)
    n = b.ROUNDS * b.PER_ROUND
    print("streaming shape (10k timers per round, 20 rounds): M register+pop per CPU second")
    for name, t in best.items():
        print(f"{name:90s} {n / t / 1e6:6.2f}")


if __name__ == "__main__":
    kind, *so_paths = sys.argv[1:]
    {"serde": serde_cases, "timers": timer_cases}[kind](so_paths)
