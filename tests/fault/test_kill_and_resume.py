"""SIGKILL a running ``flinkcore run`` job at random moments, several times in a row, resume it
each time with ``flinkcore run -s <its checkpoints>``: the committed output equals a
failure-free run — nothing missing, nothing twice."""

import os
import random
import signal
import subprocess
import sys
import time

import pytest

JOB = os.path.join(os.path.dirname(__file__), "exactly_once_job.py")
sys.path.insert(0, os.path.dirname(__file__))
import exactly_once_job as job  # noqa: E402


@pytest.mark.parametrize("backend", ["heap", "lmdb"])
def test_sigkill_and_resume_is_exactly_once(tmp_path, backend, committed):
    out, chk = str(tmp_path / "out"), str(tmp_path / "chk")
    n, rate = 10_000, 4_000  # about 2.5 s of input per uninterrupted run
    rng = random.Random(7 if backend == "heap" else 11)
    env = {**os.environ, "FLINKCORE_HOME": str(tmp_path / "home")}
    resume_from = None
    kills = 0
    finished = False
    for _ in range(4):
        cmd = [sys.executable, "-m", "flinkcore", "run"]
        if resume_from is not None:
            cmd += ["-s", resume_from]
        proc = subprocess.Popen(cmd + [JOB, out, chk, str(n), str(rate), backend], env=env)
        time.sleep(rng.uniform(0.4, 0.9))
        if proc.poll() is not None:  # the resumed run got to the end before the next kill
            assert proc.returncode == 0
            finished = True
            break
        proc.send_signal(signal.SIGKILL)
        if proc.wait() == 0:  # it finished just before the signal (a finished job drops its checkpoints)
            finished = True
            break
        kills += 1
        latest = job.latest_checkpoint(chk)
        if latest is not None:
            resume_from = str(latest.path)
    if not finished:  # resume the last kill once more, at full speed, to the end
        final = [sys.executable, "-m", "flinkcore", "run"] + (["-s", resume_from] if resume_from else [])
        done = subprocess.run(final + [JOB, out, chk, str(n), "1e9", backend], env=env, timeout=120)
        assert done.returncode == 0
    assert kills >= 2, "the job should have been killed mid-run at least twice"
    assert committed(out) == job.expected_lines(n)
