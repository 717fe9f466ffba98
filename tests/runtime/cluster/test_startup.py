"""Worker start-up: the fork server imports the modules a job's pickle names before it forks the
job's workers (so they start with them imported), imports a changed module afresh, and leaves a
module that fails to import to the worker, which reports the error as before."""

from __future__ import annotations

import os
import pickle
import sys
import textwrap
import time
import uuid

import cloudpickle
import pytest
from recovery_support import ListSink, alive

from flinkcore.datastream import StreamExecutionEnvironment
from flinkcore.datastream.connectors import NumberSequenceSource
from flinkcore.datastream.functions import MapFunction, SinkFunction
from flinkcore.runtime.cluster import ClusterJob, pool
from flinkcore.runtime.cluster.forkserver import (
    PRELOAD_JOB_MODULES_ENV,
    JobModules,
    fork_server,
    pickled_modules,
)

MODULE = """
import os
IMPORTED_IN = os.getpid()
VERSION = {version}

def tag(x):
    return (x, IMPORTED_IN, os.getpid(), VERSION)
"""


def _write_module(directory, name: str, text: str, mtime_ns: int | None = None) -> None:
    path = os.path.join(directory, f"{name}.py")
    with open(path, "w") as f:
        f.write(textwrap.dedent(text))
    if mtime_ns is not None:
        os.utime(path, ns=(mtime_ns, mtime_ns))


@pytest.fixture(autouse=True)
def fresh_workers(monkeypatch):
    """These tests are about workers the fork server forks: none is kept for a next job."""
    monkeypatch.setenv(pool.ENV_VAR, "0")


@pytest.fixture
def module_dir(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(tmp_path))
    names: list[str] = []
    yield tmp_path, names
    for name in names:
        sys.modules.pop(name, None)


def _run(fn, parallelism=2, n=100):
    env = StreamExecutionEnvironment.get_execution_environment()
    env.set_parallelism(parallelism)
    sink = ListSink()
    env.from_source(NumberSequenceSource(0, n - 1), None, "n").map(fn).add_sink(sink)
    job = ClusterJob(env.get_stream_graph("startup", clear_transformations=True))
    job.run()
    assert job.status == "FINISHED"
    assert job.pids and job.join_workers(10.0) and [p for p in job.pids if alive(p)] == []
    return job, sink.results


def test_job_modules_are_imported_by_the_fork_server_and_again_when_changed(module_dir):
    directory, names = module_dir
    name = f"fc_startup_{uuid.uuid4().hex}"
    names.append(name)
    _write_module(directory, name, MODULE.format(version=1), mtime_ns=1_000_000_000_000_000_000)
    module = __import__(name)
    server = fork_server().process.pid

    job, results = _run(module.tag)
    assert sorted(r[0] for r in results) == list(range(100))
    assert {r[3] for r in results} == {1}
    assert {r[2] for r in results} == set(job.pids)  # the map ran in the workers
    assert {r[1] for r in results} == {server}  # imported once, by the server, before the forks

    # the file changes (the driver keeps its old copy): the workers run the code on disk
    _write_module(directory, name, MODULE.format(version=22), mtime_ns=1_000_000_001_000_000_000)
    job, results = _run(module.tag)
    assert {r[3] for r in results} == {22}
    assert {r[1] for r in results} == {server}
    assert {r[2] for r in results} == set(job.pids)


FAILING = """
import os
if os.getpid() != {driver}:
    raise RuntimeError("this module imports only in process {driver}")

def ident(x):
    return x
"""


def test_a_module_that_fails_to_import_in_the_server_fails_in_the_worker(module_dir):
    directory, names = module_dir
    name = f"fc_startup_failing_{uuid.uuid4().hex}"
    names.append(name)
    _write_module(directory, name, FAILING.format(driver=os.getpid()))
    module = __import__(name)
    env = StreamExecutionEnvironment.get_execution_environment()
    env.set_parallelism(2)
    env.from_source(NumberSequenceSource(0, 9), None, "n").map(module.ident).add_sink(ListSink())
    job = ClusterJob(env.get_stream_graph("failing", clear_transformations=True))
    with pytest.raises(Exception, match="this module imports only in process"):
        job.run()
    assert job.status == "FAILED"
    assert [p for p in job.pids if alive(p)] == []
    # the server survived the failed import and serves the next job
    _, results = _run(lambda x: x + 1, n=10)
    assert sorted(results) == list(range(1, 11))


