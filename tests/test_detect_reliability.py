"""`nirnet detect` never loses a result and never hangs: odd folder entries, file lists from spreadsheets, output
targets that cannot be written, full or closed stdout, streamed results, interrupts."""

from __future__ import annotations

import errno
import json
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
from PIL import Image
from typer.testing import CliRunner

import nirnet
from nirnet.cli.main import app
from nirnet.detect import Detector
from nirnet.testing import synthetic_photo

runner = CliRunner()


def _photo(path: Path, seed: int = 0) -> Path:
    Image.fromarray(synthetic_photo(64, 80, seed=seed)).save(path)
    return path


def _detect(model_dir: Path, *args: object):
    return runner.invoke(app, ["detect", *map(str, args), "--model", str(model_dir), "--workers", "0"])


def _payload(result) -> dict:
    return json.loads(result.stdout[result.stdout.index("{") :])


# ---------------------------------------------------------------- inputs


def test_folder_scan_reports_fifos_broken_links_and_loops(model_dir, tmp_path):
    _photo(tmp_path / "good.png")
    os.mkfifo(tmp_path / "pipe.png")  # opened for reading, it would block the scan forever
    (tmp_path / "gone.png").symlink_to(tmp_path / "nowhere.png")
    (tmp_path / "loop.png").symlink_to(tmp_path / "loop.png")
    (tmp_path / "again").symlink_to(tmp_path)  # a link to a folder above: never followed
    result = _detect(model_dir, tmp_path, "--json")
    assert result.exit_code == 0, result.output
    payload = _payload(result)
    assert [Path(r["path"]).name for r in payload["results"]] == ["good.png"]
    skipped = {Path(s["path"]).name: s["reason"] for s in payload["skipped"]}
    assert "FIFO" in skipped["pipe.png"]
    assert "broken symbolic link" in skipped["gone.png"]
    assert "loop" in skipped["loop.png"]
    assert "link to a folder" in skipped["again"]
    assert result.stderr.count("skipped") == 4


@pytest.mark.parametrize("encoding", ["utf-8-sig", "utf-16"])
def test_file_lists_saved_by_spreadsheets_are_read(model_dir, tmp_path, encoding):
    _photo(tmp_path / "a.png")
    (tmp_path / "list.csv").write_bytes("path,label\r\na.png,x\r\n".encode(encoding))
    result = _detect(model_dir, tmp_path / "list.csv", "--json")
    assert result.exit_code == 0, result.output
    assert [Path(r["path"]).name for r in _payload(result)["results"]] == ["a.png"]


# ---------------------------------------------------------------- outputs


def _one_line_error(result, code: int, *words: str) -> None:
    assert result.exit_code == code, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and all(w in lines[0] for w in words), result.stderr


def _unwritable_target(tmp_path: Path, kind: str) -> Path:
    if kind == "under a file":
        return _photo(tmp_path / "file.png") / "out.csv"
    if kind == "folder":
        (tmp_path / "out.csv").mkdir()
    elif kind == "symlink":
        (tmp_path / "kept.csv").write_text("precious\n")
        (tmp_path / "out.csv").symlink_to(tmp_path / "kept.csv")
    elif kind == "fifo":
        os.mkfifo(tmp_path / "out.csv")
    elif kind == "device":
        try:  # a twin of /dev/null, so the test never goes near the real device nodes
            os.mknod(tmp_path / "out.csv", 0o666 | stat.S_IFCHR, os.makedev(1, 3))
        except PermissionError:
            pytest.skip("making a device node needs root")
    return tmp_path / "out.csv"


@pytest.mark.parametrize("kind", ["under a file", "folder", "symlink", "fifo", "device"])
def test_csv_target_that_cannot_be_written_is_refused_before_scoring(model_dir, tmp_path, kind, monkeypatch):
    images = tmp_path / "images"
    images.mkdir()
    _photo(images / "a.png")
    out = _unwritable_target(tmp_path, kind)
    before = out.lstat().st_mode if os.path.lexists(out) else None
    monkeypatch.setattr("nirnet.detect.Detector.predict_paths", lambda *a, **k: pytest.fail("scored"))
    result = _detect(model_dir, images, "--csv", out, "--json")
    _one_line_error(result, 2, "--csv")
    assert result.stdout == ""
    if before is not None:  # never replaced by a plain file
        assert out.lstat().st_mode == before
    if kind == "symlink":
        assert (tmp_path / "kept.csv").read_text() == "precious\n"


