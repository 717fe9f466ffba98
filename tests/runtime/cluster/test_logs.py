"""Log records of worker processes reach the driver's handlers, with the driver's levels, as
they do for a job in one process."""

from __future__ import annotations

import logging
import threading

import pytest
from recovery_support import graph_with_sink

from flinkcore.datastream.connectors import NumberSequenceSource
from flinkcore.runtime.cluster import ClusterJob, logs, release_workers

NAME = "fc_test_logs"


class Kept(logging.Handler):
    def __init__(self):
        super().__init__(logging.NOTSET)
        self.records: list[logging.LogRecord] = []

    def emit(self, record):
        self.records.append(record)


@pytest.fixture
def kept():
    """A handler on the test's logger (INFO unless a test sets another level), removed after."""
    logger = logging.getLogger(NAME)
    handler = Kept()
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    yield handler
    logger.removeHandler(handler)
    logger.setLevel(logging.NOTSET)
    logging.getLogger(f"{NAME}.quiet").setLevel(logging.NOTSET)


def _run(build, parallelism=2):
    graph, sink = graph_with_sink(build, parallelism)
    job = ClusterJob(graph)
    job.run()
    return job, sink.results


def _logging_map(x):
    log = logging.getLogger(NAME)
    log.debug("debug %d", x)  # below the driver's INFO: not sent
    log.info("saw %d of %s", x, "numbers")
    logging.getLogger(f"{NAME}.quiet").info("quiet %d", x)
    return x


def test_worker_records_reach_the_drivers_handlers_at_its_levels(kept):
    logging.getLogger(f"{NAME}.quiet").setLevel(logging.WARNING)
    job, results = _run(lambda env: env.from_source(NumberSequenceSource(0, 19), None, "n").map(_logging_map))
    assert sorted(results) == list(range(20))
    messages = sorted(r.getMessage() for r in kept.records)
    assert messages == sorted(f"saw {x} of numbers" for x in range(20))
    assert {r.process for r in kept.records} == set(job.pids)  # each from the worker that logged it
    assert all(r.levelno == logging.INFO and r.name == NAME for r in kept.records)


def test_the_levels_are_those_of_the_drivers_next_job(kept):
    build = lambda env: env.from_source(NumberSequenceSource(0, 9), None, "n").map(_logging_map)  # noqa: E731
    logging.getLogger(NAME).setLevel(logging.DEBUG)
    job1, _ = _run(build)
    assert sum(r.levelno == logging.DEBUG for r in kept.records) == 10
    kept.records.clear()
    logging.getLogger(NAME).setLevel(logging.NOTSET)  # the root's WARNING from now on
    job2, _ = _run(build)
    assert job2.pids == job1.pids  # the same (kept) workers
    assert kept.records == []


def _failing_map(x):
    if x == 7:
        try:
            raise KeyError("no such customer")
        except KeyError:
            logging.getLogger(NAME).exception("lookup of %d failed", x, extra={"lock": threading.Lock()})
        raise ValueError("bad record 7")
    return x


def test_a_failed_jobs_records_come_with_the_traceback_and_before_the_failure(kept):
    with pytest.raises(Exception, match="bad record 7"):
        _run(lambda env: env.from_source(NumberSequenceSource(0, 9), None, "n").map(_failing_map))
    (record,) = kept.records
    assert record.getMessage() == "lookup of 7 failed" and record.levelno == logging.ERROR
    assert "KeyError: 'no such customer'" in record.exc_text and "Traceback" in record.exc_text
    assert record.lock.startswith("<unlocked _thread.lock")  # what does not pickle comes as its repr
    assert "no such customer" in logging.Formatter().format(record)


def test_the_driver_levels_name_every_set_logger():
    logging.getLogger(f"{NAME}.a").setLevel(logging.ERROR)
    try:
        levels = logs.driver_levels()
        assert levels["named"][f"{NAME}.a"] == logging.ERROR
        assert levels["root"] == logging.root.level
    finally:
        logging.getLogger(f"{NAME}.a").setLevel(logging.NOTSET)


def teardown_module():
    release_workers()
