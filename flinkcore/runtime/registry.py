"""Where running jobs announce themselves, so ``flinkcore list / cancel / savepoint`` can reach them.

A job started on this machine writes ``<home>/jobs/<job id>.json`` (id, name, pid, the path of
its control socket, start time) and serves a Unix-socket control endpoint from a daemon thread.
The entry is removed when the job ends; an entry whose process is gone or whose socket no longer
answers (the job was killed) is stale, and readers delete it. ``<home>`` is ``$FLINKCORE_HOME`` or
``~/.flinkcore``.

The protocol is one JSON object per line each way: ``{"cmd": "status"}`` and any command the job
registered a handler for (``cancel``, ``savepoint``, ...) with its arguments; the answer is
``{"ok": true, "result": ...}`` or ``{"ok": false, "error": "..."}``.
"""

from __future__ import annotations

import json
import os
import socket
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

Handler = Callable[..., object]


def flinkcore_home() -> Path:
    return Path(os.environ.get("FLINKCORE_HOME") or Path.home() / ".flinkcore")


def _jobs_dir() -> Path:
    path = flinkcore_home() / "jobs"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class JobControlError(Exception):
    """The job could not be reached, or refused or failed the command."""


@dataclass(frozen=True)
class JobEntry:
    job_id: str
    name: str
    pid: int
    socket_path: str
    start_time_ms: int

    def call(self, cmd: str, timeout: float = 600.0, **args) -> object:
        """Send one command to the job and return its result."""
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
                conn.settimeout(timeout)
                conn.connect(self.socket_path)
                conn.sendall(json.dumps({"cmd": cmd, **args}).encode() + b"\n")
                reply = conn.makefile("rb").readline()
        except OSError as exc:
            raise JobControlError(f"job {self.job_id} ({self.name}) is not reachable: {exc}") from exc
        if not reply:
            raise JobControlError(f"job {self.job_id} closed the connection without answering {cmd!r}")
        answer = json.loads(reply)
        if not answer.get("ok"):
            raise JobControlError(f"job {self.job_id}: {cmd} failed: {answer.get('error')}")
        return answer.get("result")


class JobRegistration:
    """A running job's entry and control endpoint; use as a context manager around the job's run."""

    def __init__(self, job_id: str, name: str, handlers: dict[str, Handler], status: Callable[[], str]):
        self.job_id = job_id
        self.name = name
        self._handlers = dict(handlers)
        self._status = status
        # Unix socket paths are limited to ~100 bytes: keep them short, in the temp dir.
        self._socket_dir = tempfile.mkdtemp(prefix="flinkcore-")
        self.socket_path = os.path.join(self._socket_dir, f"{job_id[:12]}.sock")
        self.entry_path = _jobs_dir() / f"{job_id}.json"
        self._server: socket.socket | None = None
        self._thread: threading.Thread | None = None

    def __enter__(self) -> JobRegistration:
        self._server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._server.bind(self.socket_path)
        self._server.listen(8)
        self._thread = threading.Thread(
            target=self._serve, name=f"flinkcore-control-{self.job_id[:8]}", daemon=True
        )
        self._thread.start()
        entry = {
            "job_id": self.job_id,
            "name": self.name,
            "pid": os.getpid(),
            "socket_path": self.socket_path,
            "start_time_ms": int(time.time() * 1000),
        }
        tmp = self.entry_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(entry))
        os.replace(tmp, self.entry_path)
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self.entry_path.unlink(missing_ok=True)
        if self._server is not None:
            server, self._server = self._server, None
            try:
                server.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            server.close()
        _remove_socket(self.socket_path)

    def _serve(self) -> None:
        while self._server is not None:
            try:
                conn, _ = self._server.accept()
            except OSError:
                return
            threading.Thread(target=self._answer, args=(conn,), daemon=True).start()

    def _answer(self, conn: socket.socket) -> None:
        with conn:
            try:
                request = json.loads(conn.makefile("rb").readline() or b"{}")
                cmd = request.pop("cmd", None)
                if cmd == "status":
                    reply = {
                        "ok": True,
                        "result": {"job_id": self.job_id, "name": self.name, "status": self._status()},
                    }
                elif cmd in self._handlers:
                    reply = {"ok": True, "result": self._handlers[cmd](**request)}
                else:
                    reply = {"ok": False, "error": f"unknown command {cmd!r}"}
            except Exception as exc:  # the job reports it; the control thread must survive
                reply = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
            try:
                conn.sendall(json.dumps(reply, default=str).encode() + b"\n")
            except OSError:
                pass


def _remove_socket(socket_path: str) -> None:
    for remove, target in ((os.unlink, socket_path), (os.rmdir, os.path.dirname(socket_path))):
        try:
            remove(target)
        except OSError:
            pass


def running_jobs() -> list[JobEntry]:
    """Entries of jobs that are alive; stale entries (process gone or socket dead) are removed."""
    jobs = []
    for path in sorted(_jobs_dir().glob("*.json")):
        try:
            entry = JobEntry(**json.loads(path.read_text()))
        except (OSError, ValueError, TypeError):
            path.unlink(missing_ok=True)
            continue
        if _pid_alive(entry.pid) and os.path.exists(entry.socket_path):
            jobs.append(entry)
        else:
            path.unlink(missing_ok=True)
            _remove_socket(entry.socket_path)
    return jobs


def find_job(job_id: str) -> JobEntry:
    """The running job with this id (a unique prefix is accepted)."""
    matches = [job for job in running_jobs() if job.job_id.startswith(job_id.lower())]
    if not matches:
        raise JobControlError(f"no running job with id {job_id}")
    if len(matches) > 1:
        raise JobControlError(f"job id prefix {job_id} is ambiguous: {[j.job_id for j in matches]}")
    return matches[0]
