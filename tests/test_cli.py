import json
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from nirnet import __version__
from nirnet.cli.main import app

runner = CliRunner()


def test_help_and_version():
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0 and "data" in result.output
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0 and __version__ in result.output


def test_console_script_runs():
    out = subprocess.run([sys.executable, "-m", "nirnet.cli.main", "--version"], capture_output=True, text=True)
    assert out.returncode == 0 and __version__ in out.stdout


@pytest.mark.shared
def test_data_summary_bench_dev(shared_data):
    result = runner.invoke(app, ["data", "summary", str(shared_data / "bench-dev"), "--json"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.output)
    assert payload["layout"] == "csv" and payload["total"] == 183
    assert payload["subsets"]["real"] == {"real": 91, "fake": 0}


def test_data_check_reports_bad_files(tmp_path):
    from nirnet.testing import write_input_corpus

    cases = write_input_corpus(tmp_path / "fake")
    (tmp_path / "real").mkdir()
    result = runner.invoke(app, ["data", "check", str(tmp_path)])
    assert result.exit_code == 1
    n_bad = sum(1 for c in cases if not c.loads and c.path.is_file())
    assert result.output.count("bad ") == n_bad
