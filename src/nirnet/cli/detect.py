"""`nirnet detect PATH...`: score images, folders, globs or CSV lists with a detector.

Decoding and cropping run in DataLoader workers, overlapped with the model. A bad file never stops the run: it is
listed with its reason. Exit status: 0 = every image scored, 1 = some files could not be read (the rest are
scored) or an output could not be written (the others are), 2 = nothing to score or a usage error, 130 / 143 =
stopped by Ctrl-C / SIGTERM (what ``--jsonl`` received is kept).
"""

from __future__ import annotations

import csv
import io
import json
import signal
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

import typer
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from nirnet.cli._common import attribute_option, backend_option
from nirnet.defaults import DEFAULT_BACKEND, DEFAULT_BATCH_SIZE, DEFAULT_DEVICE, DEFAULT_WORKERS

if TYPE_CHECKING:
    from nirnet.cli._outputs import ResultStream
    from nirnet.detect import Detector, Prediction

console = Console(stderr=True)


def expand_inputs(items: list[str]) -> tuple[list[Path], list[tuple[Path, str]]]:
    """Inputs -> (image files in order, what was left out with the reason), by the library's input layer
    (:mod:`nirnet.data.sources`), so `detect` accepts the files `scale` and `eval` accept. Tar shards are scored
    by `nirnet scale` and listed here as skipped."""
    from nirnet.cli._common import fail
    from nirnet.data.sources import SourceError, expand_sources

    try:
        sources = expand_sources(items)
    except SourceError as exc:
        fail(exc)
    shards = [(shard, "tar shard (scored by nirnet scale)") for shard in sources.shards]
    return sources.files, sources.skipped + shards


def detect(
    paths: list[str] = typer.Argument(..., help="Image files, folders (searched recursively), globs or CSV lists."),
    model: str = typer.Option(None, "--model", "-m", help="Model folder or shipped model name (default: embedded)."),
    as_json: bool = typer.Option(False, "--json", help="Print results as JSON on stdout instead of a table."),
    csv_out: Path = typer.Option(None, "--csv", help="Also write results to this CSV file (atomically)."),
    jsonl_out: Path = typer.Option(
        None,
        "--jsonl",
        help="Also append one JSON line per image to this file as soon as it is scored, so an interrupted run keeps "
        "what it scored. A file that already holds results needs --resume.",
    ),
    resume: bool = typer.Option(
        False,
        "--resume",
        help="With --jsonl: skip the images already in that file (scored or failed), score the rest, and print "
        "all of them.",
    ),
    threshold: float = typer.Option(
        None, min=0.0, max=1.0, help="Override the model's calibrated decision threshold (a probability in [0, 1])."
    ),
    batch_size: int = typer.Option(DEFAULT_BATCH_SIZE, help="Crops per forward pass."),
    workers: int = typer.Option(
        DEFAULT_WORKERS, help="DataLoader workers that decode and crop images (0 = in the main process)."
    ),
    num_crops: int = typer.Option(None, help="Crops per image (default: the model's config)."),
    device: str = typer.Option(DEFAULT_DEVICE, help="cpu or cuda."),
    backend: str = backend_option(),
    attribute: bool = attribute_option("with its top-3 family probabilities"),
) -> None:
    """Score images: probability that each is AI-generated, and a verdict at the model's threshold."""
    run_detect(
        paths,
        model=model,
        as_json=as_json,
        csv_out=csv_out,
        jsonl_out=jsonl_out,
        resume=resume,
        threshold=threshold,
        batch_size=batch_size,
        workers=workers,
        num_crops=num_crops,
        device=device,
        backend=backend,
        attribute=attribute,
    )


