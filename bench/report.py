"""Write bench/README.md's "Workloads" and "Peers" sections from the measured results.

Reads bench/results/ours.jsonl (``make bench``), peers.jsonl (``make bench-peers``) and
sweep.jsonl, and replaces only the text between this script's markers in bench/README.md
(other sections of that file belong to others and are left as they are). No number in those
sections is typed by hand: every row comes from a record, with the command that produced it.
With matplotlib available (the plot venv bench/peers/.venvs/plot, created on demand, never a
runtime dependency) it also draws throughput vs N and latency vs rate as PNGs.

Usage: python bench/report.py [--no-plot]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
README = HERE / "README.md"
BEGIN = "<!-- bench:{}:begin (written by bench/report.py; do not edit by hand) -->"
END = "<!-- bench:{}:end -->"
ORDER = ["W1", "W2", "W2-sparse", "W3", "W4", "L1"]
AGREES = {True: "yes", False: "NO"}
SUMMARY = ["W1", "W2", "W2-sparse", "W3", "W4"]
NEXMARK = ["nexmark-q0", "nexmark-q1", "nexmark-q2", "nexmark-q5", "nexmark-q7", "nexmark-q8"]

WORKLOADS_INTRO = """\
The workloads of shared/WORKLOADS.md on one core (pinned): flinkcore's two styles next to the
baselines (pure-Python streaming loop, numpy batch, C -O3 streaming hash tables), measured in the
same process and run, and the peers measured by `make bench-peers`. `events/s` is N / median wall
time of 3 repeats after a warm-up (peers: one run); `events/CPU-s` uses the CPU time of the whole
process tree. `results` and `checksum` (W2: number of window results and the sum of their sums)
must agree across systems: `agrees` compares each row with the first measured row (peers: with
the numpy result) on the same events. Peak RSS includes the input held in memory. The machine
is shared with other work while these run, so wall-time rates are noisy; compare rows of one run
and prefer events/CPU-s."""

PEERS_INTRO = """\
Each peer runs in its own virtualenv under bench/peers/.venvs (created on first use by
bench/peers/envs.py), as a fresh process pinned with `taskset -c 0`, once per workload, on the
same generated events, and is checked against the numpy result. N per run is sized so the whole
sweep finishes in minutes. How each peer is fed and set up:

- Bytewax: `TestingSource(list of tuples, batch_size=1000)`, `run_main` (one worker), string
  keys; EventClock with a 100 ms wait and a frozen system clock (otherwise its watermark runs
  ahead with wall time on replayed data and drops most events as late).
- PyFlink DataStream (Python UDFs, `python.execution-mode` process / thread): `from_collection`;
  the last UDF counts and writes its totals in `close()`. JVM start and job start-up are measured
  separately (notes column) and subtracted from the throughput.
- Flink SQL (no Python UDF, all in the JVM): CSV file through the filesystem connector, window
  TVFs (TUMBLE, SESSION) and a global aggregate with mini-batch for (results, checksum).
