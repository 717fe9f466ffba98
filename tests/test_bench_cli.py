"""`flinkcore bench` and the benchmark suite's data, references and baselines (small N only)."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from flinkcore.benchmarks import baselines, reference
from flinkcore.benchmarks.data import Events, events_for, generate
from flinkcore.benchmarks.harness import checksums_agree

REQUIRED = {"workload", "style", "n", "events_per_s", "results", "checksum", "peak_rss_mb"}


def bench(*args: str) -> subprocess.CompletedProcess:
    # A subprocess: the command pins itself to one core, which must not leak into pytest.
    return subprocess.run(
        [sys.executable, "-m", "flinkcore", "bench", *args], capture_output=True, text=True, timeout=300
    )


def test_generator_is_workloads_md_code_exactly():
    n, nkeys = 5000, 10_000
    rng = np.random.default_rng(42)
    key = rng.integers(0, nkeys, n, dtype=np.int64)
    value = rng.random(n)
    late = rng.random(n) < 0.1
    jitter = rng.integers(0, 51, n, dtype=np.int64)
    ts = np.arange(n, dtype=np.int64) // 1000 - np.where(late, jitter, 0)
    ev = generate(n)
    assert np.array_equal(ev.key, key) and np.array_equal(ev.value, value) and np.array_equal(ev.ts, ts)
    assert ev.key.dtype == np.int64 and ev.ts.dtype == np.int64 and ev.value.dtype == np.float64


def test_workload_data_variants():
    assert events_for("W3", 50_000).key.max() >= 10_000  # 100k keys
    sparse = events_for("W2-sparse", 2000)
    assert sparse.ts.max() == 199  # i // 10
    with pytest.raises(ValueError, match="unknown workload"):
        events_for("W9", 10)


@pytest.mark.parametrize("workload", ["W1", "W2", "W2-sparse", "W3", "W4"])
def test_streaming_python_loop_and_numpy_batch_agree(workload):
    ev = events_for(workload, 300_000 if workload == "W4" else 30_000)  # W4: sums must reach 10
    streamed = reference.PYTHON[workload](ev.tuples())
    batch = reference.NUMPY[workload](ev.key, ev.value, ev.ts)
    assert checksums_agree(streamed, batch), (streamed, batch)
    assert streamed[0] > 0


def test_w2_reference_against_brute_force_and_late_drop():
    ev = events_for("W2", 20_000)
    cells: dict = {}
    for k, v, t in ev.tuples():
        cells[(k, t // 1000)] = cells.get((k, t // 1000), 0.0) + v
    results, checksum = reference.w2_python(ev.tuples())
    assert results == len(cells)
    assert checksum == pytest.approx(sum(cells.values()), rel=1e-12)
    # A record 1200 ms behind the max timestamp is late (window max ts + 0 <= watermark): dropped.
    late = [(1, 1.0, 0), (1, 2.0, 1500), (1, 100.0, 300), (2, 4.0, 1700)]
    assert reference.w2_python(late) == (3, 7.0)


def test_w3_reference_merges_touching_sessions():
    # [0,500) and [500,1000) touch: Flink's TimeWindow.intersects merges them; 1001 starts anew.
    events = [(8, 0.0, 0), (7, 0.0, 0), (7, 0.0, 500), (7, 0.0, 1001), (8, 0.0, 100)]
    # (8, 100) arrives after the watermark passed 900: its window [100, 600) is late and dropped.
    assert reference.w3_python(events) == (3, 4.0)
    key, value, ts = (np.array(c) for c in zip(*events, strict=True))
    assert reference.w3_numpy(key[:4], value[:4], ts[:4]) == (3, 4.0)


def test_w4_emits_when_the_running_sum_passes_a_multiple_of_ten():
    events = [(1, 6.0, 0), (1, 5.0, 1), (2, 9.0, 2), (1, 8.0, 3), (1, 1.0, 4)]
    # key 1: 6 -> 11 (passes 10) -> 19 -> 20 (passes 20)
    assert reference.w4_python(events) == (2, 31.0)


@pytest.mark.skipif(shutil.which("cc") is None, reason="no C compiler")
@pytest.mark.parametrize("workload", ["W1", "W2", "W2-sparse", "W3", "W4"])
def test_c_baseline_agrees_with_the_reference(workload):
    source = baselines.find_c_source()
    if source is None:
        pytest.skip("bench/baselines/workloads.c not present (installed package)")
    ev = events_for(workload, 300_000 if workload == "W4" else 40_000)
    m = baselines.run_c(workload, ev, 1, source)
    assert checksums_agree((m.results, m.checksum), reference.NUMPY[workload](ev.key, ev.value, ev.ts))
    assert len(m.wall_s) == 1 and m.peak_rss_mb > 0


def test_bench_json_lines_have_the_required_fields_and_baselines_agree():
    out = bench("W2", "--n", "20000", "--repeats", "1", "--json")
    assert out.returncode == 0, out.stderr
    recs = [json.loads(line) for line in out.stdout.splitlines()]
    assert recs and all(r["workload"] == "W2" and r["n"] == 20000 for r in recs)
    ok = [r for r in recs if r["status"] == "ok"]
    assert {"python loop", "numpy"} <= {r["system"] for r in ok}
    for r in ok:
        assert REQUIRED <= r.keys()
        assert r["agrees"] and r["events_per_s"] > 0 and r["results"] == ok[0]["results"]
    assert "W2" in out.stderr  # the progress indication


def test_bench_table_and_errors():
    out = bench("W1", "--n", "5000", "--repeats", "1", "--style", "udf")
    assert out.returncode == 0, out.stderr
    assert "events/s" in out.stdout and "python loop" in out.stdout and "cores" in out.stdout
    bad = bench("W7")
    assert bad.returncode == 2 and "unknown workload" in bad.stderr
    assert bench("W1", "--n", "0").returncode == 2


def test_events_tuples_are_python_scalars():
    ev = Events(np.array([1], dtype=np.int64), np.array([0.5]), np.array([3], dtype=np.int64))
    assert ev.tuples() == [(1, 0.5, 3)] and type(ev.tuples()[0][0]) is int


def test_nexmark_generator_shape_and_determinism():
    from flinkcore.benchmarks import nexmark

    nx = nexmark.generate(5000)
    assert (len(nx.persons), len(nx.auctions), len(nx.bids)) == (100, 300, 4600)  # 1 : 3 : 46
    assert [p[0] for p in nx.persons] == list(range(1000, 1100))
    assert all(a[6] < 1000 + len(nx.persons) for a in nx.auctions)  # sellers exist
    ts = [b[5] for b in nx.bids]
    assert ts == sorted(ts)
    assert nexmark.generate(5000) == nx


def test_nexmark_references_on_hand_made_streams():
    from flinkcore.benchmarks import nexmark

    bids = [(123, 1, 10, "c", "u", 0), (5, 2, 30, "c", "u", 500), (5, 2, 20, "c", "u", 12_000)]
    persons = [(1000, "n", "e", "cc", "city", "st", 100), (1001, "n", "e", "cc", "city", "st", 100)]
    auctions = [(1, "i", 1, 2, 9_000, 0, 1000, 10), (2, "i", 1, 2, 10_500, 0, 1001, 10)]
    nx = nexmark.Nexmark(persons, auctions, bids)
    assert nexmark.reference("q2", nx) == (1, 10.0)
    assert nexmark.reference("q7", nx) == (2, 50.0)  # max 30 in [0, 10s), 20 in [10s, 20s)
    assert nexmark.reference("q8", nx) == (1, 1000.0)  # 1001's auction is in the next window
    # q5: windows of 10 s every 2 s. Starts -8000..0 (5 windows) hold one bid on 123 and one on 5:
    # a tie, both are hot; starts 4000..12000 (5 windows) hold auction 5's bid at 12 s alone.
    # The checksum adds auction + count of every hot item.
    assert nexmark.reference("q5", nx) == (15, 5 * (123 + 1) + 5 * (5 + 1) + 5 * (5 + 1))


BENCH_DIR = Path(__file__).resolve().parents[1] / "bench"


@pytest.mark.skipif(not (BENCH_DIR / "report.py").exists(), reason="needs the source tree's bench/")
def test_run_workloads_and_report_write_only_their_sections(tmp_path):
    run = subprocess.run(
        [
            sys.executable,
            str(BENCH_DIR / "run_workloads.py"),
            "--quick",
            "--workloads",
            "W2",
            "--results",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr
    lines = (tmp_path / "ours.jsonl").read_text().splitlines()
    assert "meta" in json.loads(lines[0]) and len(lines) > 2
    readme = tmp_path / "README.md"
    readme.write_text("# Benchmarks\n\n## Kernels\n\nkept as it is\n")
    for _ in range(2):  # a second run replaces the sections instead of appending them again
        rep = subprocess.run(
            [
                sys.executable,
                str(BENCH_DIR / "report.py"),
                "--no-plot",
                "--results",
                str(tmp_path),
                "--readme",
                str(readme),
            ],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert rep.returncode == 0, rep.stderr
    text = readme.read_text()
    assert "## Kernels\n\nkept as it is" in text
    assert text.count("## Workloads") == 1 and text.count("## Peers") == 1
    assert "| python loop | baseline | 100,000 |" in text and "python -m flinkcore bench W2" in text
