"""FastAPI application: ``POST /v1/detect``, ``GET /healthz``, OpenAPI at ``/docs``, and the web page at ``/``.

Uploads are checked before any model work (:mod:`nirnet.serve.guard`): at most ``max_pending`` scoring requests in
progress, up to ``max_waiting`` more waiting in line (body unread) for at most ``wait_timeout_s``, and 503 with
``Retry-After`` beyond; the body capped at ``max_request_bytes`` while it streams (413), each
body chunk due within ``read_timeout_s`` (408). Then at most ``max_files`` files per request, each at most
``max_file_bytes`` (413), and each must decode as an image (see :func:`nirnet.data.io.load_image`; a file that does
not gets a per-file ``error``). A request where no file could be scored is answered 422. Every error, including
running out of memory, is JSON ``{"detail": ...}``.

Memory is bounded by construction: at most ``decode_slots`` images are decoded at once; a JPEG over
``max_pixels`` is decoded at a reduced scale (draft mode), any other image over it is refused from its header; and
each decoded image is reduced at once to what the model reads (uint8 crops and view, :class:`PreparedImage`) and
freed. The model runs under one lock (PyTorch already uses every core for one batch), with the files of one
request batched together. ``/healthz`` runs on the event loop and never waits for the model or the thread pool.
"""

from __future__ import annotations

import asyncio
import io
import threading
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from PIL import Image

from ..data.io import ImageLoadError, load_image
from ..detect import Detector, PreparedImage, prepare_source
from ..render import data_url, noise_map_png, spectrum_png
from .guard import RequestGuard

try:
    from fastapi import FastAPI, File, HTTPException, Query, UploadFile
    from fastapi.concurrency import run_in_threadpool
    from fastapi.responses import HTMLResponse, JSONResponse
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise ImportError("the NIRNet web service needs the serve extra: pip install 'nirnet[serve]'") from exc


@dataclass(frozen=True)
class ServeConfig:
    max_files: int = 16  # files per request
    max_file_bytes: int = 20 * 1024 * 1024  # bytes per uploaded file
    max_request_bytes: int = 64 * 1024 * 1024  # whole body, enforced while it streams
    max_pending: int = 6  # scoring requests in progress; more get 503 + Retry-After (6: measured, RESULTS 9)
    decode_slots: int = 2  # images decoded at the same time
    max_pixels: int = 40_000_000  # per image; larger JPEGs are decoded at 1/2, 1/4 or 1/8 scale, others refused
    read_timeout_s: float = 20.0  # longest wait for the next chunk of a request body
    max_waiting: int = 64  # requests waiting (body unread) for a slot beyond max_pending; more get 503 at once
    wait_timeout_s: float = 10.0  # longest wait in that line before a 503


def _page() -> str:
    return resources.files("nirnet.serve").joinpath("static/index.html").read_text(encoding="utf-8")


def create_app(detector: Detector | None = None, config: ServeConfig = ServeConfig()) -> RequestGuard:
    """The service around ``detector`` (default: the embedded default model): the FastAPI application behind
    its :class:`RequestGuard` (the application's attributes, e.g. ``state``, are reachable through it)."""
    detector = detector or Detector.from_pretrained()
    model_lock = threading.Lock()
    swagger_assets = _swagger_assets()
    app = FastAPI(
        title="NIRNet",
        summary="Is this image AI-generated? Scores from the noise-based imprint of generative models.",
        version=_version(),
        docs_url=None if swagger_assets else "/docs",  # FastAPI's own /docs loads Swagger UI from a CDN
    )
    if swagger_assets:
        _mount_offline_docs(app, swagger_assets)
    app.state.detector = detector
    page = _page()
    decode_slots = asyncio.Semaphore(config.decode_slots)

    @app.exception_handler(MemoryError)
    async def out_of_memory(_request, _exc) -> JSONResponse:
        return JSONResponse({"detail": "the server ran out of memory; retry later with fewer or smaller files"}, 503)

    @app.exception_handler(Exception)
    async def internal_error(_request, exc) -> JSONResponse:
        return JSONResponse({"detail": f"internal error: {type(exc).__name__}"}, 500)

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def index() -> str:
        return page

    @app.get("/healthz", summary="Liveness and the model being served")
    async def healthz() -> dict:  # async: on the event loop, never queued behind uploads in the thread pool
        return {"status": "ok", "model": detector.name, "threshold": detector.threshold}

    @app.post("/v1/detect", summary="Score one or more uploaded images")
    async def detect(
        files: list[UploadFile] = File(..., description="One or more image files (multipart field `files`)."),
        explain: bool = Query(False, description="Also return the noise map and spectrum of each image as PNG."),
    ) -> dict:
        if len(files) > config.max_files:
            raise HTTPException(413, f"too many files: {len(files)} > {config.max_files} per request")
        uploads = []
        for upload in files:
            data = await upload.read(config.max_file_bytes + 1)
            await upload.close()
            if len(data) > config.max_file_bytes:
                raise HTTPException(
                    413, f"{upload.filename}: file larger than the limit of {config.max_file_bytes} bytes"
                )
            uploads.append((upload.filename or "upload", data))
        prepared = []
        for name, data in uploads:
            async with decode_slots:
                prepared.append(await run_in_threadpool(_prepare, detector, name, data, config.max_pixels))
        del uploads
        results = await run_in_threadpool(_score, detector, model_lock, prepared, explain)
        if not any(r["error"] is None for r in results):
            raise HTTPException(422, {"message": "no file could be read as an image", "results": results})
        return {"model": detector.name, "threshold": detector.threshold, "results": results}

    return RequestGuard(
        app,
        ("/v1/detect",),
        config.max_request_bytes,
        config.max_pending,
        config.read_timeout_s,
        max_waiting=config.max_waiting,
        wait_timeout_s=config.wait_timeout_s,
    )