- Pathway: CSV file in `static` mode (its batch path, no watermark), `windowby` + `reduce`.
- Not run: PyFlink process mode on W3 (its Python session windows would need many minutes for a
  useful N), Pathway on W4 (no KeyedProcessFunction-style per-record state to compare)."""


def load(name: str) -> tuple[list[dict], list[dict]]:
    path = RESULTS / name  # RESULTS is set from --results in main()
    metas, recs = [], []
    if path.exists():
        for line in path.read_text().splitlines():
            if line.strip():
                r = json.loads(line)
                (metas.append(r["meta"]) if "meta" in r else recs.append(r))
    return metas, recs


def rate(x) -> str:
    if x is None:
        return "-"
    for unit, div in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if x >= div:
            return f"{x / div:.3g}{unit}"
    return f"{x:.3g}"


def system_rank(r: dict) -> tuple:
    s = r.get("system", "")
    order = 0 if s.startswith("flinkcore") else 2 if s in ("python loop", "numpy", "c -O3") else 1
    return (order, s, r.get("style", ""))


def table(recs: list[dict]) -> list[str]:
    """Rows of records; with more than one workload (Nexmark) the system cell names the query."""
    mixed = len({r["workload"] for r in recs}) > 1
    lines = [
        "| system | style | N | events/s (median) | spread (min-max) | events/CPU-s | peak RSS MiB "
        "| results | checksum | agrees | notes |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in sorted(recs, key=lambda r: (r["workload"], system_rank(r))):
        if mixed:
            r = {**r, "system": f"{r['workload'].split('-')[-1]}: {r['system']}"}
        if r.get("status") != "ok":
            reason = (r.get("reason") or "").strip().splitlines()
            why = reason[-1][:140] if reason else ""
            lines.append(
                f"| {r['system']} | {r.get('style', '')} | {r.get('n', '')} | {r['status']} | | | | | | | "
                f"{why.replace('|', '/')} |"
            )
            continue
        notes = []
        if "startup_s" in r:
            notes.append(
                f"JVM start {r['jvm_start_s']} s, first job {r['first_job_s']} s, job start-up "
                f"{r['startup_s']} s (excluded; end-to-end {rate(r['events_per_s_e2e'])}/s)"
            )
        if r.get("note"):
            notes.append(r["note"])
        if "p50_us" in r:
            notes.append(
                f"rate {rate(r.get('rate'))}/s: p50 {r['p50_us']:.3g} us, p99 {r['p99_us']:.3g} us, "
                f"p99.9 {r['p999_us']:.3g} us"
            )
        lines.append(
            f"| {r['system']} | {r.get('style', '')} | {r['n']:,} | {rate(r.get('events_per_s'))} | "
            f"{rate(r.get('events_per_s_min'))}-{rate(r.get('events_per_s_max'))} | "
            f"{rate(r.get('events_per_cpu_s'))} | {r.get('peak_rss_mb', '-')} | {r.get('results', '-')} | "
            f"{r.get('checksum', 0):.6f} | {AGREES.get(r.get('agrees'), '-')} | {'; '.join(notes)} |"
        )
    return lines


def summary(recs: list[dict]) -> list[str]:
    """Systems x workloads, events per CPU-second (the steadier figure on a shared machine)."""
    cells: dict[tuple, dict[str, str]] = defaultdict(dict)
    for r in recs:
        if r.get("status") == "ok" and r["workload"] in SUMMARY:
            mark = "" if r.get("agrees") else " (checksum differs!)"
            cells[(r["system"], r.get("style", ""))][r["workload"]] = (
                f"{rate(r.get('events_per_cpu_s'))}{mark}"
            )
    lines = ["| system | style | " + " | ".join(SUMMARY) + " |", "|---|---|" + "---|" * len(SUMMARY)]
    for (system, style), row in sorted(
        cells.items(), key=lambda kv: system_rank({"system": kv[0][0], "style": kv[0][1]})
    ):
        lines.append(f"| {system} | {style} | " + " | ".join(row.get(w, "-") for w in SUMMARY) + " |")
    return lines


def by_workload(recs: list[dict]) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = defaultdict(list)
    for r in recs:
        out[r["workload"]].append(r)
    return out


def machine_line(metas: list[dict]) -> str:
    if not metas:
        return "(not run yet)"
    m = metas[0]
    return f"{m['nproc']} cores, {m['cpu']}, Python {m['python']}; measured {m['date']}"


def workloads_section() -> str:
    metas, ours = load("ours.jsonl")
    pmetas, peers = load("peers.jsonl")
    out = [
        "## Workloads",
        "",
        WORKLOADS_INTRO,
        "",
        f"- Machine: {machine_line(metas or pmetas)}",
        "- Ours: `make bench` = `python bench/run_workloads.py && python bench/report.py`",
        "- Peers: `make bench-peers` = `python bench/peers/run.py && python bench/report.py`",
        "- Commands of each row: bench/results/*.jsonl (`command` field).",
        "",
    ]
    out += [
        "### Summary: events per CPU-second, one core",
        "",
        "Every cell is a measured row of the tables below (N differs per system: see there).",
        "",
        *summary(ours + peers),
        "",
    ]
    groups_ours, groups_peers = by_workload(ours), by_workload(peers)
    nexmark = [r for w in NEXMARK for r in groups_ours.get(w, []) + groups_peers.get(w, [])]
    if nexmark:
        cmds = sorted({r["command"] for r in nexmark if "command" in r})
        out += [
            "### Nexmark",
            "",
            "q0 pass-through, q1 currency conversion, q2 selection, q5 hot items (sliding 10 s / 2 s), "
            "q7 highest bid (tumbling 10 s), q8 new users who opened an auction (window join). N is the "
            "events a query reads: bids, or persons + auctions for q8. flinkcore runs them in the udf style "
            "(Python functions); Flink SQL on the same generated events from CSV files.",
            "",
        ]
        out += [f"`{c}`" for c in cmds]
        out += ["", *table(nexmark), ""]
    for w in ORDER:
        recs = groups_ours.get(w, []) + groups_peers.get(w, [])
        if not recs:
            continue
        cmds = sorted({r["command"] for r in groups_ours.get(w, []) if "command" in r})
        out += [f"### {w}", ""]
        out += [f"`{c}`" for c in cmds]
        out += ["", *table(recs), ""]
    if (HERE / "throughput_vs_n.png").exists():
        out += ["![throughput vs N](throughput_vs_n.png)", ""]
    if (HERE / "latency_vs_rate.png").exists():
        out += ["![latency vs rate](latency_vs_rate.png)", ""]
    return "\n".join(out)


def peers_section() -> str:
    metas, peers = load("peers.jsonl")
    metas = metas or load("ours.jsonl")[0]  # the same machine, same session
    out = [
        "## Peers",
        "",
        PEERS_INTRO,
        "",
        f"Machine: {machine_line(metas)}. Results by workload are in the tables above; failures and skips:",
        "",
    ]
    bad = [r for r in peers if r.get("status") != "ok" or not r.get("agrees")]
    out += [
        f"- {r['system']} {r.get('style', '')} {r['workload']}: {r.get('status')} "
        f"{(r.get('reason') or '').strip().splitlines()[-1:]}"
        for r in bad
    ] or ["- none"]
    out += rerun_note(peers)
    cmds = [r.get("command") for r in peers if r.get("command")]
    out += ["", "Commands run:", "", "```", *cmds, "```", ""]
    return "\n".join(out)


def rerun_note(peers: list[dict]) -> list[str]:
    """A second peer run (``peers_rerun.jsonl``), if kept: how its rates compare with the table's."""
    metas, rerun = load("peers_rerun.jsonl")
    if not rerun:
        return []
    first = {(r["workload"], r["system"], r["style"]): r for r in peers if r.get("status") == "ok"}
    wall, cpu, agree, both = [], [], 0, 0
    for r in rerun:
        f = first.get((r["workload"], r["system"], r.get("style")))
        if f is None or r.get("status") != "ok":
            continue
        both += 1
        agree += bool(r.get("agrees"))
        wall.append(r["events_per_s"] / f["events_per_s"])
        cpu.append(r["events_per_cpu_s"] / f["events_per_cpu_s"])
    if not both:
        return []
    wall.sort()
    cpu.sort()
    when = metas[0]["date"] if metas else "later"
    return [
        "",
        f"A second full peer run ({when}, `make bench-peers`, while other work loaded the machine) is kept "
        "in "
        f"bench/results/peers_rerun.jsonl: over the {both} cases both runs have, its events/s were "
        f"{wall[len(wall) // 2]:.2f}x and its events/CPU-s {cpu[len(cpu) // 2]:.2f}x the table's (medians), "
        f"and {agree} of {both} checksums agreed again.",
    ]


