"""A fraud-scoring HTTP endpoint with a flinkcore job embedded in it (standard library only).

Each ``POST /score`` with a JSON transaction ``{"account": "acc-1", "amount": 0.5}`` is pushed
through an embedded job on the request's own thread, and the response carries the alerts the job
produced for it, synchronously, in microseconds of job time:

    push source -> map(validate) -> key_by(account) -> FraudDetector (ValueState + timer) -> map(alert)

The detector is Flink's fraud-detection walkthrough: a transaction under $1 followed within one
minute (processing time) by one over $500 on the same account raises an alert. Its state and
pending timers survive restarts: ``POST /snapshot``, shutdown and, with ``--snapshot-every S``,
a ticker (written on a thread while requests go on) write savepoints under ``--state-dir``, and
the service restores the newest one when it starts.

The HTTP server handles requests on several threads; the job takes one pusher at a time (a second
concurrent call gets an error, not a wait), so the service puts a lock in front of it, which a
ticker thread firing due timers between requests (``fire_timers``) takes as well.

Run::

    python python/fraud_scoring_service.py --port 8080 --state-dir /tmp/fraud-state
    curl -s -XPOST localhost:8080/score -d '{"account": "acc-1", "amount": 0.5}'
    curl -s -XPOST localhost:8080/score -d '{"account": "acc-1", "amount": 900}'
    # {"alerts": [{"account": "acc-1", "amount": 900.0, "reason": "small then large within 60 s"}], ...}
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from flinkcore.common import Types
from flinkcore.datastream import KeyedProcessFunction, StreamExecutionEnvironment
from flinkcore.datastream.state import ValueStateDescriptor

SMALL_AMOUNT = 1.00
LARGE_AMOUNT = 500.00
ONE_MINUTE_MS = 60 * 1000


class FraudDetector(KeyedProcessFunction):
    """Per account: a small transaction, then a large one within a minute -> alert."""

    def open(self, runtime_context: Any) -> None:
        self.flag = runtime_context.get_state(ValueStateDescriptor("small-seen", Types.BOOLEAN()))
        self.timer = runtime_context.get_state(ValueStateDescriptor("timer", Types.LONG()))

    def process_element(self, tx: dict, ctx: Any) -> Any:
        if self.flag.value():
            if tx["amount"] > LARGE_AMOUNT:
                yield {**tx, "reason": "small then large within 60 s"}
            self._clear(ctx)
        if tx["amount"] < SMALL_AMOUNT:
            self.flag.update(True)
            timer = ctx.timer_service().current_processing_time() + ONE_MINUTE_MS
            ctx.timer_service().register_processing_time_timer(timer)
            self.timer.update(timer)

    def on_timer(self, timestamp: int, ctx: Any) -> Any:
        self.flag.clear()
        self.timer.clear()
        return []

    def _clear(self, ctx: Any) -> None:
        timer = self.timer.value()
        if timer is not None:
            ctx.timer_service().delete_processing_time_timer(timer)
        self.flag.clear()
        self.timer.clear()


def validate(tx: dict) -> dict:
    return {"account": str(tx["account"]), "amount": float(tx["amount"])}


def build_job(restore_from: str | None = None) -> Any:
    """The scoring job, started embedded (optionally from a savepoint)."""
    env = StreamExecutionEnvironment.get_execution_environment()
    (
        env.from_push_source("transactions")
        .uid("transactions")
        .map(validate)
        .uid("validate")
        .key_by(lambda tx: tx["account"])
        .process(FraudDetector())
        .uid("fraud-detector")
        .map(lambda alert: {k: alert[k] for k in ("account", "amount", "reason")})
        .uid("format")
    )
    return env.execute_embedded("fraud scoring", restore_from=restore_from)


class Scorer:
    """The embedded job behind a lock (one pusher at a time), with its savepoints."""

    def __init__(self, state_dir: str | None) -> None:
        self.state_dir = Path(state_dir) if state_dir else None
        self.lock = threading.Lock()
        restore = self.latest_savepoint()
        self.job = build_job(restore)
        self.restored_from = restore
        self.scored = 0
        self.ticker_stop = threading.Event()
        self.marker_lock = threading.Lock()

    def latest_savepoint(self) -> str | None:
        if self.state_dir is None or not self.state_dir.is_dir():
            return None
        marker = self.state_dir / "LATEST"
        return marker.read_text().strip() if marker.is_file() else None

    def score(self, tx: dict) -> tuple[list, float]:
        tx = validate(tx)  # bad input is the caller's error (400), never a failed job
        with self.lock:
            t0 = time.perf_counter()
            alerts = self.job.push(tx)
            took_us = (time.perf_counter() - t0) * 1e6
            self.scored += 1
        return alerts, took_us

    def snapshot(self) -> str:
        """A savepoint now (the caller waits until it is durable), marked as the newest."""
        if self.state_dir is None:
            raise RuntimeError("start the service with --state-dir to take savepoints")
        with self.lock:
            path = self.job.snapshot(self.state_dir)
        self._mark_latest(path)
        return path

    def _mark_latest(self, path: str) -> None:
        with self.marker_lock:
            tmp = self.state_dir / "LATEST.tmp"
            tmp.write_text(path)
            tmp.replace(self.state_dir / "LATEST")  # atomic: a crash leaves the previous marker

    def tick(
        self, stop: threading.Event, every_s: float = 1.0, snapshot_every_s: float | None = None
    ) -> None:
        """Fire due processing-time timers while no request comes (a push fires them too), and take
        a savepoint every ``snapshot_every_s`` seconds, written on a thread while requests go on;
        under the same lock as the pushes: the job takes one caller at a time."""
        last_snapshot = time.monotonic()
        while not stop.wait(every_s):
            with self.lock:
                if self.job.status != "RUNNING":
                    return
                self.job.fire_timers()  # the detector's timers only clear state: no output
                if snapshot_every_s and time.monotonic() - last_snapshot >= snapshot_every_s:
                    last_snapshot = time.monotonic()
                    self.job.snapshot_async(self.state_dir).add_done_callback(self._on_savepoint)

    def _on_savepoint(self, future: Any) -> None:
        """On the writer thread, once a periodic savepoint is durable (or failed)."""
        if future.exception() is None:
            self._mark_latest(future.result())
        else:
            print(f"periodic savepoint failed: {future.exception()}", file=sys.stderr)

    def close(self) -> None:
        with self.lock:
            self.job.close()


def make_handler(scorer: Scorer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _reply(self, status: int, body: dict) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            if self.path == "/health":
                self._reply(200, {"status": scorer.job.status, "scored": scorer.scored})
            else:
                self._reply(404, {"error": f"no route {self.path}"})

        def do_POST(self) -> None:  # noqa: N802
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            if self.path == "/score":
                try:
                    tx = json.loads(body)
                    alerts, took_us = scorer.score(tx)
                except (ValueError, KeyError, TypeError) as e:
                    self._reply(400, {"error": f"bad transaction: {type(e).__name__}: {e}"})
                    return
                self._reply(200, {"alerts": alerts, "job_us": round(took_us, 1)})
            elif self.path == "/snapshot":
                try:
                    self._reply(200, {"savepoint": scorer.snapshot()})
                except RuntimeError as e:
                    self._reply(409, {"error": str(e)})
            else:
                self._reply(404, {"error": f"no route {self.path}"})

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - quiet by default
            pass

    return Handler


def serve(
    host: str, port: int, state_dir: str | None, snapshot_every_s: float | None = None
) -> tuple[ThreadingHTTPServer, Scorer]:
    """Start the scorer and an HTTP server for it (not yet serving: call serve_forever)."""
    scorer = Scorer(state_dir)
    server = ThreadingHTTPServer((host, port), make_handler(scorer))
    if snapshot_every_s and state_dir is None:
        raise ValueError("periodic savepoints need --state-dir")
    every = min(1.0, snapshot_every_s or 1.0)
    threading.Thread(
        target=scorer.tick, args=(scorer.ticker_stop, every, snapshot_every_s), daemon=True
    ).start()
    return server, scorer


def shutdown(server: ThreadingHTTPServer, scorer: Scorer) -> None:
    """Stop serving, keep the job's state in a savepoint (when there is a state dir), close it."""
    server.shutdown()
    server.server_close()
    scorer.ticker_stop.set()
    if scorer.state_dir is not None:
        scorer.snapshot()
    scorer.close()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="fraud-scoring HTTP service with an embedded flinkcore job")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=8080)
    ap.add_argument("--state-dir", default=None, help="savepoints go here; the newest is restored at start")
    ap.add_argument("--snapshot-every", type=float, default=None, help="seconds between periodic savepoints")
    args = ap.parse_args(argv)
    server, scorer = serve(args.host, args.port, args.state_dir, args.snapshot_every)
    where = f"restored from {scorer.restored_from}" if scorer.restored_from else "fresh state"
    print(f"fraud scoring on http://{args.host}:{server.server_port} ({where})", flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        while not stop.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    shutdown(server, scorer)
    return 0


if __name__ == "__main__":
    sys.exit(main())
