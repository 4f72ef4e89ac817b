"""The service under hostile and careless use: admission, body caps while streaming, timeouts, bounded decodes,
JSON for every error, health checks that do not queue."""

import asyncio
import contextlib
import http.client
import io
import json
import select
import socket
import threading
import time
from multiprocessing.pool import ThreadPool

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("fastapi", reason="the serve extra (fastapi) is not installed")
pytest.importorskip("httpx", reason="fastapi's test client needs httpx")
from fastapi.testclient import TestClient  # noqa: E402

from nirnet.data.io import ImageLoadError, read_header  # noqa: E402
from nirnet.detect import Detector  # noqa: E402
from nirnet.models import create_model  # noqa: E402
from nirnet.serve import ServeConfig, create_app  # noqa: E402
from nirnet.serve.budget import MemoryBudget  # noqa: E402
from nirnet.serve.decode import decode_cost, plan_decode, prepare_upload  # noqa: E402
from nirnet.serve.guard import RequestGuard  # noqa: E402
from nirnet.serve.memory import MIN_DECODING_BYTES, RESERVE_BYTES, plan_memory  # noqa: E402
from nirnet.testing import synthetic_photo  # noqa: E402


def _jpeg(size=(120, 96), seed=0) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(synthetic_photo(size[1], size[0], seed=seed)).save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def detector():
    return Detector(create_model("test_nirnet"))


def _config(**config) -> ServeConfig:
    """A configuration with a fixed decoding budget (measuring the model at start takes seconds on a busy CPU)."""
    return ServeConfig(**{"decoding_bytes": 256 * 2**20, **config})


def _client(detector, **config) -> TestClient:
    return TestClient(create_app(detector, _config(**config)), raise_server_exceptions=False)


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
    app = create_app(detector, _config(max_pending=1, max_waiting=0))
    app.pending = 1  # one request already in progress
    response = TestClient(app).post("/v1/detect", files=[("files", ("a.jpg", _jpeg(), "image/jpeg"))])
    assert response.status_code == 503 and response.headers["retry-after"] == "1"
    assert "busy" in response.json()["detail"]
    assert TestClient(app).get("/healthz").status_code == 200  # health is never refused
    app.pending = 0


def test_health_is_fast_while_the_model_is_busy(detector):
    app = create_app(detector, _config())
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
    for method, path in (("POST", "/v1/detect/"), ("GET", "/healthz/")):  # the trailing-slash redirect
        response = client.request(method, path, follow_redirects=False)
        assert response.status_code == 307 and response.headers["location"].endswith(path.rstrip("/"))
        assert response.json()["detail"].startswith("Temporary Redirect: use")


def test_big_jpeg_is_decoded_at_reduced_scale_and_big_png_refused(detector):
    big = Image.fromarray(synthetic_photo(1200, 1600, seed=3))
    buffer = io.BytesIO()
    big.save(buffer, format="JPEG", quality=90)
    plan = plan_decode(read_header(io.BytesIO(buffer.getvalue())), max_pixels=600_000, budget_bytes=2**30)
    assert plan.reduce == 2  # 1/2 scale is the first that fits
    item, error = prepare_upload(detector.model.config, buffer, "big.jpg", plan, 600_000)
    assert error is None and (item.width, item.height) == (800, 600)
    png = io.BytesIO()
    big.save(png, format="PNG")
    with pytest.raises(ImageLoadError, match="over the service's limit"):
        plan_decode(read_header(io.BytesIO(png.getvalue())), max_pixels=600_000, budget_bytes=2**30)
    assert plan_decode(read_header(io.BytesIO(png.getvalue())), max_pixels=2_000_000, budget_bytes=2**30).reduce == 1


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_slow_headers_are_dropped_by_the_server(detector):
    with _serving(create_app(detector, _config()), header_timeout_s=0.5) as port:
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


@contextlib.contextmanager
def _serving(app, header_timeout_s: float = 10.0):
    """``app`` under uvicorn with the service's protocol on a free loopback port, for the duration of the block."""
    uvicorn = pytest.importorskip("uvicorn")
    from nirnet.serve.server import HeaderDeadlineProtocol

    port = _free_port()
    protocol = type("Fast", (HeaderDeadlineProtocol,), {"header_timeout_s": header_timeout_s})
    config = uvicorn.Config(app, host="127.0.0.1", port=port, http=protocol, log_level="critical")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.time() + 20
        while not server.started and time.time() < deadline:
            time.sleep(0.05)
        yield port
    finally:
        server.should_exit = True
        thread.join(10)


BOUNDARY = "testboundary42"


def _multipart(files: list[tuple[str, bytes]]) -> bytes:
    parts = [
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="files"; filename="{name}"\r\n\r\n'.encode()
        + data
        + b"\r\n"
        for name, data in files
    ]
    return b"".join(parts) + f"--{BOUNDARY}--\r\n".encode()


