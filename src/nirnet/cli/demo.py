"""`nirnet demo`: a demo folder (real photos shipped by dependencies + their simulated twins) scored by the
embedded default model, with what each image is and what the model's training covers."""

from __future__ import annotations

from pathlib import Path

import typer

TRAINED_ON = (
    "real photos from nine sources and 1,055 images of 35 generator families, never on simulator twins; see "
    "docs/MODEL_CARD.md"
)


def demo(
    out: Path = typer.Option(Path("out/demo"), help="Folder for the demo images (real/ and simulated/)."),
    images: int = typer.Option(
        None, min=1, help="Sample photos to use, each with its simulated twin (default: all that are installed, 3)."
    ),
    workers: int = typer.Option(
        0, help="DataLoader workers for scoring (0: in the main process, quickest for a handful of images)."
    ),
) -> None:
    """Make a demo folder (real photos shipped by matplotlib and scikit-learn, and simulated twins made from them by
    the imprint simulator, all PNG), score it with the embedded default model, and say what each image is. The
    simulated side is not a real generator's output and the default never trained on it: the demo shows the
    pipeline end to end, not accuracy on real generators (see docs/MODEL_CARD.md)."""
    from nirnet.cli._common import fail, printable
    from nirnet.cli.detect import run_detect
    from nirnet.demo import make_demo_folder

    try:
        written = make_demo_folder(out, images)
    except (FileNotFoundError, ValueError, OSError) as exc:
        fail(exc)
    typer.echo(f"demo images in {printable(out)}/real and {printable(out)}/simulated")
    try:
        run_detect([str(item.path) for item in written], workers=workers)
    finally:
        _legend(written, out)


def _legend(written: list, out: Path) -> None:
    """What each image is, printed after the scores (also when scoring stopped)."""
    typer.echo(f"\nWhat the images are (the default model was trained on {TRAINED_ON}):")
    for item in written:
        typer.echo(f"  {item.path.relative_to(out)}: {item.kind}; {item.note}")
    typer.echo(
        "  No generated image of a family the default was trained on is included: no installable package we found "
        "ships real generators' images with a stated licence, and none are committed to this repository."
    )
