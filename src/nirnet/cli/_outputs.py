"""Where `nirnet detect` puts its results without losing any: output files checked before scoring, JSON text that
strict parsers accept, and a full or closed stdout reported in one line."""

from __future__ import annotations

import errno
import os
import stat
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

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
