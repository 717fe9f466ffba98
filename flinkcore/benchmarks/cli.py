"""``flinkcore bench``: run the workloads on one core and print a table or JSON lines."""

from __future__ import annotations

import argparse
import json
import sys

from .harness import format_table, machine, pin_to_core
from .runner import DEFAULT_N, STYLES, WORKLOADS, count_cases, progress_printer, run_workload

#: Exit status when every case ran but some disagreed on results or checksum.
EXIT_MISMATCH = 3
#: Exit status when a case failed (its record says why); the other cases still ran.
EXIT_FAILED = 4


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``bench`` sub-command's options (flinkcore.cli builds the parser)."""
    parser.add_argument(
        "workload", nargs="?", default=None, help=f"one of {', '.join(WORKLOADS)} (default: all)"
    )
    parser.add_argument("--n", type=int, default=None, help="number of events (default: per workload)")
    parser.add_argument("--style", choices=STYLES, default=None, help="only this style of flinkcore's jobs")
    parser.add_argument("--json", action="store_true", help="one JSON object per line and run")
    parser.add_argument("--repeats", type=int, default=3, help="timed repeats after the warm-up (default 3)")
    parser.add_argument("--no-baselines", action="store_true", help="skip the Python/numpy/C baselines")
    parser.add_argument("--core", type=int, default=0, help="CPU core to pin to (default 0)")
    parser.add_argument(
        "--c-source", default=None, help="path of the C baseline (bench/baselines/workloads.c)"
    )


def main(args: argparse.Namespace) -> int:
    workloads = [args.workload] if args.workload else WORKLOADS
    unknown = [w for w in workloads if w not in WORKLOADS]
    if unknown:
        print(
            f"flinkcore bench: unknown workload {unknown[0]!r}; choose from {', '.join(WORKLOADS)}",
            file=sys.stderr,
        )
        return 2
    if args.n is not None and args.n <= 0:
        print("flinkcore bench: --n must be positive", file=sys.stderr)
        return 2
    if args.repeats < 1:
        print("flinkcore bench: --repeats must be at least 1", file=sys.stderr)
        return 2
    styles = [args.style] if args.style else None
    pinned = pin_to_core(args.core)
    baselines_on = not args.no_baselines
    progress = progress_printer(sum(count_cases(w, styles, baselines_on) for w in workloads))
    records = []
    for w in workloads:
        n = args.n or DEFAULT_N[w]
        for rec in run_workload(
            w,
            n,
            styles=styles,
            repeats=args.repeats,
            baselines_on=baselines_on,
            c_source=args.c_source,
            progress=progress,
        ):
            rec["pinned_core"] = args.core if pinned else None
            records.append(rec)
            if args.json:
                print(json.dumps(rec), flush=True)
    if sys.stderr.isatty():
        sys.stderr.write("\n")
    if not args.json:
        ok = [r for r in records if r.get("status") == "ok"]
        m = machine()
        print(
            f"# {m['date']}  {m['nproc']} cores  {m['cpu']}  Python {m['python']}  "
            f"pinned to core {args.core if pinned else 'none'}"
        )
        print(format_table(ok))
        for r in records:
            if r.get("status") != "ok":
                print(f"{r['status']}: {r['workload']} {r['system']}/{r['style']}: {r['reason']}")
        bad = [r for r in ok if r.get("agrees") is False]
        for r in bad:
            print(
                f"MISMATCH: {r['workload']} {r['system']}/{r['style']} results={r['results']} "
                f"checksum={r['checksum']}"
            )
    # 3, not 1: a crash exits with 1, a checksum mismatch is a finished run that disagrees
    if any(r.get("status") == "ok" and r.get("agrees") is False for r in records):
        return EXIT_MISMATCH
    return EXIT_FAILED if any(r.get("status") == "failed" for r in records) else 0