def _post(port: int, body: bytes) -> tuple[int, dict]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("POST", "/v1/detect", body, {"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"})
        response = conn.getresponse()
        return response.status, json.loads(response.read())
    finally:
        conn.close()


def _raw_reply(sock: socket.socket) -> tuple[int, dict]:
    """(status, JSON body) of the server's reply on a raw socket, read until it closes."""
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    head, body = data.split(b"\r\n\r\n", 1)
    assert b"content-type: application/json" in head.lower(), head
    return int(head.split(b" ")[1]), json.loads(body)


def test_a_client_dribbling_its_body_holds_no_slot_and_gets_408(detector):
    """One scoring slot, no waiting room: a client sending its body one byte every 0.2 s used to hold the slot
    (every normal upload got 503). Bodies are now read before a slot is taken, and the default minimum rate
    (8 KiB/s after a 5 s grace) ends the dribbler with a JSON 408."""
    app = create_app(detector, _config(max_pending=1, max_waiting=0))
    upload = _multipart([("a.jpg", _jpeg())])
    with _serving(app) as port, socket.create_connection(("127.0.0.1", port)) as slow:
        head = _multipart([("slow.jpg", b"")]).split(b"\r\n--" + BOUNDARY.encode() + b"--")[0]
        slow.sendall(
            b"POST /v1/detect HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n"
            + f"Content-Type: multipart/form-data; boundary={BOUNDARY}\r\n\r\n".encode()
            + head
        )
        started = time.perf_counter()
        stop = threading.Event()
        replies: list = []

        def dribble() -> None:
            # Dribble for 4 s, then fall silent until the reply comes: the rate limit ends the body at about 5 s.
            # A byte written after the server has answered and closed makes its kernel reset the connection,
            # which can discard the unread reply, so the last byte goes out well before the deadline.
            while not stop.is_set():
                if select.select([slow], [], [], 0.2)[0]:
                    slow.settimeout(10)
                    replies.append((_raw_reply(slow), time.perf_counter() - started))
                    return
                if time.perf_counter() - started < 4.0:
                    with contextlib.suppress(OSError):
                        slow.sendall(b"x")

        dribbler = threading.Thread(target=dribble)
        dribbler.start()
        try:
            time.sleep(0.5)
            statuses = [_post(port, upload)[0] for _ in range(3)]
            assert statuses == [200, 200, 200]  # before: 503, the dribbler held the only slot
            dribbler.join(15)
        finally:
            stop.set()
            dribbler.join()
    assert replies, "the dribbler got no reply"
    (status, body), waited = replies[0]
    assert status == 408 and "too slowly" in body["detail"] and 4.5 < waited < 9
    assert app.pending == 0 and not app.waiting


def test_malformed_http_is_answered_json_by_the_server(detector):
    """What h11 refuses before the application (bad request line, bad Content-Length, bad chunk size) gets a JSON
    400 from the server's protocol, not uvicorn's plain text."""
    app = create_app(detector, _config())
    requests = [
        b"GARBAGE\r\n\r\n",
        b"POST /v1/detect HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n",
        b"POST /v1/detect HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n",
        b"POST /v1/detect HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nxx\r\n",
    ]
    with _serving(app) as port:
        for raw in requests:
            with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
                sock.sendall(raw)
                status, body = _raw_reply(sock)
                assert status == 400 and "invalid HTTP request" in body["detail"], raw


def _png(mode: str, size: tuple[int, int], seed: int = 0) -> bytes:
    rng = np.random.default_rng(seed)
    bands = len(mode)
    img = Image.fromarray(rng.integers(0, 256, (size[1], size[0], bands), dtype=np.uint8), mode)
    buffer = io.BytesIO()
    img.save(buffer, format="PNG")
    return buffer.getvalue()


