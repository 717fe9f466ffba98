import subprocess
import sys

import flinkcore
from flinkcore.cli import main


def test_version_from_python_m():
    out = subprocess.run([sys.executable, "-m", "flinkcore", "--version"], capture_output=True, text=True)
    assert out.returncode == 0
    assert out.stdout.strip() == f"flinkcore {flinkcore.__version__}"


def test_run_executes_a_job_script_as_main(tmp_path, capsys):
    job = tmp_path / "job.py"
    job.write_text("import sys\nif __name__ == '__main__':\n    print('ran', sys.argv[1:])\n")
    assert main(["run", str(job), "a", "b"]) == 0
    assert "ran ['a', 'b']" in capsys.readouterr().out


def test_run_missing_job_is_a_clear_error(tmp_path, capsys):
    assert main(["run", str(tmp_path / "nope.py")]) == 2
    assert "no such job file" in capsys.readouterr().err
