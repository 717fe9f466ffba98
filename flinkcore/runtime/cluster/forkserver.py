"""A fork server: a small process with flinkcore imported that forks worker processes on request.

Why not ``multiprocessing``: its fork server re-runs the user's ``__main__`` script in every
child (a PyFlink job script has no ``if __name__ == "__main__"`` guard, so the job would start
again inside its own workers), and forking the driver itself is unsafe once it runs threads.
This server is started once per driver process (``python -c`` running :func:`main`),
is single-threaded, and forks a worker in about a millisecond: the child inherits the imported
modules and gets its sockets by ``SCM_RIGHTS``.

Lifetime: the server exits when the driver's connection closes (the driver exited or died), and
its workers get SIGKILL when it exits (``PR_SET_PDEATHSIG``), so no worker outlives its driver.
The server reaps its children and reports how each one ended.
"""

from __future__ import annotations

import gc
import json
import os
import pickle
import select
import signal
import socket
import struct
import subprocess
import sys
import threading
from typing import Any

__all__ = ["ForkServer", "fork_server"]

_LEN = struct.Struct("<I")
#: the server imports flinkcore from where the driver did: with the driver's sys.path (``python
#: -c`` alone would put the current directory first, and a directory holding another flinkcore,
#: a checkout of another version, would give the workers other code than the driver)
_MAIN = (
    "import json, sys; sys.path[:] = json.loads(sys.argv[2]); "
    "from flinkcore.runtime.cluster.forkserver import main; main()"
)
_MAX_FDS = 64


def _send_msg(sock: socket.socket, obj: Any, fds: list[int] | None = None) -> None:
    data = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    head = _LEN.pack(len(data))
    if fds:
        socket.send_fds(sock, [head], fds)
    else:
        sock.sendall(head)
    sock.sendall(data)


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(min(n - len(buf), 1 << 20))
        if not chunk:
            raise EOFError("connection closed")
        buf += chunk
    return bytes(buf)


def _recv_msg(sock: socket.socket) -> tuple[Any, list[int]]:
    head, fds, _, _ = socket.recv_fds(sock, _LEN.size, _MAX_FDS)
    if not head:
        raise EOFError("connection closed")
    if len(head) < _LEN.size:
        head += _recv_exact(sock, _LEN.size - len(head))
    (n,) = _LEN.unpack(head)
    return pickle.loads(_recv_exact(sock, n)), list(fds)


# -- the server process ----------------------------------------------------------------------------
#: imported by the server once, so a worker starts with them loaded (a job's graph refers to them)
PRELOAD = (
    "numpy",
    "cloudpickle",
    "flinkcore.datastream",
    "flinkcore.datastream.window",
    "flinkcore.datastream.connectors",
    "flinkcore.runtime.operators.udf",
    "flinkcore.runtime.operators.window",
    "flinkcore.runtime.operators.window_columnar",
    "flinkcore.runtime.operators.watermarks",
    "flinkcore.runtime.operators.co",
    "flinkcore.runtime.operators.sinks",
    "flinkcore.state.heap",
    "flinkcore.state.lmdb_backend",
)

#: every module of these packages is imported by the server too (the datastream API: a job's
#: pickled graph refers to its classes, such as the windowed stream's)
_PRELOAD_PACKAGES = (
    "flinkcore.runtime",
    "flinkcore.state",
    "flinkcore._core",
    "flinkcore.common",
    "flinkcore.datastream",
)


def _preload() -> None:
    """Import what jobs use: the listed modules, pyarrow, and every module of _PRELOAD_PACKAGES."""
    import importlib
    import pkgutil

    import flinkcore

    names = list(PRELOAD) + ["pyarrow", "pyarrow.ipc", "pandas"]  # pyarrow imports pandas lazily
    for info in pkgutil.walk_packages(flinkcore.__path__, "flinkcore."):
        if info.name.startswith(_PRELOAD_PACKAGES):
            names.append(info.name)
    for name in names:
        try:
            importlib.import_module(name)
        except Exception:  # noqa: BLE001 - optional: the worker imports what it needs anyway
            pass
    _warm_pyarrow()
    # What is imported now lives as long as every worker: out of the collector's sight, a
    # worker's collections neither walk these objects nor touch (and so copy) their pages.
    gc.collect()
    gc.freeze()


