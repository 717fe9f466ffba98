"""A job started with ``flinkcore run`` is listed, savepointed and cancelled from the CLI, and a
savepoint taken that way restores with ``flinkcore run -s``."""

import os
import re
import subprocess
import sys
import time

from flinkcore.state.checkpoint_storage import load_checkpoint

JOB = os.path.join(os.path.dirname(__file__), "exactly_once_job.py")
sys.path.insert(0, os.path.dirname(__file__))
import exactly_once_job as job  # noqa: E402


def _cli(env, *args, timeout=30):
    return subprocess.run(
        [sys.executable, "-m", "flinkcore", *args], capture_output=True, text=True, env=env, timeout=timeout
    )


def _wait_listed(env, timeout=20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        listed = _cli(env, "list").stdout
        match = re.search(r"^([0-9a-f]{32}) : exactly-once \(RUNNING\)$", listed, re.M)
        if match:
            return match.group(1)
        time.sleep(0.1)
    raise AssertionError(f"job never listed: {listed!r}")


def test_list_savepoint_cancel_with_savepoint_and_resume(tmp_path, committed):
    out, chk = str(tmp_path / "out"), str(tmp_path / "chk")
    env = {**os.environ, "FLINKCORE_HOME": str(tmp_path / "home")}
    n = 20_000  # 10 s of input at 2000/s: the job outlives the CLI calls
    proc = subprocess.Popen(
        [sys.executable, "-m", "flinkcore", "run", JOB, out, chk, str(n), "2000", "heap"], env=env
    )
    try:
        job_id = _wait_listed(env)
        time.sleep(0.3)
        sp = _cli(env, "savepoint", job_id, str(tmp_path / "sp"))
        assert sp.returncode == 0, sp.stderr
        path = re.search(r"Path: (\S+)", sp.stdout).group(1)
        assert load_checkpoint(path).kind == "savepoint"

        stop = _cli(env, "cancel", job_id, "--with-savepoint", str(tmp_path / "final"))
        assert stop.returncode == 0, stop.stderr
        final = re.search(r"Savepoint stored in (\S+)\.$", stop.stdout.strip()).group(1)
        assert proc.wait(timeout=20) == 0
    finally:
        proc.kill()
    assert "No running jobs." in _cli(env, "list").stdout

    resumed = _cli(env, "run", "-s", final, JOB, out, chk, str(n), "1e9", "heap", timeout=60)
    assert resumed.returncode == 0, resumed.stderr
    assert committed(out) == job.expected_lines(n)
