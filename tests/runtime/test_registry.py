"""Running jobs register themselves; the CLI finds, queries and commands them; dead ones vanish."""

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from flinkcore.runtime.registry import JobControlError, find_job, running_jobs

JOB_ID = "0123456789abcdef0123456789abcdef"

# A real process that registers a job and serves commands until cancelled.
JOB = textwrap.dedent(
    f"""
    import threading
    from flinkcore.runtime.registry import JobRegistration
    cancelled = threading.Event()
    def savepoint(path):
        return path + "/savepoint-012345-000000000000"
    def fail():
        raise RuntimeError("no checkpoint storage configured")
    handlers = {{"cancel": lambda: cancelled.set(), "trigger_savepoint": savepoint, "fail": fail}}
    with JobRegistration("{JOB_ID}", "fraud detection", handlers, lambda: "RUNNING"):
        print("registered", flush=True)
        cancelled.wait(30)
    print("done", flush=True)
    """
)


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("FLINKCORE_HOME", str(tmp_path))
    return tmp_path


def _start(home):
    env = {**os.environ, "FLINKCORE_HOME": str(home)}
    proc = subprocess.Popen([sys.executable, "-c", JOB], stdout=subprocess.PIPE, text=True, env=env)
    assert proc.stdout.readline().strip() == "registered"
    return proc


def _cli(home, *args):
    env = {**os.environ, "FLINKCORE_HOME": str(home)}
    return subprocess.run([sys.executable, "-m", "flinkcore", *args], capture_output=True, text=True, env=env)


def test_list_savepoint_and_cancel_through_the_cli(home):
    proc = _start(home)
    try:
        listed = _cli(home, "list")
        assert listed.returncode == 0
        assert f"{JOB_ID} : fraud detection (RUNNING)" in listed.stdout

        sp = _cli(home, "savepoint", JOB_ID[:8], str(home / "sp"))
        assert sp.returncode == 0, sp.stderr
        assert f"Path: {home / 'sp'}/savepoint-012345-" in sp.stdout

        cancel = _cli(home, "cancel", JOB_ID)
        assert cancel.returncode == 0, cancel.stderr
        assert proc.wait(10) == 0
        assert proc.stdout.read().strip() == "done"
    finally:
        proc.kill()
    assert running_jobs() == []
    assert "No running jobs." in _cli(home, "list").stdout


def test_errors_in_the_job_reach_the_caller(home):
    proc = _start(home)
    try:
        job = find_job(JOB_ID)
        with pytest.raises(JobControlError, match="no checkpoint storage configured"):
            job.call("fail")
        with pytest.raises(JobControlError, match="unknown command"):
            job.call("rescale")
        assert job.call("status")["status"] == "RUNNING"
        job.call("cancel")
        assert proc.wait(10) == 0
    finally:
        proc.kill()


def test_killed_job_is_detected_as_stale_and_removed(home):
    proc = _start(home)
    socket_path = Path(find_job(JOB_ID).socket_path)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    time.sleep(0.05)
    assert running_jobs() == []
    assert list((home / "jobs").glob("*.json")) == []
    assert not socket_path.exists() and not socket_path.parent.exists()
    result = _cli(home, "cancel", JOB_ID)
    assert result.returncode == 1 and "no running job" in result.stderr
