"""The ``flinkcore`` command line: run jobs, manage running jobs, benchmark."""

from __future__ import annotations

import argparse
import os
import runpy
import sys

from flinkcore._version import __version__

#: Environment variables through which ``flinkcore run`` configures the job it starts; the
#: StreamExecutionEnvironment reads them, as Flink's CLI passes -p and -s to the job.
ENV_PARALLELISM = "FLINKCORE_PARALLELISM"
ENV_SAVEPOINT_PATH = "FLINKCORE_SAVEPOINT_PATH"
#: set by ``flinkcore run``: the job registers itself so ``flinkcore list/cancel/savepoint`` reach it
ENV_REGISTER_JOB = "FLINKCORE_REGISTER_JOB"


def _cmd_run(args: argparse.Namespace) -> int:
    if not os.path.isfile(args.job):
        print(f"flinkcore run: no such job file: {args.job}", file=sys.stderr)
        return 2
    if args.parallelism is not None:
        os.environ[ENV_PARALLELISM] = str(args.parallelism)
    if args.fromSavepoint is not None:
        os.environ[ENV_SAVEPOINT_PATH] = os.path.abspath(args.fromSavepoint)
    os.environ[ENV_REGISTER_JOB] = "1"
    if args.detached:
        print("flinkcore run: --detached is not implemented yet", file=sys.stderr)
        return 2
    sys.argv = [args.job, *args.job_args]
    sys.path.insert(0, os.path.dirname(os.path.abspath(args.job)))
    runpy.run_path(args.job, run_name="__main__")
    return 0


def _cmd_list(args: argparse.Namespace) -> int:
    from flinkcore.runtime.registry import JobControlError, running_jobs

    jobs = running_jobs()
    if not jobs:
        print("No running jobs.")
    for job in jobs:
        try:
            status = job.call("status", timeout=5.0)["status"]
        except JobControlError:
            status = "UNREACHABLE"
        print(f"{job.job_id} : {job.name} ({status})")
    return 0


def _cmd_cancel(args: argparse.Namespace) -> int:
    from flinkcore.runtime.registry import JobControlError, find_job

    try:
        job = find_job(args.job_id)
        if args.with_savepoint:
            path = job.call("stop_with_savepoint", path=os.path.abspath(args.with_savepoint))
            print(f"Cancelled job {job.job_id}. Savepoint stored in {path}.")
        else:
            job.call("cancel")
            print(f"Cancelled job {job.job_id}.")
    except JobControlError as exc:
        print(f"flinkcore cancel: {exc}", file=sys.stderr)
        return 1
    return 0


def _cmd_savepoint(args: argparse.Namespace) -> int:
    from flinkcore.runtime.registry import JobControlError, find_job

    try:
        job = find_job(args.job_id)
        path = job.call("trigger_savepoint", path=os.path.abspath(args.directory))
    except JobControlError as exc:
        print(f"flinkcore savepoint: {exc}", file=sys.stderr)
        return 1
    print(f"Savepoint completed. Path: {path}")
    return 0


def _not_yet(name: str):
    def run(args: argparse.Namespace) -> int:
        print(f"flinkcore {name}: not implemented yet", file=sys.stderr)
        return 2

    return run


def _bench_arguments(parser: argparse.ArgumentParser) -> None:
    from flinkcore.benchmarks.cli import add_arguments

    add_arguments(parser)


def _cmd_bench(args: argparse.Namespace) -> int:
    from flinkcore.benchmarks.cli import main as bench_main

    return bench_main(args)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="flinkcore", description=__doc__)
    parser.add_argument("--version", action="version", version=f"flinkcore {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    run = sub.add_parser("run", help="run a job script")
    run.add_argument("job", help="path of the Python job script")
    run.add_argument("job_args", nargs=argparse.REMAINDER, help="arguments passed to the job")
    run.add_argument("-p", "--parallelism", type=int, default=None, help="default parallelism")
    run.add_argument(
        "-s", "--fromSavepoint", default=None, help="savepoint or checkpoint dir to restore from"
    )
    run.add_argument("-d", "--detached", action="store_true", help="run in the background")
    run.set_defaults(func=_cmd_run)

    sub.add_parser("list", help="list running jobs").set_defaults(func=_cmd_list)
    cancel = sub.add_parser("cancel", help="cancel a running job")
    cancel.add_argument("job_id")
    cancel.add_argument("--with-savepoint", default=None)
    cancel.set_defaults(func=_cmd_cancel)
    savepoint = sub.add_parser("savepoint", help="trigger a savepoint of a running job")
    savepoint.add_argument("job_id")
    savepoint.add_argument("directory")
    savepoint.set_defaults(func=_cmd_savepoint)
    bench = sub.add_parser("bench", help="run the benchmark workloads (shared/WORKLOADS.md) on one core")
    _bench_arguments(bench)
    bench.set_defaults(func=_cmd_bench)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    return args.func(args)