def open_limited(data: bytes, max_pixels: int) -> Image.Image:
    """Decode an upload as RGB. A JPEG over ``max_pixels`` is decoded at the smallest of 1/2, 1/4, 1/8 scale that
    fits (libjpeg's DCT scaling: the full-size pixels are never allocated); any other format over it is refused
    from its header."""
    try:
        with Image.open(io.BytesIO(data)) as probe:
            width, height = probe.size
            is_jpeg = probe.format == "JPEG"
    except Exception:  # noqa: BLE001 - load_image gives the precise reason below
        return load_image(data)
    if width * height <= max_pixels:
        return load_image(data)
    if not is_jpeg:
        raise ImageLoadError("upload", f"image is {width}x{height}, over the service's limit of {max_pixels:,} pixels")
    img = Image.open(io.BytesIO(data))
    for scale in (2, 4, 8):
        if (width // scale) * (height // scale) <= max_pixels:
            break
    img.draft("RGB", (width // scale, height // scale))
    return load_image(img, max_pixels=None)


def _prepare(
    detector: Detector, name: str, data: bytes, max_pixels: int
) -> tuple[str, PreparedImage | None, str | None]:
    """(name, prepared image, error): the decoded image lives only inside this call."""
    return (name, *prepare_source(detector.model.config, data, name, decode=lambda d: open_limited(d, max_pixels)))


def _score(detector: Detector, lock: threading.Lock, prepared: list, explain: bool) -> list[dict]:
    good = [item for _, item, _ in prepared if item is not None]
    with lock:
        scores = iter(detector.score_prepared(good))
        # the first prepared crop is the centre crop (CROP_POSITIONS), the one the noise map is drawn from
        explained = iter(
            [detector.noise_maps_of_crop(item.crops[:1].float() / 255) for item in good] if explain else []
        )
    results = []
    for name, item, error in prepared:
        if item is None:
            results.append({"filename": name, "probability": None, "verdict": None, "error": error})
            continue
        probability, crop_logits = next(scores)
        result = {
            "filename": name,
            "probability": probability,
            "verdict": detector.verdict(probability),
            "crop_logits": crop_logits,
            "width": item.width,
            "height": item.height,
            "error": None,
        }
        if explain:
            maps = next(explained)
            result["noise_map_png"] = data_url(noise_map_png(maps["noise_map"]))
            result["spectrum_png"] = data_url(spectrum_png(maps["spectrum"]))
        results.append(result)
    return results


def _swagger_assets() -> str | None:
    """Swagger UI's files as shipped by the ``fastapi-offline`` package, if installed (so /docs works offline)."""
    try:
        import fastapi_offline
    except ImportError:
        return None
    folder = Path(fastapi_offline.__file__).parent / "static"
    return str(folder) if (folder / "swagger-ui-bundle.js").is_file() else None


def _mount_offline_docs(app: FastAPI, assets: str) -> None:
    from fastapi.openapi.docs import get_swagger_ui_html
    from fastapi.staticfiles import StaticFiles

    app.mount("/docs-assets", StaticFiles(directory=assets), name="docs-assets")

    @app.get("/docs", include_in_schema=False)
    def docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=app.openapi_url,
            title="NIRNet API",
            swagger_js_url="docs-assets/swagger-ui-bundle.js",
            swagger_css_url="docs-assets/swagger-ui.css",
            swagger_favicon_url="docs-assets/favicon.png",
        )


def _version() -> str:
    from .. import __version__

    return __version__