def run_detect(
    paths: list[str],
    *,
    model: str | None = None,
    as_json: bool = False,
    csv_out: Path | None = None,
    jsonl_out: Path | None = None,
    resume: bool = False,
    threshold: float | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    workers: int = DEFAULT_WORKERS,
    num_crops: int | None = None,
    device: str = DEFAULT_DEVICE,
    backend: str = DEFAULT_BACKEND,
    attribute: bool = False,
) -> None:
    """What `nirnet detect` does, callable from other verbs with plain Python defaults (a typer verb function
    called directly receives typer's option objects for every argument it is not given).

    No scored result is lost: output files are checked before scoring, ``jsonl_out`` gets each result as it is
    scored, stdout gets the results before any file is written, and a file or stdout that cannot be written is a
    one-line error after the rest is delivered."""
    from nirnet.cli._common import fail, load_detector
    from nirnet.cli._outputs import ResultStream, check_output, safe_text

    files, skipped = expand_inputs(paths)
    _report_skipped(skipped)
    if not files:
        fail("no images found")
    if resume and jsonl_out is None:
        fail("--resume needs --jsonl FILE (the file whose images are skipped)")
    if csv_out is not None:
        check_output(csv_out, "--csv")
    with ResultStream(jsonl_out, resume) if jsonl_out is not None else nullcontext() as stream:
        detector = load_detector(model, threshold=threshold, device=device, batch_size=batch_size, backend=backend)
        if attribute:
            _require_family_head(detector)
        done: dict[str, dict] = {}
        if stream is not None:
            stream.check_model(detector.name)
            done = stream.previous
        todo = [f for f in files if safe_text(str(f)) not in done]
        scored = _score(detector, todo, stream, workers=workers, num_crops=num_crops, attribute=attribute)
        results = _in_input_order(files, scored, done, detector)
        _deliver(detector, results, skipped, as_json, csv_out, stream, attribute)


def _require_family_head(detector: Detector) -> None:
    from nirnet.cli._common import fail
    from nirnet.family import FamilyHeadError

    try:
        detector.require_family_head()
    except FamilyHeadError as exc:
        fail(f"--attribute: {exc}")


def _deliver(
    detector: Detector,
    results: list[Prediction],
    skipped: list[tuple[Path, str]],
    as_json: bool,
    csv_out: Path | None,
    stream: ResultStream | None,
    attribute: bool = False,
) -> None:
    """Stdout first, then the CSV; every output that failed is named in one error line (exit 1) after the others
    were delivered."""
    from nirnet.cli._common import fail
    from nirnet.cli._outputs import to_stdout

    failed = [r for r in results if not r.ok]
    problems = []
    if (reason := to_stdout(lambda: _print_results(detector, results, skipped, as_json, attribute))) is not None:
        problems.append(f"could not write the results to stdout: {reason}")
    if csv_out is not None and (reason := _write_csv(csv_out, results)) is not None:
        problems.append(reason)
    if stream is not None:
        stream.close()
        if stream.error is not None:
            problems.append(stream.error)
    if failed:
        console.print(f"{len(failed)} of {len(results)} files could not be read")
    if problems:
        fail("; ".join(problems), code=1)
    if failed:
        raise typer.Exit(1)


class Terminated(BaseException):
    """SIGTERM, raised in the main thread so scoring unwinds as on Ctrl-C: the loader's workers are stopped at
    once (a parent killed outright leaves them waiting for work for seconds before they notice) and the note of
    what was kept is printed."""


@contextmanager
def _sigterm_raises() -> Iterator[None]:
    def handler(signum: int, frame: object) -> None:
        raise Terminated

    try:
        previous = signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread: signals stay as they are
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _score(
    detector: Detector,
    files: list[Path],
    stream: ResultStream | None,
    *,
    workers: int,
    num_crops: int | None,
    attribute: bool = False,
) -> list[Prediction]:
    """Score ``files`` in order, each result appended to ``stream`` as it comes. Ctrl-C or SIGTERM ends the run
    with a one-line note of how many results were kept (exit 130 or 143)."""
    results: list[Prediction] = []
    if not files:
        return results
    predictions = detector.predict_paths(files, workers=workers, num_crops=num_crops, attribute=attribute)
    try:
        with _sigterm_raises(), Progress(console=console, transient=True, disable=len(files) < 20) as progress:
            task = progress.add_task("scoring", total=len(files))
            for result in predictions:
                results.append(result)
                if stream is not None:
                    stream.write(result.to_dict())
                progress.advance(task)
    except (KeyboardInterrupt, Terminated) as exc:
        predictions.close()  # stops the loader's workers now
        _stopped(len(results), len(files), stream, 143 if isinstance(exc, Terminated) else 130)
    finally:
        predictions.close()
    return results


