"""Log records of worker processes, handled by the driver's logging configuration.

A job in one process logs through the caller's handlers (``logging.basicConfig(level=INFO)``
in the script shows a map function's ``log.info``). Worker processes are forked from a fork
server that has no such configuration, so without this their records below WARNING were lost and
the rest printed bare by Python's last-resort handler. Instead, as a local Flink cluster shows its
TaskManagers' logs in the client's console, the driver sends the levels of its loggers with the
job (:func:`driver_levels`, in the graph's config), a worker applies them and forwards every
record its loggers let through (:class:`Forwarder`), and the driver hands each to the logger of
its name (:func:`handle`): the same handlers, formats and files as in one process. The record
keeps the worker's process id, thread and time; its message is formatted in the worker (the
arguments need not be picklable) and an exception travels as its formatted traceback.

Records are sent from the worker's task loop, between steps and before every report to the
driver (so a failure's records come before the failure). A record logged while a kept worker
waits for its next job (by a thread of the user's) goes with the next job's first records.
"""

from __future__ import annotations

import logging
import pickle
from collections import deque
from typing import Any

__all__ = ["CONFIG_KEY", "Forwarder", "driver_levels", "handle"]

#: the graph config entry that carries the driver's logger levels to the workers
CONFIG_KEY = "driver_log_levels"


def driver_levels() -> dict[str, Any]:
    """This process's logging levels: the root's, every named logger's that is set, and
    ``logging.disable``'s."""
    manager = logging.Logger.manager
    named = {
        name: logger.level
        for name, logger in list(manager.loggerDict.items())
        if isinstance(logger, logging.Logger) and logger.level != logging.NOTSET
    }
    return {"root": logging.root.level, "named": named, "disable": manager.disable}


def handle(record: dict[str, Any]) -> None:
    """Handle a worker's record (as :meth:`Forwarder.prepare` made it) by the logger of its name."""
    rec = logging.makeLogRecord(record)
    logger = logging.getLogger(rec.name) if rec.name != "root" else logging.root
    logger.handle(rec)


class Forwarder(logging.Handler):
    """The root handler of a worker process: keeps each record for the driver (thread-safe; the
    worker sends them, :meth:`take`). :meth:`install` sets the driver's levels for a job."""

    def __init__(self) -> None:
        super().__init__(logging.NOTSET)
        self._records: deque[dict[str, Any]] = deque()
        self._levels_set: set[str] = set()

    def install(self, levels: dict[str, Any] | None) -> None:
        """Be the root logger's only handler, with the driver's ``levels`` (those of the last
        job that set a level and this one does not are unset)."""
        root = logging.root
        for h in list(root.handlers):
            if h is not self:
                root.removeHandler(h)
        if self not in root.handlers:
            root.addHandler(self)
        if levels is None:
            return
        named = levels.get("named", {})
        for name in self._levels_set - named.keys():
            logging.getLogger(name).setLevel(logging.NOTSET)
        for name, level in named.items():
            logging.getLogger(name).setLevel(level)
        self._levels_set = set(named)
        root.setLevel(levels.get("root", logging.WARNING))
        logging.disable(levels.get("disable", logging.NOTSET))

    @property
    def pending(self) -> bool:
        return bool(self._records)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self._records.append(self.prepare(record))
        except Exception:  # noqa: BLE001 - as logging does for a failing handler
            self.handleError(record)

    @staticmethod
    def prepare(record: logging.LogRecord) -> dict[str, Any]:
        """The record's attributes, its message formatted, its exception as text, every extra
        attribute that does not pickle as its ``repr``."""
        d = dict(record.__dict__)
        d["msg"] = record.getMessage()
        d["args"] = None
        if record.exc_info:
            d["exc_text"] = record.exc_text or logging.Formatter().formatException(record.exc_info)
        d["exc_info"] = None
        for k, v in d.items():
            if not isinstance(v, str | int | float | type(None)):
                try:
                    pickle.dumps(v)
                except Exception:  # noqa: BLE001 - any value a user put in ``extra``
                    d[k] = repr(v)
        return d

    def take(self) -> list[dict[str, Any]]:
        """The records kept so far, oldest first (and forget them)."""
        records = self._records
        return [records.popleft() for _ in range(len(records))]
