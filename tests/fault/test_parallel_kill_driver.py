"""SIGKILL the driver of a parallel job (parallelism 2, worker processes) mid-run, resume from
its last checkpoint: the committed output equals a failure-free run, and no worker or fork
server of the killed driver is left behind."""

import os
import signal
import subprocess
import sys
import textwrap
import time

HERE = os.path.dirname(__file__)
sys.path.insert(0, HERE)
import exactly_once_job as job  # noqa: E402

SCRIPT = textwrap.dedent(
    """
    import os, sys
    sys.path.insert(0, {here!r})
    import exactly_once_job as job
    from flinkcore.datastream import StreamExecutionEnvironment
    from flinkcore.runtime.cluster.forkserver import fork_server

    out, chk, n, rate = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
    gate = sys.argv[5] if len(sys.argv) > 5 else None
    print("FORKSERVER", fork_server().process.pid, flush=True)
    env = StreamExecutionEnvironment.get_execution_environment()
    job.build(env, out, chk, n, rate, "heap", parallelism=2, gate=gate).execute("parallel exactly-once")
    """
)


def _gone(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] == "Z"
    except FileNotFoundError:
        return True


def test_killing_the_driver_of_a_parallel_job_resumes_exactly_once(tmp_path, committed):
    out, chk = str(tmp_path / "out"), str(tmp_path / "chk")
    n = 5_000
    env = {**os.environ, "FLINKCORE_RUNTIME": "processes"}
    env.pop("FLINKCORE_SAVEPOINT_PATH", None)
    script = SCRIPT.format(here=HERE)
    proc = subprocess.Popen(
        [sys.executable, "-c", script, out, chk, str(n), "4000", str(tmp_path / "gate")],
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:  # a failed assertion must not leave the driver (and its workers) running
        server = int(proc.stdout.readline().split()[1])
        deadline = time.monotonic() + 30
        while job.latest_checkpoint(chk) is None:
            assert time.monotonic() < deadline and proc.poll() is None, "no checkpoint before the kill"
            time.sleep(0.02)
        time.sleep(0.2)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    deadline = time.monotonic() + 5
    while not _gone(server) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _gone(server), "the killed driver's fork server is still running"
    latest = job.latest_checkpoint(chk)
    env["FLINKCORE_SAVEPOINT_PATH"] = str(latest.path)
    done = subprocess.run(
        [sys.executable, "-c", script, out, chk, str(n), "1e9"], env=env, timeout=120, capture_output=True
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert committed(out) == job.expected_lines(n)