def test_a_failed_csv_write_comes_after_complete_results(model_dir, tmp_path, monkeypatch):
    """The file system fails the write itself (read-only, full): the JSON is on stdout, then one error line."""
    _photo(tmp_path / "a.png")
    _photo(tmp_path / "b.png", seed=1)

    def read_only(*args, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr("nirnet._atomic.atomic_write_text", read_only)
    result = _detect(model_dir, tmp_path, "--json", "--csv", tmp_path / "out.csv")
    _one_line_error(result, 1, "--csv", "Read-only file system")
    assert [Path(r["path"]).name for r in _payload(result)["results"]] == ["a.png", "b.png"]


def _strict_json(text: str) -> object:
    """json.loads, refusing the lone surrogates that Python's parser lets through and strict parsers do not."""

    def check(value: object) -> object:
        if isinstance(value, str):
            value.encode("utf-8")
        elif isinstance(value, dict):
            [check(k) or check(v) for k, v in value.items()]
        elif isinstance(value, list):
            [check(v) for v in value]
        return value

    return check(json.loads(text))


def test_json_output_names_non_utf8_files_without_lone_surrogates(model_dir, tmp_path):
    name = os.fsdecode(b"caf\xe9.png")  # Latin-1 bytes: not valid UTF-8
    try:
        _photo(tmp_path / name)
    except (UnicodeEncodeError, OSError):
        pytest.skip("the file system refuses non-UTF-8 names")
    result = _detect(model_dir, tmp_path, "--json")
    assert result.exit_code == 0, result.output
    payload = _strict_json(result.stdout)
    assert Path(payload["results"][0]["path"]).name == "caf\\xe9.png"


def _cli_process(*args: object, **popen) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(Path(nirnet.__file__).parents[1])}
    cmd = [sys.executable, "-m", "nirnet.cli.main", "detect", *map(str, args)]
    return subprocess.Popen(cmd, env=env, stderr=subprocess.PIPE, text=True, **popen)


@pytest.mark.parametrize("stdout", ["full", "closed"])
def test_a_full_or_closed_stdout_is_one_line_and_the_csv_is_written(model_dir, tmp_path, stdout):
    _photo(tmp_path / "a.png")
    out = tmp_path / "out.csv"
    args = (tmp_path / "a.png", "--model", model_dir, "--workers", "0", "--csv", out)
    if stdout == "full":
        with open("/dev/full", "w") as full:
            proc = _cli_process(*args, "--json", stdout=full)
    else:
        proc = _cli_process(*args, stdout=subprocess.PIPE)
        proc.stdout.close()  # a reader that went away, like `| head -1` after its line
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 1, err
    assert "Traceback" not in err and "Exception ignored" not in err
    reason = "No space left on device" if stdout == "full" else "Broken pipe"
    lines = [line for line in err.splitlines() if line.strip()]
    assert lines == [f"error: could not write the results to stdout: {reason}"]
    assert out.read_text().count("a.png") == 1


# ---------------------------------------------------------------- streamed results, interrupts


