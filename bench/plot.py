"""Throughput vs N and latency vs rate from bench/results, as PNGs (runs in the plot venv)."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

HERE = Path(__file__).resolve().parent


def records(name: str) -> list[dict]:
    path = HERE / "results" / name
    if not path.exists():
        return []
    out = [json.loads(x) for x in path.read_text().splitlines() if x.strip()]
    return [r for r in out if "meta" not in r and r.get("status") == "ok"]


def throughput() -> None:
    recs = records("sweep.jsonl")
    if not recs:
        return
    workloads = sorted({r["workload"] for r in recs})
    fig, axes = plt.subplots(1, len(workloads), figsize=(6 * len(workloads), 4.5), squeeze=False)
    for ax, w in zip(axes[0], workloads, strict=True):
        series = defaultdict(list)
        for r in recs:
            if r["workload"] == w:
                series[f"{r['system']} / {r['style']}"].append((r["n"], r["events_per_s"]))
        for label, pts in sorted(series.items()):
            pts.sort()
            ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=label)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("N events")
        ax.set_ylabel("events/s (median, one core)")
        ax.set_title(w)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(HERE / "throughput_vs_n.png", dpi=110)


def latency() -> None:
    recs = [r for r in records("ours.jsonl") if r["workload"] == "L1" and "p50_us" in r]
    if not recs:
        return
    fig, ax = plt.subplots(figsize=(6, 4.5))
    series = defaultdict(list)
    for r in recs:
        series[f"{r['system']} / {r['style']}"].append((r["rate"], r["p50_us"], r["p99_us"]))
    for label, pts in sorted(series.items()):
        pts.sort()
        ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=f"{label} p50")
        ax.plot([p[0] for p in pts], [p[2] for p in pts], marker="x", linestyle="--", label=f"{label} p99")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("input rate (events/s)")
    ax.set_ylabel("latency source -> sink (us)")
    ax.set_title("L1: W1 pipeline at a fixed rate")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(HERE / "latency_vs_rate.png", dpi=110)


if __name__ == "__main__":
    throughput()
    latency()
