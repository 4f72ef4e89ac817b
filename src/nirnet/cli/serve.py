"""``nirnet serve``: the web service and page (needs the ``serve`` extra)."""

from __future__ import annotations

import typer


def serve(
    model: str = typer.Option(None, help="Model folder or shipped model name (default: the embedded default)."),
    host: str = typer.Option("127.0.0.1", help="Address to listen on (0.0.0.0 to accept other machines)."),
    port: int = typer.Option(8000, help="TCP port."),
    max_files: int = typer.Option(16, help="Most files accepted in one request (413 above)."),
    max_file_mb: float = typer.Option(20.0, help="Largest accepted upload per file, in MiB (413 above)."),
    threshold: float = typer.Option(None, help="Override the model's calibrated decision threshold."),
    device: str = typer.Option("cpu", help="Device for the model: cpu, cuda, cuda:1, ..."),
    log_level: str = typer.Option("info", help="uvicorn log level: critical, error, warning, info, debug."),
) -> None:
    """Serve the detector over HTTP: a page at / (drop images, see the score, noise map and spectrum),
    POST /v1/detect (multipart field `files`, one or more images; `?explain=true` adds the pictures),
    GET /healthz, and the OpenAPI schema at /openapi.json with interactive docs at /docs."""
    try:
        import uvicorn

        from nirnet.serve import ServeConfig, create_app
    except ImportError as exc:
        typer.echo(f"error: {exc}. Install the extra: pip install 'nirnet[serve]'", err=True)
        raise typer.Exit(2) from exc
    from nirnet.cli._common import load_detector

    detector = load_detector(model, threshold=threshold, device=device)
    app = create_app(detector, ServeConfig(max_files=max_files, max_file_bytes=int(max_file_mb * 1024 * 1024)))
    typer.echo(f"serving {detector.name} on http://{host}:{port}/ (Ctrl+C to stop)")
    uvicorn.run(app, host=host, port=port, log_level=log_level)
