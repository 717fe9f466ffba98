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

import atexit
import contextlib
import ctypes
import gc
import hashlib
import importlib.abc
import importlib.machinery
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
import time
from collections.abc import Iterable, Iterator
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


#: "0" keeps the fork server from importing the modules a job's pickle names (see JobModules)
PRELOAD_JOB_MODULES_ENV = "FLINKCORE_PRELOAD_JOB_MODULES"

_STRING_OPS = frozenset(
    ("SHORT_BINUNICODE", "BINUNICODE", "BINUNICODE8", "UNICODE", "SHORT_BINSTRING", "BINSTRING", "STRING")
)


#: bytes of a job pickle the fork server scans for module names at most (the scan takes ~130 us
#: per KB: a graph is a few KB, but a collection source carries its data, and its modules then
#: are in the first part, before the data, or left to the workers)
SCAN_LIMIT = 64 << 10


def pickled_modules(data: bytes, limit: int | None = None) -> set[str]:
    """Names of the modules a pickle refers to, without unpickling it: those of its GLOBAL and
    STACK_GLOBAL opcodes (classes and functions pickled by reference) and the arguments of
    cloudpickle's ``subimport`` (modules the globals of a function pickled by value refer to).
    With ``limit``, only in its first ``limit`` bytes."""
    import pickletools

    if limit is not None and len(data) > limit:
        data = data[:limit]

    names: set[str] = set()
    memo: dict[int, Any] = {}
    # the values of the two latest pushes: a str, _SUBIMPORT for that global, None for the rest
    before = last = None
    subimport = False  # cloudpickle's subimport was pushed: its argument is a module name
    ops = pickletools.genops(data)
    while True:
        try:
            op, arg, _ = next(ops)
        except StopIteration:
            break
        except Exception:  # noqa: BLE001 - cut short at the limit (or not a pickle): the names so far
            break
        name = op.name
        if name == "MEMOIZE":
            memo[len(memo)] = last
            continue
        if name in ("PUT", "BINPUT", "LONG_BINPUT"):
            memo[arg] = last
            continue
        value = None
        if name in _STRING_OPS:
            value = arg
            if subimport:
                names.add(arg)
        elif name in ("GET", "BINGET", "LONG_BINGET"):
            value = memo.get(arg)
            if subimport and isinstance(value, str):
                names.add(value)
        elif name == "GLOBAL":
            module, _, qualname = arg.partition(" ")
            names.add(module)
            value = _global(module, qualname)
        elif name == "STACK_GLOBAL" and isinstance(before, str) and isinstance(last, str):
            names.add(before)  # pushed: the module, then the qualified name
            value = _global(before, last)
        subimport = value is _SUBIMPORT
        before, last = last, value
    return names


_SUBIMPORT = object()


def _global(module: str, qualname: str) -> Any:
    return _SUBIMPORT if module.startswith("cloudpickle") and qualname == "subimport" else None


class JobModules:
    """Imports, in the fork server, the modules a job's pickled graph refers to by name (where its
    functions, sources and sinks come from: e.g. a module of the user's), before it forks the
    job's workers: every worker then starts with them imported, as with flinkcore, instead of each
    one importing them again (compiling them from source where no bytecode is written).

    Modules stay imported for later jobs; once the file of one of the user's (a Python source
    outside the standard library, site-packages and flinkcore) changed, the user's modules are
    imported afresh, so a worker runs the user's code on disk, as one that imports it itself
    does (libraries stay as imported, as in the driver). A module that fails to import here is
    left to the worker (which reports the error as before); it is not tried here again.
    Importing runs the module's top-level code in the server once instead of in every worker: a
    module that starts threads or opens connections at import does that in the server, and its
    workers inherit the result; the server imports no more job modules once an import left it
    with more threads, or took longer than :data:`IMPORT_TIMEOUT` (it is interrupted: the
    server serves every job of the driver). ``FLINKCORE_PRELOAD_JOB_MODULES=0`` turns this
    off."""

    def __init__(self) -> None:
        self.enabled = preloading()
        #: module name -> (its file, mtime_ns, size) when imported, for what was imported for jobs
        self.files: dict[str, tuple[str, int, int] | None] = {}
        #: modules that failed to import here (left to the workers)
        self.failed: set[str] = set()
        #: a digest of the last pickle scanned and the modules it names (a job's workers often get
        #: equal graphs; the pickle itself is not kept: it may carry a large collection)
        self._last: tuple[bytes, set[str]] = (b"", set())

    def prepare(self, data: bytes, sys_path: list[str]) -> None:
        """Import what ``data`` (a pickle) refers to and this process has not imported yet."""
        if not self.enabled:
            return
        self._drop_changed()
        head = data[:SCAN_LIMIT]
        digest = hashlib.blake2b(head, digest_size=16).digest()
        if digest == self._last[0]:
            names = self._last[1]
        else:
            names = pickled_modules(head)
            self._last = (digest, names)
        missing = sorted(
            m for m in names if m not in sys.modules and m not in self.failed and not m.startswith("__")
        )
        if not missing:
            return
        threads = _thread_count()
        before = set(sys.modules)
        saved = sys.path[:]
        sys.path[:] = sys_path
        importlib.invalidate_caches()
        try:
            with import_deadline():
                for name in missing:
                    try:
                        importlib.import_module(name)
                    except ImportTimeout:
                        self.failed.add(name)
                        self.enabled = False
                        break
                    except BaseException:  # noqa: BLE001 - the worker imports it itself and reports
                        self.failed.add(name)
        finally:
            sys.path[:] = saved
        for name in set(sys.modules) - before:
            stamp = file_stamp(sys.modules[name])
            if stamp is not None and is_user_source(stamp[0]):
                self.files[name] = stamp
        if _thread_count() > threads:
            self.enabled = False

    def _drop_changed(self) -> None:
        """Forget every module of the user's imported for jobs when the file of one changed (they
        may refer to each other). Those are the Python sources outside the installation's
        libraries: a library (a dependency the user's module imported) stays, as the driver's own
        copy does; an extension module cannot be imported twice in a process."""
        if any(file_stamp(sys.modules.get(n)) != stamp for n, stamp in self.files.items()):
            for name in self.files:
                sys.modules.pop(name, None)
            self.files.clear()
            self.failed.clear()


