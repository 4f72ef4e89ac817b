"""The service under hostile and careless use: admission, body caps while streaming, timeouts, bounded decodes,
JSON for every error, health checks that do not queue."""

import asyncio
import contextlib
import io
import json
import socket
import threading
import time

import pytest
from PIL import Image

pytest.importorskip("fastapi", reason="the serve extra (fastapi) is not installed")
pytest.importorskip("httpx", reason="fastapi's test client needs httpx")
from fastapi.testclient import TestClient  # noqa: E402

from nirnet.detect import Detector  # noqa: E402
from nirnet.models import create_model  # noqa: E402
from nirnet.serve import ServeConfig, create_app  # noqa: E402
from nirnet.serve.app import open_limited  # noqa: E402
from nirnet.serve.guard import RequestGuard  # noqa: E402
from nirnet.testing import synthetic_photo  # noqa: E402


def _jpeg(size=(120, 96), seed=0) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(synthetic_photo(size[1], size[0], seed=seed)).save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def detector():
    return Detector(create_model("test_nirnet"))


def _client(detector, **config) -> TestClient:
    return TestClient(create_app(detector, ServeConfig(**config)), raise_server_exceptions=False)


def test_declared_oversize_body_is_refused_before_reading(detector):
    client = _client(detector, max_request_bytes=10_000)
    response = client.post("/v1/detect", files=[("files", ("a.jpg", b"x" * 50_000, "image/jpeg"))])
    assert response.status_code == 413 and "over the limit" in response.json()["detail"]


def test_streamed_body_is_cut_off_at_the_cap():
    """No Content-Length (chunked): the guard counts bytes as they arrive and stops reading at the cap."""
    seen = {"bytes": 0}

    async def app(scope, receive, send):
        while True:
            message = await receive()
            seen["bytes"] += len(message.get("body", b""))
            if not message.get("more_body"):
                break
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"read it all"})

    chunks = [{"type": "http.request", "body": b"x" * 1000, "more_body": True} for _ in range(1000)]
    sent = []

    async def receive():
        return chunks.pop(0)

    async def send(message):
        sent.append(message)

    guard = RequestGuard(app, ("/v1/detect",), max_body_bytes=5000, max_pending=4, read_timeout_s=5)
    scope = {"type": "http", "path": "/v1/detect", "headers": []}
    asyncio.run(guard(scope, receive, send))
    assert sent[0]["status"] == 413 and json.loads(sent[1]["body"])["detail"]
    assert seen["bytes"] <= 5000 and len(chunks) > 990  # stopped after ~6 of 1000 chunks


def test_stalled_body_gets_408():
    async def app(scope, receive, send):
        await receive()
        await receive()  # never arrives
        raise AssertionError("unreachable")

    first = [{"type": "http.request", "body": b"x", "more_body": True}]

    async def receive():
        if first:
            return first.pop()
        await asyncio.sleep(60)

    sent = []

    async def send(message):
        sent.append(message)

    guard = RequestGuard(app, ("/v1/detect",), max_body_bytes=5000, max_pending=4, read_timeout_s=0.2)
    asyncio.run(guard({"type": "http", "path": "/v1/detect", "headers": []}, receive, send))
    assert sent[0]["status"] == 408


def _slow_app(seconds: float, order: list[int] | None = None):
    async def app(scope, receive, send):
        await asyncio.sleep(seconds)
        if order is not None:
            order.append(scope["id"])
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"{}"})

    return app


async def _request(guard, ident: int) -> int:
    sent = []

    async def receive():
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message):
        sent.append(message)

    await guard({"type": "http", "path": "/v1/detect", "headers": [], "id": ident}, receive, send)
    return sent[0]["status"]


def test_waiting_room_serves_a_burst_in_order_and_refuses_beyond_it():
    order: list[int] = []
    guard = RequestGuard(_slow_app(0.05, order), ("/v1/detect",), 5000, 1, 5, max_waiting=2, wait_timeout_s=5)

    async def burst():
        first = [asyncio.create_task(_request(guard, i)) for i in range(3)]  # one in progress, two waiting
        await asyncio.sleep(0.01)
        extra = await _request(guard, 3)  # the line is full: refused at once, while the others still run
        return await asyncio.gather(*first), extra

    statuses, extra = asyncio.run(burst())
    assert statuses == [200, 200, 200] and extra == 503
    assert order == [0, 1, 2]  # first come, first served
    assert guard.pending == 0 and not guard.waiting


