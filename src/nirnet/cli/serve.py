"""``nirnet serve``: the web service and page (needs the ``serve`` extra). Option defaults are the service's own
(:class:`nirnet.serve.ServeConfig`), shown in the units the options take."""

from __future__ import annotations

import typer

from nirnet.cli._common import backend_option
from nirnet.defaults import DEFAULT_DEVICE
from nirnet.serve.config import DEFAULT_HEADER_TIMEOUT_S, DEFAULT_HOST, DEFAULT_PORT, ServeConfig

_D = ServeConfig()
MIB = 2**20


def serve(
    model: str = typer.Option(None, help="Model folder or shipped model name (default: the embedded default)."),
    host: str = typer.Option(DEFAULT_HOST, help="Address to listen on (0.0.0.0 to accept other machines)."),
    port: int = typer.Option(DEFAULT_PORT, help="TCP port."),
    max_files: int = typer.Option(_D.max_files, help="Most files accepted in one request (413 above)."),
    max_file_mb: float = typer.Option(
        _D.max_file_bytes / MIB, help="Largest accepted upload per file, in MiB (413 above)."
    ),
    max_request_mb: float = typer.Option(
        _D.max_request_bytes / MIB, help="Largest request body in MiB, enforced while it streams (413)."
    ),
    max_pending: int = typer.Option(
        _D.max_pending, help="Scoring requests in progress at once; more wait in line (below)."
    ),
    max_waiting: int = typer.Option(
        _D.max_waiting,
        help="Requests (bodies complete, held on disk) that may wait for a slot; more are answered 503 at once.",
    ),
    wait_timeout: float = typer.Option(_D.wait_timeout_s, help="Seconds a request may wait for a slot before a 503."),
    decode_slots: int = typer.Option(_D.decode_slots, help="Images decoded at the same time (bounds CPU use)."),
    max_megapixels: float = typer.Option(
        _D.max_pixels / 1e6,
        help="Largest image in megapixels; bigger JPEGs are decoded at reduced scale, others refused.",
    ),
    max_memory_mb: float = typer.Option(
        _D.max_memory_bytes / MIB,
        min=64.0,
        help="Memory the service should stay within, in MiB: what the model takes (measured at start) plus a "
        "reserve, the rest decodes images (each one's cost read from its header; too big: JPEGs at reduced scale, "
        "others refused).",
    ),
    read_timeout: float = typer.Option(
        _D.read_timeout_s, help="Seconds to wait for the next chunk of a request body (408)."
    ),
    body_timeout: float = typer.Option(
        _D.body_timeout_s, min=1.0, help="Seconds for a whole request body to arrive (408)."
    ),
    min_body_rate: float = typer.Option(
        _D.min_body_rate / 1024,
        min=0.0,
        help=f"Slowest accepted upload in KiB/s, averaged from the start after a {_D.body_grace_s:g} s grace "
        "(408 below; 0: none).",
    ),
    header_timeout: float = typer.Option(
        DEFAULT_HEADER_TIMEOUT_S, help="Seconds a connection has to send its request headers."
    ),
    threshold: float = typer.Option(
        None, min=0.0, max=1.0, help="Override the model's calibrated decision threshold (in [0, 1])."
    ),
    device: str = typer.Option(DEFAULT_DEVICE, help="Device for the model: cpu, cuda, cuda:1, ..."),
    backend: str = backend_option(),
    log_level: str = typer.Option("info", help="uvicorn log level: critical, error, warning, info, debug."),
) -> None:
    """Serve the detector over HTTP: a page at / (drop images, see the score, noise map and spectrum),
    POST /v1/detect (multipart field `files`, one or more images; `?explain=true` adds the pictures),
    GET /healthz, and the OpenAPI schema at /openapi.json with interactive docs at /docs."""
    from nirnet.cli._common import fail, load_detector

    try:
        from nirnet.serve import create_app
        from nirnet.serve.server import run
    except ImportError as exc:
        fail(f"{exc}. Install the extra: pip install 'nirnet[serve]'")

    detector = load_detector(model, threshold=threshold, device=device, backend=backend)
    config = ServeConfig(
        max_files=max_files,
        max_file_bytes=int(max_file_mb * MIB),
        max_request_bytes=int(max_request_mb * MIB),
        max_pending=max_pending,
        decode_slots=decode_slots,
        max_pixels=int(max_megapixels * 1e6),
        read_timeout_s=read_timeout,
        max_waiting=max_waiting,
        wait_timeout_s=wait_timeout,
        body_timeout_s=body_timeout,
        min_body_rate=min_body_rate * 1024,
        max_memory_bytes=int(max_memory_mb * MIB),
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