#: seconds the fork server spends importing a job's modules at most (then the workers do it)
IMPORT_TIMEOUT = 10.0


class ImportTimeout(BaseException):
    """Raised in what runs under :func:`import_deadline` once its time is up."""


def _import_timed_out(signum: int, frame: Any) -> None:
    raise ImportTimeout()


@contextlib.contextmanager
def import_deadline() -> Iterator[None]:
    """Interrupt the imports run inside (:class:`ImportTimeout`) after :data:`IMPORT_TIMEOUT`
    seconds, by SIGALRM: on the main thread only (signals reach only it); elsewhere untimed."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    alarm = signal.signal(signal.SIGALRM, _import_timed_out)
    signal.setitimer(signal.ITIMER_REAL, IMPORT_TIMEOUT)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, alarm)


def preloading() -> bool:
    """Whether a job's modules are imported ahead of its workers' need (``FLINKCORE_PRELOAD_JOB_MODULES``,
    on by default): by the fork server before it forks them, by a kept worker while it waits."""
    return os.environ.get(PRELOAD_JOB_MODULES_ENV, "1").strip().lower() not in ("0", "false", "no", "off")


def is_user_source(path: str) -> bool:
    """Whether ``path`` is a Python source outside the standard library, site-packages and
    flinkcore (the modules :class:`JobModules` imports afresh when they change)."""
    if not path.endswith(".py"):
        return False
    path = os.path.realpath(path)
    return not any(path.startswith(root) for root in _library_roots())


_LIBRARY_ROOTS: tuple[str, ...] | None = None


def _library_roots() -> tuple[str, ...]:
    global _LIBRARY_ROOTS
    if _LIBRARY_ROOTS is None:
        import site
        import sysconfig

        import flinkcore

        paths = sysconfig.get_paths()
        roots = {paths.get(k) for k in ("stdlib", "platstdlib", "purelib", "platlib")}
        roots.update(site.getsitepackages())
        roots.update(flinkcore.__path__)
        _LIBRARY_ROOTS = tuple(os.path.join(os.path.realpath(r), "") for r in roots if r)
    return _LIBRARY_ROOTS


def file_stamp(module: Any) -> tuple[str, int, int] | None:
    """(file, mtime_ns, size) of ``module``'s file (-1s once it is gone), None without a file."""
    path = getattr(module, "__file__", None)
    if not path:
        return None
    try:
        st = os.stat(path)
    except OSError:
        return (path, -1, -1)
    return (path, st.st_mtime_ns, st.st_size)


def _thread_count() -> int:
    try:
        return len(os.listdir("/proc/self/task"))
    except OSError:
        return threading.active_count()