def _warm_pyarrow() -> None:
    """Run pyarrow's one-time set-up of its pandas integration here, once: the first conversion of
    a numpy array (``pa.array``, a columnar source's batch) in a process imports
    ``pyarrow.pandas_compat`` and compiles the regular expression of pandas' version, ~11 ms of
    CPU that every worker of a columnar job paid on its first batch."""
    try:
        import numpy as np
        import pyarrow as pa

        pa.array(np.zeros(1, dtype=np.int64))
    except Exception:  # noqa: BLE001 - optional, as the imports above
        pass


def _serve(sock: socket.socket) -> None:
    from flinkcore.runtime.cluster import worker

    _preload()

    statuses: dict[int, int] = {}
    children: set[int] = set()
    # SIGCHLD wakes the select below, so an exit is known (and reaped) at once
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_r, False)
    os.set_blocking(wake_w, False)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda signum, frame: None)
    while True:
        r, _, _ = select.select([sock, wake_r], [], [], 1.0)
        if wake_r in r:
            try:
                os.read(wake_r, 4096)
            except BlockingIOError:
                pass
        while children:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                break
            children.discard(pid)
            statuses[pid] = os.waitstatus_to_exitcode(status)
        if sock not in r:
            continue
        try:
            request, fds = _recv_msg(sock)
        except (EOFError, ConnectionError):
            return  # the driver is gone: exiting kills our workers (PDEATHSIG)
        kind = request[0]
        if kind == "fork":
            _, args = request
            pid = os.fork()
            if pid == 0:
                sock.close()
                signal.set_wakeup_fd(-1)
                signal.signal(signal.SIGCHLD, signal.SIG_DFL)
                os.close(wake_r)
                os.close(wake_w)
                code = 0
                try:
                    worker.run_worker_from_fds(fds, *args)
                except BaseException:  # noqa: BLE001 - the worker reports its own failures
                    code = 1
                os._exit(code)
            children.add(pid)
            for fd in fds:
                os.close(fd)
            _send_msg(sock, ("forked", pid))
        elif kind == "status":
            pids = request[1]
            # None: still running; "reaped": ended and reported before
            _send_msg(
                sock, ("status", {p: None if p in children else statuses.get(p, "reaped") for p in pids})
            )
            for p in pids:
                if p not in children:
                    statuses.pop(p, None)


def main() -> None:
    """The server process: serve fork requests on the socket whose fd is ``sys.argv[1]``."""
    fd = int(sys.argv[1])
    sock = socket.socket(fileno=fd)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C goes to the driver, which cancels jobs
    # No PDEATHSIG here: it fires when the driver *thread* that started us ends. The driver's
    # connection closing (at its exit or death) is what ends the server.
    _serve(sock)


# -- the driver side -----------------------------------------------------------------------------
class ForkServer:
    """The driver's connection to its fork server (one per driver process, shared by jobs)."""

    def __init__(self) -> None:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        self.process = subprocess.Popen(
            [sys.executable, "-c", _MAIN, str(theirs.fileno()), json.dumps(sys.path)],
            pass_fds=[theirs.fileno()],
            close_fds=True,
        )
        theirs.close()
        self.sock = ours
        self.lock = threading.Lock()

    @property
    def alive(self) -> bool:
        return self.process.poll() is None

    def fork(self, sockets: list[socket.socket], *args: Any) -> int:
        """Start a worker running ``run_worker_from_fds(fds, *args)``; returns its pid."""
        with self.lock:
            _send_msg(self.sock, ("fork", args), [s.fileno() for s in sockets])
            reply, _ = _recv_msg(self.sock)
        return reply[1]

    def exit_codes(self, pids: list[int]) -> dict[int, int | str | None]:
        """How each worker ended (``-9``: SIGKILL; ``"reaped"`` when reported before); None while
        it runs."""
        with self.lock:
            _send_msg(self.sock, ("status", list(pids)))
            reply, _ = _recv_msg(self.sock)
        return reply[1]

    def close(self) -> None:
        self.sock.close()
        try:
            self.process.wait(5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


_server: ForkServer | None = None
_server_lock = threading.Lock()


def fork_server() -> ForkServer:
    """The driver's fork server, started on first use (and again if it died)."""
    global _server
    with _server_lock:
        if _server is None or not _server.alive:
            _server = ForkServer()
        return _server