def replace_section(text: str, name: str, body: str) -> str:
    begin, end = BEGIN.format(name), END.format(name)
    block = f"{begin}\n{body}\n{end}"
    if begin in text and end in text:
        head, rest = text.split(begin, 1)
        return head + block + rest.split(end, 1)[1]
    return text.rstrip("\n") + "\n\n" + block + "\n"


def plot() -> None:
    """Draw the PNGs in the plot venv (matplotlib is not a flinkcore dependency)."""
    sys.path.insert(0, str(HERE / "peers"))
    from envs import ensure_venv

    py = ensure_venv("plot")
    subprocess.run([str(py), str(HERE / "plot.py")], check=True)


def main() -> int:
    global RESULTS, README
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--no-plot", action="store_true")
    p.add_argument("--results", default=str(RESULTS), help="directory of the .jsonl files")
    p.add_argument("--readme", default=str(README), help="the Markdown file whose sections to write")
    args = p.parse_args()
    RESULTS, README = Path(args.results), Path(args.readme)
    if not args.no_plot:
        try:
            plot()
        except Exception as exc:  # a missing plot must not lose the tables
            print(f"[report] no plot: {exc}", file=sys.stderr)
    text = README.read_text() if README.exists() else "# Benchmarks\n"
    text = replace_section(text, "workloads", workloads_section())
    text = replace_section(text, "peers", peers_section())
    README.write_text(text)
    print(f"[report] wrote {README}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
