"""The example service python/fraud_scoring_service.py: scores over HTTP, keeps state across restarts."""

from __future__ import annotations

import importlib.util
import json
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

SERVICE = Path(__file__).resolve().parents[2] / "python" / "fraud_scoring_service.py"


@pytest.fixture(scope="module")
def service() -> Any:
    spec = importlib.util.spec_from_file_location("fraud_scoring_service", SERVICE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def start(service: Any, state_dir: Path) -> tuple[Any, Any, str]:
    server, scorer = service.serve("127.0.0.1", 0, str(state_dir))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, scorer, f"http://127.0.0.1:{server.server_port}"


def post(url: str, body: Any) -> tuple[int, dict]:
    req = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST")
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def test_scores_requests_and_keeps_state_across_a_restart(service: Any, tmp_path: Path) -> None:
    server, scorer, url = start(service, tmp_path)
    status, body = post(url + "/score", {"account": "a", "amount": 0.5})
    assert (status, body["alerts"]) == (200, [])
    status, body = post(url + "/score", {"account": "a", "amount": 900})
    assert status == 200
    assert body["alerts"] == [{"account": "a", "amount": 900.0, "reason": "small then large within 60 s"}]
    status, body = post(url + "/score", {"account": "a", "amount": 900})
    assert body["alerts"] == []  # the flag was cleared by the alert
    status, body = post(url + "/score", {"amount": 3})
    assert status == 400 and "account" in body["error"]
    assert post(url + "/score", {"account": "b", "amount": 0.2})[0] == 200
    service.shutdown(server, scorer)  # takes a savepoint

    server, scorer, url = start(service, tmp_path)
    assert scorer.restored_from is not None
    status, body = post(url + "/score", {"account": "b", "amount": 700})
    assert body["alerts"] == [{"account": "b", "amount": 700.0, "reason": "small then large within 60 s"}]
    with urllib.request.urlopen(url + "/health", timeout=10) as resp:
        assert json.loads(resp.read()) == {"status": "RUNNING", "scored": 1}
    service.shutdown(server, scorer)


def test_periodic_savepoints_survive_a_crash(service: Any, tmp_path: Path) -> None:
    server, scorer = service.serve("127.0.0.1", 0, str(tmp_path), snapshot_every_s=0.2)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_port}"
    assert post(url + "/score", {"account": "c", "amount": 0.1})[0] == 200
    marker = tmp_path / "LATEST"
    before = marker.read_text() if marker.exists() else None
    seen: set = set()
    deadline = time.monotonic() + 20
    # the second savepoint marked after the request was cut after it (one may have been in flight)
    while len(seen) < 2 and time.monotonic() < deadline:
        if marker.exists() and marker.read_text() != before:
            seen.add(marker.read_text())
        time.sleep(0.02)
    assert len(seen) >= 2
    # a crash: no savepoint at shutdown
    server.shutdown()
    server.server_close()
    scorer.ticker_stop.set()
    scorer.close()

    server, scorer, url = start(service, tmp_path)
    status, body = post(url + "/score", {"account": "c", "amount": 600})
    assert body["alerts"] == [{"account": "c", "amount": 600.0, "reason": "small then large within 60 s"}]
    service.shutdown(server, scorer)
