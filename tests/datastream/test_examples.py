"""The example jobs and the README example run, and compute what they should."""

import re
import runpy
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _reference_alerts(n: int) -> int:
    """The fraud rule computed directly, without flinkcore."""
    sys.path.insert(0, str(ROOT / "python"))
    try:
        import fraud_detection as fd
    finally:
        sys.path.pop(0)
    deadline: dict[int, int] = {}
    alerts = 0
    for i in range(n):
        account, amount, ts = fd.transaction(i)
        d = deadline.get(account)
        if d is not None and ts > d:
            del deadline[account]
            d = None
        if d is not None:
            if amount > fd.LARGE_AMOUNT:
                alerts += 1
            del deadline[account]
        if amount < fd.SMALL_AMOUNT:
            deadline[account] = ts + fd.ONE_MINUTE
    return alerts


def test_fraud_detection_example_matches_reference(capsys):
    module = runpy.run_path(str(ROOT / "python" / "fraud_detection.py"))
    alerts = module["main"](50_000)
    out = capsys.readouterr().out
    assert alerts == _reference_alerts(50_000) > 0
    assert out.count("ALERT account=") == min(alerts, 10)
    assert re.search(r"50,000 transactions, [\d,]+ alerts in [\d.]+ s: [\d,]+ transactions/s", out)


def test_readme_example_runs_and_prints_window_sums():
    text = (ROOT / "README.md").read_text()
    code = re.search(r"```python\n(.*?)```", text, re.S).group(1)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    # alice: 12.0 in [1000, 2000) and 7.5 in [2000, 3000); bob: 99.5 in [1000, 2000)
    assert sorted(proc.stdout.strip().splitlines()) == sorted(
        ["('alice', 12.0, 1000)", "('bob', 99.5, 1200)", "('alice', 7.5, 2500)"]
    ), proc.stdout


def test_log_processing_example(tmp_path):
    module = runpy.run_path(str(ROOT / "python" / "log_processing.py"))
    counts, dead = module["main"](None, str(tmp_path / "clean"))
    assert counts == [("2xx", 3), ("4xx", 1), ("5xx", 1)]
    assert dead == ["garbage line that is not a request"]
    written = [line for f in (tmp_path / "clean").iterdir() for line in f.read_text().splitlines()]
    assert len(written) == 5 and all(line.startswith("Row(ts=") for line in written)


def test_iot_monitoring_example_matches_reference():
    module = runpy.run_path(str(ROOT / "python" / "iot_monitoring.py"))
    alerts = module["main"](module["SENSORS"] * 60)
    # reference: the same rules applied directly to each sensor's readings
    reading, limit, silence = module["reading"], module["LIMIT"], module["SILENCE_MS"]
    per_sensor: dict = {}
    for i in range(module["SENSORS"] * 60):
        r = reading(i)
        if r is not None:
            per_sensor.setdefault(r[0], []).append(r)
    expected = []
    for sensor, rs in per_sensor.items():
        recent = []
        for _, t, ts in rs:
            recent = [*recent, t][-3:]
            if len(recent) == 3 and all(x > limit for x in recent):
                expected.append(("OVERHEAT", sensor, ts))
                recent = []
        for (_, _, a), (_, _, b) in zip(rs, rs[1:], strict=False):
            if b - a > silence:
                expected.append(("SILENT", sensor, a + silence))
        expected.append(("SILENT", sensor, rs[-1][2] + silence))
    assert sorted(alerts) == sorted(expected)
    assert {a[1] for a in alerts if a[0] == "SILENT" and a[2] == 2900} == module["FAILING"]
