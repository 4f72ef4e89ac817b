"""Where `nirnet detect` puts its results without losing any: output files checked before scoring, JSON text that
strict parsers accept, a results stream written line by line, and a full or closed stdout reported in one line."""

from __future__ import annotations

import errno
import json
import os
import stat
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from rich.console import Console

from nirnet.cli._common import fail


def output_problem(path: Path) -> str | None:
    """Why ``path`` cannot be written as a regular file (``None`` when it can): it must be absent or a regular
    file (a link or a device is never replaced), and its folder, or the nearest folder above that exists, must
    take a new file (tried, so a read-only file system or an immutable folder is caught even for root)."""
    try:
        mode = path.lstat().st_mode
    except FileNotFoundError:
        mode = None
    except NotADirectoryError:
        return "a folder on its path is a file"
    except OSError as exc:
        return f"cannot be checked ({exc.strerror or exc})"
    if mode is not None and stat.S_ISLNK(mode):
        return "is a symbolic link (never replaced; name the file itself)"
    if mode is not None and stat.S_ISDIR(mode):
        return "is a folder"
    if mode is not None and not stat.S_ISREG(mode):
        return "is not a regular file (a device, FIFO or socket is never replaced)"
    folder = next(p for p in path.absolute().parents if p.exists())  # missing folders are made at write time
    if not folder.is_dir():
        return "a folder on its path is a file"
    return _try_create_in(folder)


def _try_create_in(folder: Path) -> str | None:
    try:
        fd, probe = tempfile.mkstemp(dir=folder, prefix=".nirnet-probe-")
    except OSError as exc:
        return f"cannot create files in {folder} ({exc.strerror or exc})"
    os.close(fd)
    os.unlink(probe)
    return None


def check_output(path: Path, option: str) -> None:
    """One-line error (before any work) unless ``path`` can be written; see :func:`output_problem`."""
    if (reason := output_problem(path)) is not None:
        fail(f"{option} {path}: {reason}")


def safe_text(text: str) -> str:
    """``text`` without lone surrogates, which strict JSON parsers reject: bytes of a file name that are not UTF-8
    (kept by Python as surrogates) become ``\\xNN`` escapes, as the table shows them."""
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        pass
    try:
        raw = text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:  # a surrogate that does not stand for a byte
        return text.encode("utf-8", "backslashreplace").decode("utf-8")
    return raw.decode("utf-8", "backslashreplace")


def json_safe(value: Any) -> Any:
    """``value`` with every string passed through :func:`safe_text`."""
    if isinstance(value, str):
        return safe_text(value)
    if isinstance(value, dict):
        return {safe_text(str(k)): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value


def to_stdout(write: Callable[[], None]) -> str | None:
    """Run ``write`` (which prints to stdout) and flush: ``None``, or why stdout took nothing (full, closed). Then
    stdout is pointed at the null device, so the interpreter's flush at exit cannot print a traceback."""
    try:
        write()
        sys.stdout.flush()
    except OSError as exc:
        _silence_stdout()
        return exc.strerror or str(exc)
    return None


class PipeConsole(Console):
    """A console that raises :class:`BrokenPipeError` when its reader has gone, for :func:`to_stdout` to report
    (rich's own reaction is a silent exit with status 1)."""

    def on_broken_pipe(self) -> None:
        raise BrokenPipeError(errno.EPIPE, os.strerror(errno.EPIPE))


def _silence_stdout() -> None:
    try:
        fd = sys.stdout.fileno()
    except (AttributeError, OSError, ValueError):  # not a real file (a test runner's buffer): nothing to flush
        return
    null = os.open(os.devnull, os.O_WRONLY)
    os.dup2(null, fd)
    os.close(null)


class ResultStream:
    """``--jsonl``: one JSON line per scored image, flushed at once, so what was scored survives an interrupt or
    a crash. With ``resume``, the results already in the file are read back (``previous``, by path) and new lines
    are appended; a line torn by a crash is cut off first."""

    def __init__(self, path: Path, resume: bool) -> None:
        self.path = path
        self.previous: dict[str, dict] = {}
        self.written = 0
        self.error: str | None = None
        check_output(path, "--jsonl")
        if path.exists() and path.stat().st_size:
            if not resume:
                fail(f"--jsonl {path} already holds results: pass --resume to skip the images in it, or remove it")
            self.previous = _read_results(path)
        # O_NOFOLLOW: a link put there since the check is refused, not written through.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW, 0o666)
        self._handle: IO[str] | None = os.fdopen(fd, "a", encoding="utf-8", newline="\n")

    def __enter__(self) -> ResultStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def check_model(self, name: str) -> None:
        """One-line error when the file holds another model's results (mixing them would mislead)."""
        others = {r.get("model") for r in self.previous.values()} - {None, name}
        if others:
            fail(f"--jsonl {self.path} holds results of {', '.join(sorted(others))}, not {name}: use another file")

    def write(self, row: dict) -> None:
        """Append one result line; a write that fails stops the stream (reported by :attr:`error`), not the run."""
        if self._handle is None:
            return
        try:
            self._handle.write(json.dumps(json_safe(row)) + "\n")
            self._handle.flush()
            self.written += 1
        except OSError as exc:
            self.error = f"could not write --jsonl {self.path}: {exc.strerror or exc}"
            self.close()

    @property
    def kept(self) -> int:
        return len(self.previous) + self.written

    def close(self) -> None:
        if self._handle is not None:
            handle, self._handle = self._handle, None
            try:
                handle.close()
            except OSError as exc:
                self.error = self.error or f"could not write --jsonl {self.path}: {exc.strerror or exc}"


def _read_results(path: Path) -> dict[str, dict]:
    """The result lines of a ``--jsonl`` file by path. A last line without its newline (torn by a crash) is cut
    off the file; any other line that is not a result is a one-line error."""
    raw = path.read_bytes()
    complete = raw[: raw.rfind(b"\n") + 1]
    if len(complete) < len(raw):
        os.truncate(path, len(complete))
    results: dict[str, dict] = {}
    for number, line in enumerate(complete.decode("utf-8", "replace").splitlines(), 1):
        try:
            row = json.loads(line)
            if not isinstance(row["probability"], (int, float)) and not row["error"]:
                raise ValueError("neither a probability nor an error")
            results[row["path"]] = row
        except (ValueError, KeyError, TypeError):
            fail(f"--jsonl {path}: line {number} is not a result line; is this a results file of nirnet detect?")
    return results
