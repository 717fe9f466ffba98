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