class _UserCode(importlib.abc.MetaPathFinder):
    """The compiled code of the user's modules, kept in the fork server and the workers it forks.

    A kept worker imports the user's modules afresh for every job (``worker._UserModules``), and
    where no bytecode file is written (``PYTHONDONTWRITEBYTECODE``, usual in containers, or a
    directory the job cannot write) every such import compiled the source again: ~3-4 ms for a
    500-line module, in each worker, at the start of a job that came right after the last. The
    module still runs afresh; only the code of source bytes seen before is taken from memory
    (keyed by the bytes' digest, so an edited file is compiled again). Sits before the path finder and
    changes only the loader of the user's sources (:func:`is_user_source`)."""

    def __init__(self) -> None:
        #: source path -> (digest of the source bytes, their code)
        self.code: dict[str, tuple[bytes, Any]] = {}

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> Any:
        spec = importlib.machinery.PathFinder.find_spec(name, path, target)
        loader = getattr(spec, "loader", None)
        if type(loader) is not importlib.machinery.SourceFileLoader or not is_user_source(spec.origin):
            return None  # the path finder after us finds it as always
        spec.loader = _CachedSourceLoader(loader.name, loader.path, self.code)
        return spec


class _CachedSourceLoader(importlib.machinery.SourceFileLoader):
    def __init__(self, name: str, path: str, code: dict[str, tuple[bytes, Any]]) -> None:
        super().__init__(name, path)
        self._code = code

    def get_code(self, fullname: str) -> Any:
        path = self.get_filename(fullname)
        digest = hashlib.blake2b(self.get_data(path), digest_size=16).digest()
        known = self._code.get(path)
        if known is not None and known[0] == digest:
            return known[1]
        code = super().get_code(fullname)  # from the bytecode file where valid, else compiled
        self._code[path] = (digest, code)
        return code


def _keep_user_code() -> None:
    """Put :class:`_UserCode` before the path finder in this process's import system."""
    finders = sys.meta_path
    at = finders.index(importlib.machinery.PathFinder) if importlib.machinery.PathFinder in finders else 0
    finders.insert(at, _UserCode())


#: the fork server's JobModules (a worker it forked finds there the user's modules it inherited)
SERVER_JOB_MODULES: JobModules | None = None


#: glibc's mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
#: Arrow's memory pool (mimalloc) reads its options from the environment when it starts
_ARROW_POOL_ENV = {"MIMALLOC_PURGE_DELAY": "-1"}


@contextlib.contextmanager
def keeping_freed_memory() -> Iterator[None]:
    """Make the allocators of this server, and of the workers it forks, keep the memory a job
    frees for its next allocations (the libraries are imported inside the block).

    By default glibc's malloc serves a block of 128 KiB or more by a fresh ``mmap`` and gives
    freed memory beyond that at the heap's top back to the kernel, and mimalloc (Arrow's pool)
    gives back what stayed free for 10 ms: a task that frees its batches, windows and split
    buffers gets their pages from the kernel again, each page faulted in and zeroed by the
    kernel, in every job of a kept worker (W2 columnar, 100M events at parallelism 2: ~55k page
    faults and ~45k pages allocated per job against ~37k and ~6k in one process). Kept instead
    (glibc: up to 256 MiB at the heap's top, blocks below 32 MiB from the heap; mimalloc: all),
    as a TaskManager keeps its memory: a worker gives it back when it exits, at most the idle
    timeout after its last job. A mimalloc option set in the environment is left as it is."""
    try:
        mallopt = ctypes.CDLL(None).mallopt
        mallopt(_M_MMAP_THRESHOLD, 32 << 20)
        mallopt(_M_TRIM_THRESHOLD, 256 << 20)
    except (OSError, AttributeError):  # not glibc: its defaults stay
        pass
    added = {k: v for k, v in _ARROW_POOL_ENV.items() if k not in os.environ}
    os.environ.update(added)
    try:
        yield
    finally:  # read by then: out of the workers' environment, which is the driver's
        for k in added:
            os.environ.pop(k, None)


def _serve(sock: socket.socket) -> None:
    global SERVER_JOB_MODULES
    from flinkcore.runtime.cluster import worker

    with keeping_freed_memory():
        _preload()
    _keep_user_code()
    job_modules = SERVER_JOB_MODULES = JobModules()

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
        except (EOFError, ConnectionError):  # the driver is gone (or closed us at its exit)
            _end_children(children)
            return
        kind = request[0]
        if kind == "fork":
            _, args, (job_pickle, sys_path) = request
            if job_pickle is not None:
                try:
                    job_modules.prepare(job_pickle, sys_path)
                except BaseException:  # noqa: BLE001 - an optimisation: the fork must happen
                    job_modules.enabled = False
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
            # A pidfd for the driver, opened here where the pid cannot have been reaped (and so
            # reused) yet: it becomes readable when the worker exits.
            pidfd = _pidfd_open(pid)
            _send_msg(sock, ("forked", pid), None if pidfd is None else [pidfd])
            if pidfd is not None:
                os.close(pidfd)
        elif kind == "status":
            pids = request[1]
            # None: still running; "reaped": ended and reported before
            _send_msg(
                sock, ("status", {p: None if p in children else statuses.get(p, "reaped") for p in pids})
            )
            for p in pids:
                if p not in children:
                    statuses.pop(p, None)