def test_waiting_too_long_is_503_and_a_client_leaving_the_line_frees_nothing_twice():
    guard = RequestGuard(_slow_app(0.4), ("/v1/detect",), 5000, 1, 5, max_waiting=4, wait_timeout_s=0.1)

    async def scenario():
        running = asyncio.create_task(_request(guard, 0))
        await asyncio.sleep(0.01)
        start = time.perf_counter()
        timed_out = await _request(guard, 1)
        waited = time.perf_counter() - start
        leaver = asyncio.create_task(_request(guard, 2))
        await asyncio.sleep(0.02)
        leaver.cancel()  # the client disconnects while in line
        with contextlib.suppress(asyncio.CancelledError):
            await leaver
        return await running, timed_out, waited

    first, timed_out, waited = asyncio.run(scenario())
    assert first == 200 and timed_out == 503 and 0.08 < waited < 0.35
    assert guard.pending == 0 and not guard.waiting


def test_over_admission_is_503_with_retry_after(detector):
    app = create_app(detector, ServeConfig(max_pending=1, max_waiting=0))
    app.pending = 1  # one request already in progress
    response = TestClient(app).post("/v1/detect", files=[("files", ("a.jpg", _jpeg(), "image/jpeg"))])
    assert response.status_code == 503 and response.headers["retry-after"] == "1"
    assert "busy" in response.json()["detail"]
    assert TestClient(app).get("/healthz").status_code == 200  # health is never refused
    app.pending = 0


def test_health_is_fast_while_the_model_is_busy(detector):
    app = create_app(detector)
    client = TestClient(app)
    lock_holder = threading.Event()

    slow_detector = app.state.detector
    original = slow_detector.score_prepared

    def slow(items):
        lock_holder.set()
        time.sleep(1.5)
        return original(items)

    slow_detector.score_prepared = slow
    try:
        worker = threading.Thread(
            target=lambda: client.post("/v1/detect", files=[("files", ("a.jpg", _jpeg(), "image/jpeg"))])
        )
        worker.start()
        assert lock_holder.wait(30)
        start = time.perf_counter()
        assert client.get("/healthz").status_code == 200
        assert time.perf_counter() - start < 0.5
        worker.join()
    finally:
        del slow_detector.score_prepared


def test_out_of_memory_is_json(detector, monkeypatch):
    client = _client(detector)

    def boom(*args, **kwargs):
        raise MemoryError

    monkeypatch.setattr("nirnet.serve.app._score", boom)
    response = client.post("/v1/detect", files=[("files", ("a.jpg", _jpeg(), "image/jpeg"))])
    assert response.status_code == 503 and "memory" in response.json()["detail"]


def test_every_error_is_json(detector):
    client = _client(detector)
    for response in (client.get("/nope"), client.post("/v1/detect"), client.get("/v1/detect")):
        assert response.status_code >= 400
        assert response.headers["content-type"].startswith("application/json"), response.text


def test_big_jpeg_is_decoded_at_reduced_scale_and_big_png_refused():
    big = Image.fromarray(synthetic_photo(1200, 1600, seed=3))
    buffer = io.BytesIO()
    big.save(buffer, format="JPEG", quality=90)
    img = open_limited(buffer.getvalue(), max_pixels=600_000)
    assert img.size == (800, 600)  # 1/2 scale is the first that fits
    png = io.BytesIO()
    big.save(png, format="PNG")
    with pytest.raises(Exception, match="over the service's limit"):
        open_limited(png.getvalue(), max_pixels=600_000)
    assert open_limited(png.getvalue(), max_pixels=2_000_000).size == (1600, 1200)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_slow_headers_are_dropped_by_the_server(detector):
    uvicorn = pytest.importorskip("uvicorn")
    from nirnet.serve.server import HeaderDeadlineProtocol

    port = _free_port()
    protocol = type("Fast", (HeaderDeadlineProtocol,), {"header_timeout_s": 0.5})
    config = uvicorn.Config(create_app(detector), host="127.0.0.1", port=port, http=protocol, log_level="error")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.time() + 20
        while not server.started and time.time() < deadline:
            time.sleep(0.05)
        with socket.create_connection(("127.0.0.1", port)) as sock:
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")  # headers never finished
            sock.settimeout(5)
            start = time.perf_counter()
            assert sock.recv(100) == b""  # closed by the server
            assert time.perf_counter() - start < 3
        with socket.create_connection(("127.0.0.1", port)) as sock:  # a normal client is unaffected
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            sock.settimeout(5)
            assert b"200 OK" in sock.recv(1000)
    finally:
        server.should_exit = True
        thread.join(10)
