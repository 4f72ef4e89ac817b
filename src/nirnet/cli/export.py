"""``nirnet export``: write a detector in another runtime's format."""

from __future__ import annotations

import typer

from nirnet.defaults import ONNX_OPSET

CHECK_TOLERANCE = 1e-4  # largest accepted |logit difference| between ONNX Runtime and PyTorch, per unit of |logit|

app = typer.Typer(rich_markup_mode="markdown", help="Export a detector for other runtimes.", no_args_is_help=True)


@app.command("onnx")
def onnx(
    out: str = typer.Argument(..., help="Output .onnx file (written atomically)."),
    model: str = typer.Option(None, help="Model folder or shipped model name (default: the embedded default)."),
    opset: int = typer.Option(ONNX_OPSET, help="ONNX opset version."),
    verbose: bool = typer.Option(False, "--verbose", help="Show the ONNX exporter's progress lines and warnings."),
    check: bool = typer.Option(True, help="Run the file in ONNX Runtime and compare with PyTorch (needs onnxruntime)."),
) -> None:
    """Export the model (noise branch, frequency branch, head, and the semantic backbone when it has one) to ONNX
    with a dynamic batch. Input `crops` (N x 3 x crop x crop, RGB in [0, 1]), output `logits` (one per crop); the
    preprocessing settings are in the file's metadata under `nirnet`."""
    from pathlib import Path

    from nirnet.cli._common import fail, load_detector
    from nirnet.cli._outputs import check_output
    from nirnet.export import check_onnx, export_onnx

    check_output(Path(out), "OUT")  # before the export's seconds of work
    detector = load_detector(model, backend="torch")  # export needs only the PyTorch model
    try:
        path = export_onnx(detector.model, out, opset=opset, verbose=verbose)
    except (RuntimeError, OSError) as exc:  # the exporter's failure, or an unwritable output
        fail(exc, code=1)
    typer.echo(f"wrote {path} ({path.stat().st_size / 1024:.0f} KiB)")
    if check:
        try:
            result = check_onnx(detector.model, path)
        except ImportError:
            typer.echo("onnxruntime is not installed; skipped the check (pip install onnxruntime)")
            return
        typer.echo(
            f"ONNX Runtime vs PyTorch on {result.batch} random crops: max |logit difference| {result.max_abs_diff:.2e}"
            f" (largest |logit| {result.max_abs_logit:.3g})"
        )
        if not result.within(CHECK_TOLERANCE):
            fail(f"outputs differ by more than {CHECK_TOLERANCE:g} x max(1, |logit|)", code=1)