def test_an_image_over_the_decoding_memory_is_reduced_or_refused_from_its_header(detector):
    """4 MiB for decoding: a 2000x1000 JPEG (8 MB decoded) is decoded at half scale; a 1000x1000 RGBA PNG (about
    16 MB with its RGB result) is refused from its header, and alone it makes the request a JSON 422."""
    client = _client(detector, decoding_bytes=4 * 2**20)
    png = _png("RGBA", (1000, 1000))
    truncated = png[: len(png) // 3]  # refused before decoding: the header is all that is read
    files = [
        ("files", ("big.jpg", _jpeg(size=(2000, 1000)), "image/jpeg")),
        ("files", ("alpha.png", png, "image/png")),
        ("files", ("cut.png", truncated, "image/png")),
    ]
    response = client.post("/v1/detect", files=files)
    assert response.status_code == 200
    jpeg, alpha, cut = response.json()["results"]
    assert jpeg["error"] is None and (jpeg["width"], jpeg["height"]) == (1000, 500)
    for refused in (alpha, cut):
        assert refused["probability"] is None and "over the service's decoding memory of 4 MiB" in refused["error"]
    alone = client.post("/v1/detect", files=[("files", ("alpha.png", png, "image/png"))])
    assert alone.status_code == 422 and "decoding memory" in alone.json()["detail"]["results"][0]["error"]


def test_images_are_decoded_only_while_their_decoded_size_fits_the_budget(detector, monkeypatch):
    """Two decode slots, but memory for one 600x400 JPEG at a time: four concurrent files never decode together.
    (Before, decode slots alone bounded it, whatever the images' size.)"""
    cost = decode_cost(600, 400, "RGB", rotated=False, crop_copy=detector.model.config.preprocess.input_scale == 1.0)
    app = create_app(detector, _config(decode_slots=2, decoding_bytes=cost * 3 // 2))
    decoding, most = [0], [0]
    lock = threading.Lock()
    real = prepare_upload

    def counted(*args):
        with lock:
            decoding[0] += 1
            most[0] = max(most[0], decoding[0])
        try:
            time.sleep(0.15)
            return real(*args)
        finally:
            with lock:
                decoding[0] -= 1

    monkeypatch.setattr("nirnet.serve.app.prepare_upload", counted)
    files = [("files", (f"{i}.jpg", _jpeg(size=(600, 400), seed=i), "image/jpeg")) for i in range(2)]
    with TestClient(app) as client, ThreadPool(2) as pool:  # one event loop for both requests, as in a server
        responses = pool.map(lambda _: client.post("/v1/detect", files=files), range(2))
    assert [r.status_code for r in responses] == [200, 200]
    assert {r["width"] for response in responses for r in response.json()["results"]} == {600}  # full size
    assert most[0] == 1


def test_the_decoding_budget_is_what_the_model_leaves_of_the_limit(detector, monkeypatch):
    plan = create_app(detector, ServeConfig(max_memory_bytes=64 * 2**30)).state.memory
    assert plan.model > 50 * 2**20  # measured through a full batch (this process: torch, the test model)
    assert plan.decoding == plan.limit - plan.model - RESERVE_BYTES and not plan.short
    monkeypatch.setattr("nirnet.serve.memory.model_footprint", lambda _: 900 * 2**20)
    tight = plan_memory(detector, 1000 * 2**20)
    assert tight.short and tight.decoding == MIN_DECODING_BYTES


def test_memory_budget_is_first_come_first_served_and_survives_cancellation():
    async def scenario():
        budget = MemoryBudget(100)
        order = []

        async def use(name: str, amount: int, seconds: float) -> None:
            async with budget.hold(amount):
                order.append(name)
                await asyncio.sleep(seconds)

        first = asyncio.create_task(use("big", 80, 0.05))
        await asyncio.sleep(0.01)
        leaver = asyncio.create_task(use("leaver", 60, 0))
        second = asyncio.create_task(use("next", 60, 0))
        small = asyncio.create_task(use("small", 10, 0))  # fits now, but waits its turn behind "next"
        await asyncio.sleep(0.01)
        leaver.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await leaver
        await asyncio.gather(first, second, small)
        return order, budget

    order, budget = asyncio.run(scenario())
    assert order == ["big", "next", "small"] and budget.used == 0 and budget.idle


def test_a_client_that_leaves_the_line_is_not_served():
    called = []

    async def app(scope, receive, send):
        called.append(scope["id"])
        await asyncio.sleep(0.1)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"{}"})

    guard = RequestGuard(app, ("/v1/detect",), 5000, 1, 5, max_waiting=2, wait_timeout_s=5)

    async def leaving_request():
        messages = [{"type": "http.request", "body": b"x", "more_body": False}]

        async def receive():
            if messages:
                return messages.pop()
            await asyncio.sleep(0.02)
            return {"type": "http.disconnect"}

        async def send(message):
            raise AssertionError("nothing is sent to a client that left")

        await guard({"type": "http", "path": "/v1/detect", "headers": [], "id": "gone"}, receive, send)

    async def scenario():
        first = asyncio.create_task(_request(guard, 0))
        await asyncio.sleep(0.01)
        await leaving_request()
        return await first

    assert asyncio.run(scenario()) == 200
    assert called == [0] and guard.pending == 0 and not guard.waiting


def test_serve_verb_offers_the_new_limits():
    from typer.testing import CliRunner

    from nirnet.cli.main import app

    result = CliRunner().invoke(app, ["serve", "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    for option in ("--max-memory-mb", "--body-timeout", "--min-body-rate"):
        assert option in result.output
