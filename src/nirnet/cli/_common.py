"""What several commands share: loading a detector with one-line errors, failing with one line."""

from __future__ import annotations

from typing import NoReturn

import typer
from rich.console import Console
from rich.markup import escape

from nirnet.defaults import DEFAULT_BACKEND

_err = Console(stderr=True)

BACKEND_HELP = (
    "Where the forward pass runs: auto (ONNX Runtime on the CPU, else PyTorch with a one-line note; GPUs use "
    "PyTorch), torch (eager PyTorch), or onnx (ONNX Runtime on the CPU, an error when it cannot run). ONNX Runtime "
    "is several times faster on small CPUs; its first run exports the model to the user cache, ~20 s."
)


def backend_option():
    """The ``--backend`` option every scoring verb takes, defaulting to the library's backend."""
    return typer.Option(DEFAULT_BACKEND, help=BACKEND_HELP)


def attribute_option(where: str):
    """The ``--attribute`` option of the scoring verbs; ``where`` says how this verb reports the family."""
    return typer.Option(
        False,
        "--attribute",
        help="Also name the generator family of each image judged generated (a family the model's family head "
        f"knows, or 'unknown'), {where}. The model needs a family head: the default has one; see `nirnet family "
        "fit`.",
    )


def printable(value: object) -> str:
    """Text that rich prints as is: undecodable bytes as escapes, markup characters not interpreted."""
    return escape(str(value).encode("utf-8", "backslashreplace").decode("utf-8"))


def output_console(kind: type[Console] = Console) -> Console:
    """A console (of class ``kind``) for tables on stdout that never truncates when stdout is not a terminal
    (piped to a file or a program, a table is as wide as its content)."""
    import sys

    return kind(width=None if sys.stdout.isatty() else 100_000)


def fail(message: object, code: int = 2) -> NoReturn:
    """One red line on stderr and exit ``code`` (2: a usage error), never a traceback (nor a line wrapped at 80
    columns when stderr is not a terminal)."""
    _err.print(f"[red]error:[/red] {printable(message)}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def load_detector(model: str | None, **kwargs):
    """:meth:`Detector.from_pretrained`, with a missing or wrong model, a run folder given instead of its
    ``final/``, or an unavailable device reported in one line."""
    from nirnet.detect import Detector

    try:
        return Detector.from_pretrained(model, **kwargs)
    except (FileNotFoundError, ValueError, ImportError) as exc:  # ImportError: an optional backbone not installed
        fail(exc)
