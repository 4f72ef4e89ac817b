"""FastAPI application: ``POST /v1/detect``, ``GET /healthz``, OpenAPI at ``/docs``, and the web page at ``/``.

Uploads are checked before any model work (:mod:`nirnet.serve.guard`): the whole body is read first, within
``body_timeout_s``, at no less than ``min_body_rate`` bytes/s after ``body_grace_s``, each chunk within
``read_timeout_s`` (408), capped at ``max_request_bytes`` (413); only then may a request take one of
``max_pending`` scoring slots, or wait for one (at most ``max_waiting`` requests, ``wait_timeout_s``), else 503
with ``Retry-After``. Then at most ``max_files`` files per request, each at most ``max_file_bytes`` (413), and
each must decode as an image (a file that does not gets a per-file ``error``). A request where no file could be
scored is answered 422. Every error the application answers, including running out of memory, is JSON
``{"detail": ...}`` (:mod:`nirnet.serve.errors`).

Memory is bounded by what is decoded: each image's cost is read from its header (:mod:`nirnet.serve.decode`) and
images are decoded only while the sum of their costs fits the decoding budget (:mod:`nirnet.serve.budget`), the
part of ``max_memory_bytes`` the model leaves (:mod:`nirnet.serve.memory`). A JPEG that does not fit (or is over
``max_pixels``) is decoded at 1/2, 1/4 or 1/8 scale; any other image that does not is refused from its header.
Each decoded image is reduced at once to what the model reads (uint8 crops and view, ``PreparedImage``) and freed;
at most ``decode_slots`` images are decoded at once (CPU). The model runs under one lock (PyTorch already uses every
core for one batch), with the files of one request batched together. ``/healthz`` runs on the event loop and never
waits for the model or the thread pool.
"""

from __future__ import annotations

import asyncio
import threading
from importlib import resources
from pathlib import Path

from ..detect import Detector
from ..family import FamilyHeadError
from ..render import data_url, noise_map_png, spectrum_png
from .budget import MemoryBudget
from .config import ServeConfig
from .decode import plan_upload, prepare_upload
from .errors import JsonErrorBodies
from .guard import RequestGuard
from .memory import IdleTrim, MemoryPlan, plan_memory

try:
    from fastapi import FastAPI, File, HTTPException, Query, UploadFile
    from fastapi.concurrency import run_in_threadpool
    from fastapi.responses import HTMLResponse, JSONResponse
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise ImportError("the NIRNet web service needs the serve extra: pip install 'nirnet[serve]'") from exc


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
    app.add_middleware(JsonErrorBodies)
    page = _page()
    decode_slots = asyncio.Semaphore(config.decode_slots)
    if config.decoding_bytes is None:
        memory = plan_memory(detector, config.max_memory_bytes)
    else:
        memory = MemoryPlan(config.max_memory_bytes, 0, config.decoding_bytes)
    app.state.memory = memory
    budget = MemoryBudget(memory.decoding)
    idle_trim = IdleTrim()
    crop_copy = detector.model.config.preprocess.input_scale == 1.0  # crops cut from a full-size array (transforms)

    async def prepare(upload: UploadFile) -> tuple:
        """(name, prepared image or None, error): planned from the header, decoded within the budget."""
        name = upload.filename or "upload"
        plan, error = await run_in_threadpool(plan_upload, upload.file, config.max_pixels, budget.total, crop_copy)
        if plan is None:
            return name, None, error
        async with budget.hold(plan.cost), decode_slots:
            item, error = await run_in_threadpool(
                prepare_upload, detector.model.config, upload.file, name, plan, config.max_pixels
            )
        return name, item, error

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
        head = detector.family_head
        families = head.families if head is not None else None  # what ?attribute=true can name; None: no head
        return {
            "status": "ok",
            "model": detector.name,
            "threshold": detector.threshold,
            "families": families,
            "noise_map": detector.has_noise_map,  # whether ?explain=true can show one
        }

    @app.post("/v1/detect", summary="Score one or more uploaded images")
    async def detect(
        files: list[UploadFile] = File(..., description="One or more image files (multipart field `files`)."),
        explain: bool = Query(False, description="Also return the noise map and spectrum of each image as PNG."),
        attribute: bool = Query(
            False,
            description="Also name the generator family of each image judged generated (`family`: a known family "
            "or `unknown`; `family_scores`: the top 3 with probabilities). Needs a model with a family head.",
        ),
    ) -> dict:
        if attribute:
            try:
                detector.require_family_head()
            except FamilyHeadError as exc:
                raise HTTPException(400, f"attribute: {exc}") from None
        if explain:
            try:
                detector.require_noise_map()
            except ValueError as exc:
                raise HTTPException(400, f"explain: {exc}") from None
        if len(files) > config.max_files:
            raise HTTPException(413, f"too many files: {len(files)} > {config.max_files} per request")
        for upload in files:
            if _size(upload) > config.max_file_bytes:
                raise HTTPException(
                    413, f"{upload.filename}: file larger than the limit of {config.max_file_bytes} bytes"
                )
        idle_trim.enter()
        try:
            prepared = []
            for upload in files:
                prepared.append(await prepare(upload))
                await upload.close()  # its temporary file goes now, not with the request
            results = await run_in_threadpool(_score, detector, model_lock, prepared, explain, attribute)
            del prepared
        finally:
            idle_trim.leave()
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
        body_timeout_s=config.body_timeout_s,
        min_body_rate=config.min_body_rate,
        body_grace_s=config.body_grace_s,
    )


def _size(upload: UploadFile) -> int:
    if upload.size is not None:
        return upload.size
    upload.file.seek(0, 2)
    return upload.file.tell()


def _score(
    detector: Detector, lock: threading.Lock, prepared: list, explain: bool, attribute: bool = False
) -> list[dict]:
    with lock:
        predictions = detector.predictions(prepared, attribute)
        # the first prepared crop is the centre crop (CROP_POSITIONS), the one the noise map is drawn from
        explained = iter(
            [detector.noise_maps_of_crop(item.crops[:1].float() / 255) for _, item, _ in prepared if item is not None]
            if explain
            else []
        )
    results = []
    for (_, item, _), prediction in zip(prepared, predictions):
        # The common row (nirnet.detect.ROW_FIELDS), then what only the service returns.
        result = prediction.to_row()
        if item is not None:
            result.update(crop_logits=prediction.crop_logits, width=item.width, height=item.height)
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