def _end_children(children: set[int]) -> None:
    """Kill the workers still running (none outlives its driver) and reap every child, so that
    none is left behind for init to reap (a driver exits right after a finished job, whose
    workers are still exiting)."""
    for pid in children:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    for pid in children:
        try:
            os.waitpid(pid, 0)
        except ChildProcessError:
            pass


def _pidfd_open(pid: int) -> int | None:
    try:
        return os.pidfd_open(pid)
    except (AttributeError, OSError):  # not Linux >= 5.3: the driver polls for exit statuses
        return None


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
        #: worker pid -> a pidfd of it (Linux), until its exit status was reported
        self._pidfds: dict[int, int] = {}

    @property
    def alive(self) -> bool:
        return self.process.poll() is None

    def fork(
        self,
        sockets: list[socket.socket],
        *args: Any,
        job_pickle: bytes | None = None,
        sys_path: list[str] | None = None,
    ) -> int:
        """Start a worker running ``run_worker_from_fds(fds, *args)``; returns its pid. The server
        first imports the modules ``job_pickle`` refers to (with ``sys_path``; see
        :class:`JobModules`); pass the same object as in ``args``: it travels once."""
        return self.fork_many([(sockets, args, job_pickle, sys_path)])[0]

    def fork_many(
        self,
        requests: Iterable[tuple[list[socket.socket], tuple, bytes | None, Any]],
        started: list[int] | None = None,
    ) -> list[int]:
        """:meth:`fork` for each ``(sockets, args, job_pickle, sys_path)`` of ``requests``, all
        sent before the first reply is read: the server forks one worker after another while the
        caller makes the next request (``requests`` may be a generator that pickles each graph
        when its turn comes). Returns the pids in order, also appended to ``started``, as they
        start: when ``requests`` raises, ``started`` holds the workers forked before."""
        pids = [] if started is None else started
        with self.lock:
            sent = 0
            try:
                for sockets, args, job_pickle, sys_path in requests:
                    request = ("fork", args, (job_pickle, list(sys_path or sys.path)))
                    _send_msg(self.sock, request, [s.fileno() for s in sockets])
                    sent += 1
            finally:
                for _ in range(sent):
                    pids.append(self._forked())
        return pids

    def _forked(self) -> int:
        reply, fds = _recv_msg(self.sock)
        pid = reply[1]
        if fds:
            self._pidfds[pid] = fds[0]
        return pid

    def exit_codes(self, pids: list[int]) -> dict[int, int | str | None]:
        """How each worker ended (``-9``: SIGKILL; ``"reaped"`` when reported before); None while
        it runs."""
        with self.lock:
            _send_msg(self.sock, ("status", list(pids)))
            reply, _ = _recv_msg(self.sock)
        codes = reply[1]
        for pid, code in codes.items():
            if code is not None:
                fd = self._pidfds.pop(pid, None)
                if fd is not None:
                    os.close(fd)
        return codes

    def wait_exit(self, pids: list[int], timeout: float) -> dict[int, int | str]:
        """Exit codes of ``pids`` once all ended and were reaped, or those known at the timeout.

        Waits on the workers' pidfds (readable once a worker exited: the server reaps it before
        it answers the next request), so the end of the last one is seen at once, without
        asking the server every few milliseconds; polls where there are no pidfds."""
        deadline = time.monotonic() + timeout
        codes: dict[int, int | str] = {}
        waiting = list(pids)
        while waiting:
            with self.lock:
                fds = [self._pidfds[p] for p in waiting if p in self._pidfds]
            if len(fds) == len(waiting):  # every one has a pidfd: wait until all are readable
                poller = select.poll()  # (not select: a driver may hold fds beyond FD_SETSIZE)
                for fd in fds:
                    poller.register(fd, select.POLLIN)
                left = len(fds)
                while left:
                    timeout = deadline - time.monotonic()
                    if timeout <= 0:
                        break
                    for fd, _ in poller.poll(timeout * 1000):
                        poller.unregister(fd)
                        left -= 1
            for pid, code in self.exit_codes(waiting).items():
                if code is not None:
                    codes[pid] = code
            waiting = [p for p in waiting if p not in codes]
            if not waiting or time.monotonic() >= deadline:
                break
            time.sleep(0.002)
        return codes

    def close(self) -> None:
        self.sock.close()
        for fd in self._pidfds.values():
            os.close(fd)
        self._pidfds.clear()
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
            atexit.register(_server.close)
        return _server