def test_pickled_modules_names_globals_and_subimports(module_dir):
    directory, names = module_dir
    name = f"fc_startup_scan_{uuid.uuid4().hex}"
    names.append(name)
    _write_module(directory, name, MODULE.format(version=1))
    module = __import__(name)
    import json
    import shlex

    def uses_modules(x):  # pickled by value: its globals json and shlex travel as subimports
        return json.dumps(shlex.quote(x))

    def again(x):  # the second function's subimports are memo references
        return json.loads(shlex.split(x)[0])

    for protocol in range(pickle.HIGHEST_PROTOCOL + 1):
        data = pickle.dumps([module.tag, os.path.join], protocol=protocol)
        assert {name, os.path.join.__module__} <= pickled_modules(data), protocol
    data = cloudpickle.dumps([uses_modules, again, module.tag], protocol=pickle.HIGHEST_PROTOCOL)
    assert {"json", "shlex", name} <= pickled_modules(data)


THREADED = """
import threading
STOP = threading.Event()
threading.Thread(target=STOP.wait, daemon=True).start()

def ident(x):
    return x
"""


def test_job_modules_stop_importing_after_an_import_started_a_thread(module_dir, monkeypatch):
    directory, names = module_dir
    first, threaded, later = (f"fc_startup_{kind}_{uuid.uuid4().hex}" for kind in ("a", "thread", "b"))
    names.extend([first, threaded, later])
    _write_module(directory, first, MODULE.format(version=1))
    _write_module(directory, threaded, THREADED)
    _write_module(directory, later, MODULE.format(version=2))
    path = [str(directory), *sys.path]
    monkeypatch.setenv(PRELOAD_JOB_MODULES_ENV, "1")
    modules = JobModules()
    modules.prepare(_global(first, "tag"), path)
    assert first in sys.modules and modules.enabled
    try:
        modules.prepare(_global(threaded, "ident"), path)
        assert threaded in sys.modules
        assert not modules.enabled  # this process has more threads now: no more imports here
        modules.prepare(_global(later, "tag"), path)
        assert later not in sys.modules
    finally:
        sys.modules[threaded].STOP.set()

    monkeypatch.setenv(PRELOAD_JOB_MODULES_ENV, "0")
    off = JobModules()
    off.prepare(_global(later, "tag"), path)
    assert later not in sys.modules


def _global(module: str, name: str) -> bytes:
    """A pickle of a reference to ``module.name`` (a GLOBAL opcode), made without importing it."""
    return b"c" + module.encode() + b"\n" + name.encode() + b"\n."


def test_job_modules_import_afresh_when_a_file_changed(module_dir, monkeypatch):
    directory, names = module_dir
    name = f"fc_startup_fresh_{uuid.uuid4().hex}"
    names.append(name)
    _write_module(directory, name, MODULE.format(version=1), mtime_ns=1_000_000_000_000_000_000)
    path = [str(directory), *sys.path]
    monkeypatch.setenv(PRELOAD_JOB_MODULES_ENV, "1")
    modules = JobModules()
    modules.prepare(_global(name, "tag"), path)
    assert sys.modules[name].VERSION == 1
    modules.prepare(_global(name, "tag"), path)  # unchanged: the same module
    first = sys.modules[name]
    _write_module(directory, name, MODULE.format(version=3), mtime_ns=1_000_000_002_000_000_000)
    modules.prepare(_global(name, "tag"), path)
    assert sys.modules[name] is not first and sys.modules[name].VERSION == 3


class _Doubling(MapFunction):
    """Doubles; at close (in the worker) leaves a file."""

    def __init__(self, directory):
        self.directory = directory

    def map(self, value):
        return value * 2

    def close(self):
        with open(os.path.join(self.directory, f"closed-{os.getpid()}"), "w"):
            pass


class _NotingSink(SinkFunction):
    """In the driver: at its last record, notes how many workers had closed their maps."""

    def __init__(self, directory, records):
        self.directory = directory
        self.records = records
        self.seen = 0
        self.closed_at_last = None

    def invoke(self, value, context):
        self.seen += 1
        if self.seen == self.records:
            time.sleep(0.3)  # time enough for a worker that would close now
            self.closed_at_last = len(os.listdir(self.directory))


def test_workers_close_their_subtasks_only_once_the_whole_job_ended(tmp_path):
    """A worker whose subtasks finished stays in the job until the driver's have too: it may still
    take part in a checkpoint, and its sinks commit only when the job succeeded (Flink's FLIP-147).
    Then it closes them, and with reuse off it exits."""
    env = StreamExecutionEnvironment.get_execution_environment()
    env.set_parallelism(2)
    sink = _NotingSink(str(tmp_path), 200)
    env.from_source(NumberSequenceSource(0, 199), None, "n").map(_Doubling(str(tmp_path))).add_sink(sink)
    job = ClusterJob(env.get_stream_graph("noting sink", clear_transformations=True))
    job.run()
    assert job.status == "FINISHED"
    assert sink.seen == 200
    assert sink.closed_at_last == 0, "a worker closed its subtasks before the job ended"
    assert len(os.listdir(tmp_path)) == 2  # closed by the time run() returned
    assert job.join_workers(10.0) and [p for p in job.pids if alive(p)] == []