def _lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_jsonl_keeps_what_was_scored_through_ctrl_c_and_resume_scores_the_rest(model_dir, tmp_path, monkeypatch):
    images = tmp_path / "images"
    images.mkdir()
    for i in range(4):
        _photo(images / f"{i}.png", seed=i)
    out = tmp_path / "scores.jsonl"
    real = Detector.predict_paths
    asked: list[list[str]] = []

    def interrupted_after_two(self, paths, **kwargs):
        asked.append([Path(p).name for p in paths])
        for i, result in enumerate(real(self, paths, **kwargs)):
            if i == 2:
                raise KeyboardInterrupt
            yield result

    monkeypatch.setattr(Detector, "predict_paths", interrupted_after_two)
    result = _detect(model_dir, images, "--jsonl", out)
    assert result.exit_code == 130, result.output
    assert "interrupted after 2 of 4 images: 2 results kept in" in " ".join(result.stderr.split())
    kept = _lines(out)
    assert [Path(r["path"]).name for r in kept] == ["0.png", "1.png"] and kept[0]["probability"] is not None
    with out.open("a") as handle:
        handle.write('{"path": "2.p')  # a line torn by a kill -9 while it was written

    def recorded(self, paths, **kwargs):
        asked.append([Path(p).name for p in paths])
        return real(self, paths, **kwargs)

    monkeypatch.setattr(Detector, "predict_paths", recorded)
    result = _detect(model_dir, images, "--jsonl", out, "--resume", "--json")
    assert result.exit_code == 0, result.output
    assert asked[-1] == ["2.png", "3.png"]  # the first two were not scored again
    payload = _payload(result)
    assert [Path(r["path"]).name for r in payload["results"]] == ["0.png", "1.png", "2.png", "3.png"]
    assert payload["results"][0]["probability"] == kept[0]["probability"]
    assert [Path(r["path"]).name for r in _lines(out)] == ["0.png", "1.png", "2.png", "3.png"]


def test_jsonl_misuse_is_one_line_before_scoring(model_dir, tmp_path, monkeypatch):
    _photo(tmp_path / "a.png")
    out = tmp_path / "scores.jsonl"
    line = json.dumps({"path": "elsewhere.png", "probability": 0.5, "error": None, "model": "another_model"})
    out.write_text(line + "\n")
    monkeypatch.setattr(Detector, "predict_paths", lambda *a, **k: pytest.fail("scored"))
    _one_line_error(_detect(model_dir, tmp_path / "a.png", "--jsonl", out), 2, "--resume")  # would mix two runs
    _one_line_error(_detect(model_dir, tmp_path / "a.png", "--jsonl", out, "--resume"), 2, "another_model")
    _one_line_error(_detect(model_dir, tmp_path / "a.png", "--resume"), 2, "--jsonl")
    (tmp_path / "link.jsonl").symlink_to(out)
    _one_line_error(_detect(model_dir, tmp_path / "a.png", "--jsonl", tmp_path / "link.jsonl"), 2, "symbolic link")
    assert out.read_text() == line + "\n"


SLOW_MODEL = """
import sys, time
from nirnet.detect import Detector
score = Detector.score_prepared
def slow(self, items):  # a slow model: the loader's workers sit waiting for work, as behind a big model
    time.sleep(0.4)
    return score(self, items)
Detector.score_prepared = slow
from nirnet.cli.main import app
from nirnet.detect import Detector
app(sys.argv[1:])
"""


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
        except (OSError, IndexError):
            continue
    return found


def _running(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads processes from /proc")
def test_sigterm_stops_detect_and_its_loader_workers_at_once(model_dir, tmp_path):
    for i in range(6):
        _photo(tmp_path / f"{i}.png", seed=i)
    env = {**os.environ, "PYTHONPATH": str(Path(nirnet.__file__).parents[1])}
    args = ["detect", tmp_path, "--model", model_dir, "--workers", "2", "--batch-size", "1"]
    proc = subprocess.Popen(
        [sys.executable, "-c", SLOW_MODEL, *map(str, args)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    deadline = time.monotonic() + 60
    while len(workers := _children(proc.pid)) < 2 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert len(workers) == 2, "the loader's workers did not start"
    time.sleep(0.8)  # scoring under way, the workers waiting for the model
    proc.send_signal(signal.SIGTERM)
    sent = time.monotonic()
    while any(_running(w) for w in workers) and time.monotonic() - sent < 10:
        time.sleep(0.02)
    gone = time.monotonic() - sent
    err = proc.communicate(timeout=30)[1].decode()
    assert proc.returncode == 143, err
    assert gone < 2, f"the loader's workers lived {gone:.1f} s after SIGTERM"
    assert "interrupted after" in err and "Traceback" not in err
