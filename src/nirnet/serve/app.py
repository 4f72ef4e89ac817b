"""FastAPI application: ``POST /v1/detect``, ``GET /healthz``, OpenAPI at ``/docs``, and the web page at ``/``.

Uploads are checked before any model work: at most ``max_files`` files per request, each at most
``max_file_bytes`` (413 otherwise), and each must decode as an image (see :func:`nirnet.data.io.load_image`; a file
that does not gets a per-file ``error``). A request where no file could be scored is answered 422. Errors are JSON
``{"detail": ...}``.

Decoding runs in the server's thread pool, in parallel; the model runs under one lock (PyTorch already uses every
core for one batch, so parallel forwards would only thrash), with the files of one request batched together.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from PIL import Image

from ..data.io import ImageLoadError, load_image
from ..detect import Detector
from ..render import data_url, noise_map_png, spectrum_png

try:
    from fastapi import FastAPI, File, HTTPException, Query, UploadFile
    from fastapi.concurrency import run_in_threadpool
    from fastapi.responses import HTMLResponse
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise ImportError("the NIRNet web service needs the serve extra: pip install 'nirnet[serve]'") from exc


@dataclass(frozen=True)
class ServeConfig:
    max_files: int = 16  # files per request
    max_file_bytes: int = 20 * 1024 * 1024  # bytes per uploaded file


def _page() -> str:
    return resources.files("nirnet.serve").joinpath("static/index.html").read_text(encoding="utf-8")


def create_app(detector: Detector | None = None, config: ServeConfig = ServeConfig()) -> FastAPI:
    """The service around ``detector`` (default: the embedded default model)."""
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

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def index() -> str:
        return page

    @app.get("/healthz", summary="Liveness and the model being served")
    def healthz() -> dict:
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
            if len(data) > config.max_file_bytes:
                raise HTTPException(
                    413, f"{upload.filename}: file larger than the limit of {config.max_file_bytes} bytes"
                )
            uploads.append((upload.filename or "upload", data))
        decoded = await run_in_threadpool(lambda: [_decode(name, data) for name, data in uploads])
        results = await run_in_threadpool(_score, detector, model_lock, decoded, explain)
        if not any(r["error"] is None for r in results):
            raise HTTPException(422, {"message": "no file could be read as an image", "results": results})
        return {"model": detector.name, "threshold": detector.threshold, "results": results}

    return app


def _decode(name: str, data: bytes) -> tuple[str, Image.Image | None, str | None]:
    if not data:
        return name, None, "empty file"
    try:
        return name, load_image(data), None
    except ImageLoadError as exc:
        return name, None, exc.reason


def _score(detector: Detector, lock: threading.Lock, decoded: list, explain: bool) -> list[dict]:
    good = [img for _, img, _ in decoded if img is not None]
    with lock:
        scores = iter(detector.predict_images(good) if good else [])
        explained = iter([detector.noise_maps(img) for img in good] if explain else [])
    results = []
    for name, img, error in decoded:
        if img is None:
            results.append({"filename": name, "probability": None, "verdict": None, "error": error})
            continue
        probability, crop_logits = next(scores)
        result = {
            "filename": name,
            "probability": probability,
            "verdict": detector.verdict(probability),
            "crop_logits": crop_logits,
            "width": img.width,
            "height": img.height,
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
