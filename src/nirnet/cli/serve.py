"""``nirnet serve``: the web service and page (needs the ``serve`` extra)."""

from __future__ import annotations

import typer

from nirnet.cli._common import BACKEND_HELP


def serve(
    model: str = typer.Option(None, help="Model folder or shipped model name (default: the embedded default)."),
    host: str = typer.Option("127.0.0.1", help="Address to listen on (0.0.0.0 to accept other machines)."),
    port: int = typer.Option(8000, help="TCP port."),
    max_files: int = typer.Option(16, help="Most files accepted in one request (413 above)."),
    max_file_mb: float = typer.Option(20.0, help="Largest accepted upload per file, in MiB (413 above)."),
    max_request_mb: float = typer.Option(64.0, help="Largest request body in MiB, enforced while it streams (413)."),
    max_pending: int = typer.Option(6, help="Scoring requests in progress at once; more wait in line (below)."),
    max_waiting: int = typer.Option(
        64, help="Requests (bodies complete, held on disk) that may wait for a slot; more are answered 503 at once."
    ),
    wait_timeout: float = typer.Option(10.0, help="Seconds a request may wait for a slot before a 503."),
    decode_slots: int = typer.Option(2, help="Images decoded at the same time (bounds CPU use)."),
    max_megapixels: float = typer.Option(
        40.0, help="Largest image in megapixels; bigger JPEGs are decoded at reduced scale, others refused."
    ),
    max_memory_mb: float = typer.Option(
        2300.0,
        min=64.0,
        help="Memory the service should stay within, in MiB: what the model takes (measured at start) plus a "
        "reserve, the rest decodes images (each one's cost read from its header; too big: JPEGs at reduced scale, "
        "others refused).",
    ),
    read_timeout: float = typer.Option(20.0, help="Seconds to wait for the next chunk of a request body (408)."),
    body_timeout: float = typer.Option(120.0, min=1.0, help="Seconds for a whole request body to arrive (408)."),
    min_body_rate: float = typer.Option(
        8.0,
        min=0.0,
        help="Slowest accepted upload in KiB/s, averaged from the start after a 5 s grace (408 below; 0: none).",
    ),
    header_timeout: float = typer.Option(10.0, help="Seconds a connection has to send its request headers."),
    threshold: float = typer.Option(
        None, min=0.0, max=1.0, help="Override the model's calibrated decision threshold (in [0, 1])."
    ),
    device: str = typer.Option("cpu", help="Device for the model: cpu, cuda, cuda:1, ..."),
    backend: str = typer.Option("auto", help=BACKEND_HELP),
    log_level: str = typer.Option("info", help="uvicorn log level: critical, error, warning, info, debug."),
) -> None:
    """Serve the detector over HTTP: a page at / (drop images, see the score, noise map and spectrum),
    POST /v1/detect (multipart field `files`, one or more images; `?explain=true` adds the pictures),
    GET /healthz, and the OpenAPI schema at /openapi.json with interactive docs at /docs."""
    try:
        from nirnet.serve import ServeConfig, create_app
        from nirnet.serve.server import run
    except ImportError as exc:
        typer.echo(f"error: {exc}. Install the extra: pip install 'nirnet[serve]'", err=True)
        raise typer.Exit(2) from exc
    from nirnet.cli._common import load_detector

    detector = load_detector(model, threshold=threshold, device=device, backend=backend)
    config = ServeConfig(
        max_files=max_files,
        max_file_bytes=int(max_file_mb * 2**20),
        max_request_bytes=int(max_request_mb * 2**20),
        max_pending=max_pending,
        decode_slots=decode_slots,
        max_pixels=int(max_megapixels * 1e6),
        read_timeout_s=read_timeout,
        max_waiting=max_waiting,
        wait_timeout_s=wait_timeout,
        body_timeout_s=body_timeout,
        min_body_rate=min_body_rate * 1024,
        max_memory_bytes=int(max_memory_mb * 2**20),
    )
    app = create_app(detector, config)
    memory = app.state.memory
    if memory.short:
        typer.echo(
            f"warning: --max-memory-mb {max_memory_mb:g} leaves too little for decoding once the model takes "
            f"{memory.model / 2**20:,.0f} MiB; decoding gets {memory.decoding / 2**20:,.0f} MiB anyway",
            err=True,
        )
    typer.echo(memory.describe())
    typer.echo(f"serving {detector.name} on http://{host}:{port}/ (Ctrl+C to stop)")
    run(app, host=host, port=port, log_level=log_level, header_timeout_s=header_timeout)