def _stopped(scored: int, total: int, stream: ResultStream | None, code: int) -> NoReturn:
    from nirnet.cli._common import printable

    if stream is not None:
        stream.close()
        count = f"{stream.kept} result{'' if stream.kept == 1 else 's'}"
        kept = f"{count} kept in {printable(stream.path)} (--resume skips them)"
    else:
        kept = "none kept (--jsonl FILE keeps each result as it is scored)"
    console.print(f"interrupted after {scored} of {total} images: {kept}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def _in_input_order(
    files: list[Path], scored: list[Prediction], done: dict[str, dict], detector: Detector
) -> list[Prediction]:
    """The results of all ``files`` in order: those read back from the ``--jsonl`` file (verdicts at the current
    threshold) and the ones scored now."""
    from nirnet.cli._outputs import safe_text
    from nirnet.family import Attribution

    fresh = iter(scored)
    results = []
    for file in files:
        row = done.get(safe_text(str(file)))
        if row is None:
            results.append(next(fresh))
            continue
        probability = row.get("probability")
        scored = None if probability is None else (probability, row.get("crop_logits") or [])
        family = Attribution(row["family"], row.get("family_scores") or {}) if row.get("family") else None
        results.append(detector.result(str(file), scored, row.get("error"), attribution=family))
    return results


def _report_skipped(skipped: list[tuple[Path, str]]) -> None:
    from nirnet.cli._common import printable

    for path, reason in skipped[:20]:
        console.print(f"skipped {printable(path)}: {reason}")
    if len(skipped) > 20:
        console.print(f"... and {len(skipped) - 20} more files skipped")


def _print_results(
    detector: Detector,
    results: list[Prediction],
    skipped: list[tuple[Path, str]],
    as_json: bool,
    attribute: bool = False,
) -> None:
    """The results on stdout: JSON (strings made valid for strict parsers) or a table."""
    from nirnet.cli._common import output_console, printable
    from nirnet.cli._outputs import PipeConsole, json_safe

    if as_json:
        failed = sum(1 for r in results if not r.ok)
        payload = {
            "model": detector.name,
            "threshold": detector.threshold,
            "results": [r.to_dict() for r in results],
            "scored": len(results) - failed,
            "failed": failed,
            "skipped": [{"path": str(p), "reason": r} for p, r in skipped],
        }
        typer.echo(json.dumps(json_safe(payload), indent=1))
        return
    table = Table(title=f"{detector.name} (threshold {detector.threshold:.3f})")
    for column in ("path", "P(generated)", "verdict", *(["family (top 3)"] if attribute else [])):
        table.add_column(column, justify="right" if column == "P(generated)" else "left")
    for r in results:
        if r.ok:
            colour = "red" if r.verdict == "generated" else "green"
            family = [_family_cell(r)] if attribute else []
            table.add_row(printable(r.source), f"{r.probability:.3f}", f"[{colour}]{r.verdict}[/{colour}]", *family)
        else:
            table.add_row(printable(r.source), "–", f"[yellow]error: {printable(r.error)}[/yellow]")
    output_console(PipeConsole).print(table)


def _family_cell(result: Prediction) -> str:
    if result.family is None:
        return ""
    top = ", ".join(f"{name} {p:.2f}" for name, p in (result.family_scores or {}).items())
    return f"{result.family} ({top})"


def _write_csv(path: Path, results: list[Prediction]) -> str | None:
    """Write the CSV atomically: ``None``, or why it could not be written (the target is checked again, so a link
    or device put there during scoring is not replaced either)."""
    from nirnet._atomic import atomic_write_text
    from nirnet.cli._outputs import output_problem
    from nirnet.detect import ROW_FIELDS, flat_row

    if (reason := output_problem(path)) is not None:
        return f"could not write --csv {path}: {reason}"
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=ROW_FIELDS)
    writer.writeheader()
    writer.writerows(flat_row(r.to_row()) for r in results)
    try:
        # File names that are not valid UTF-8 are written back byte for byte (surrogateescape), never a crash.
        atomic_write_text(path, buffer.getvalue(), errors="surrogateescape")
    except OSError as exc:
        return f"could not write --csv {path}: {exc.strerror or exc}"
    return None