class _MapsOnce(MapFunction):
    """A map that pickles once: it travels to the first worker but fails for the second."""

    def __init__(self):
        self.pickled = 0

    def __getstate__(self):
        self.pickled += 1
        if self.pickled > 1:
            raise TypeError("this map pickles once")
        return {"pickled": self.pickled}

    def map(self, value):
        return value


def test_a_graph_that_fails_to_pickle_for_a_later_worker_leaves_no_worker_behind():
    # the source at parallelism 1 runs in the first slot only: the two workers get different
    # graphs (the second one a stand-in for the source), each pickled on its own
    env = StreamExecutionEnvironment.get_execution_environment()
    env.set_parallelism(2)
    source = env.from_source(NumberSequenceSource(0, 99), None, "n").set_parallelism(1)
    source.map(_MapsOnce()).add_sink(ListSink())
    job = ClusterJob(env.get_stream_graph("pickles once", clear_transformations=True))
    with pytest.raises(ValueError, match="this map pickles once"):
        job.run()
    assert job.status == "FAILED"
    assert len(job.pids) == 1  # the first worker started before the second graph failed
    assert [p for p in job.pids if alive(p)] == []


def test_workers_of_one_shape_get_one_pickled_graph():
    env = StreamExecutionEnvironment.get_execution_environment()
    env.set_parallelism(3)
    env.from_source(NumberSequenceSource(0, 99), None, "n").map(_MapsOnce()).add_sink(ListSink())
    job = ClusterJob(env.get_stream_graph("one shape", clear_transformations=True))
    job.run()  # the map pickles once for all three workers
    assert job.status == "FINISHED"
    assert job.join_workers(10.0) and [p for p in job.pids if alive(p)] == []


HANGING = """
import time
time.sleep(60)
"""

COUNTED_FAILURE = """
with open({path!r}, "a") as f:
    f.write("attempt\\n")
raise ImportError("this module never imports")
"""


def test_job_modules_give_up_on_an_import_that_hangs_and_do_not_retry_failures(module_dir, monkeypatch):
    import flinkcore.runtime.cluster.forkserver as forkserver

    directory, names = module_dir
    hanging, failing, fine = (f"fc_startup_{kind}_{uuid.uuid4().hex}" for kind in ("hang", "fail", "fine"))
    names.extend([hanging, failing, fine])
    attempts = os.path.join(directory, "attempts.txt")
    _write_module(directory, hanging, HANGING)
    _write_module(directory, failing, COUNTED_FAILURE.format(path=attempts))
    _write_module(directory, fine, MODULE.format(version=1))
    path = [str(directory), *sys.path]
    monkeypatch.setenv(PRELOAD_JOB_MODULES_ENV, "1")
    monkeypatch.setattr(forkserver, "IMPORT_TIMEOUT", 0.3)
    modules = JobModules()
    for _ in range(2):
        modules.prepare(_global(failing, "tag"), path)
    with open(attempts) as f:
        assert f.read().splitlines() == ["attempt"]  # failed once: left to the workers after that
    assert failing not in sys.modules and modules.enabled

    modules.prepare(_global(hanging, "tag"), path)
    assert hanging not in sys.modules  # interrupted (it imports after 60 s)
    assert not modules.enabled
    modules.prepare(_global(fine, "tag"), path)
    assert fine not in sys.modules


def test_job_modules_import_the_users_modules_afresh_but_keep_libraries(module_dir, monkeypatch):
    directory, names = module_dir
    library = next(m for m in ("colorsys", "wave", "chunk", "imghdr", "sndhdr") if m not in sys.modules)
    user = f"fc_startup_user_{uuid.uuid4().hex}"
    names.extend([user, library])
    text = f"import {library}\nVERSION = {{version}}\n"
    _write_module(directory, user, text.format(version=1), mtime_ns=1_000_000_000_000_000_000)
    path = [str(directory), *sys.path]
    monkeypatch.setenv(PRELOAD_JOB_MODULES_ENV, "1")
    modules = JobModules()
    modules.prepare(_global(user, "VERSION"), path)
    first_user, first_library = sys.modules[user], sys.modules[library]
    _write_module(directory, user, text.format(version=2), mtime_ns=1_000_000_003_000_000_000)
    modules.prepare(_global(user, "VERSION"), path)
    assert sys.modules[user] is not first_user and sys.modules[user].VERSION == 2
    assert sys.modules[library] is first_library  # a library is not imported twice


def test_pickled_modules_scans_only_the_first_part_of_a_large_pickle():
    import colorsys
    import json

    data = pickle.dumps(
        [json.dumps, list(range(20_000)), colorsys.rgb_to_hsv], protocol=pickle.HIGHEST_PROTOCOL
    )
    assert {"json", "colorsys"} <= pickled_modules(data)
    head = pickled_modules(data, limit=1000)
    assert "json" in head and "colorsys" not in head
