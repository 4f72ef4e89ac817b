"""The web service: endpoints, limits and errors (FastAPI's in-process test client, no network)."""

import io
import zlib

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("fastapi", reason="the serve extra (fastapi) is not installed")
pytest.importorskip("httpx", reason="fastapi's test client needs httpx")
from fastapi.testclient import TestClient  # noqa: E402

from nirnet.detect import Detector  # noqa: E402
from nirnet.models import create_model  # noqa: E402
from nirnet.serve import ServeConfig, create_app  # noqa: E402
from nirnet.testing import synthetic_photo  # noqa: E402


def _jpeg(seed: int = 0, size=(120, 96)) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(synthetic_photo(size[1], size[0], seed=seed)).save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def client():
    detector = Detector(create_model("test_nirnet"))
    return TestClient(create_app(detector, ServeConfig(max_files=3, max_file_bytes=200_000)))


def test_healthz_and_page_and_schema(client):
    health = client.get("/healthz").json()
    assert health["status"] == "ok" and health["model"] == "test_nirnet"
    page = client.get("/")
    assert page.status_code == 200 and 'id="file-input"' in page.text and "v1/detect" in page.text
    assert "/v1/detect" in client.get("/openapi.json").json()["paths"]


def test_detect_scores_each_file_and_reports_bad_ones(client):
    files = [
        ("files", ("a.jpg", _jpeg(1), "image/jpeg")),
        ("files", ("notes.txt", b"this is not an image", "text/plain")),
        ("files", ("b.jpg", _jpeg(2), "image/jpeg")),
    ]
    response = client.post("/v1/detect", files=files)
    assert response.status_code == 200
    results = response.json()["results"]
    assert [r["path"] for r in results] == ["a.jpg", "notes.txt", "b.jpg"]
    for r in (results[0], results[2]):
        assert r["error"] is None and len(r["crop_logits"]) >= 1
        assert (r["verdict"] == "generated") == (r["probability"] >= response.json()["threshold"])
    assert results[1]["probability"] is None and "image" in results[1]["error"].lower()


def test_detect_agrees_with_the_python_api(client):
    data = _jpeg(3)
    served = client.post("/v1/detect", files=[("files", ("x.jpg", data, "image/jpeg"))]).json()["results"][0]
    local = client.app.state.detector.predict(Image.open(io.BytesIO(data)))[0]
    assert served["probability"] == pytest.approx(local.probability, abs=1e-6)


def test_scores_of_alpha_and_16_bit_images_are_those_of_the_library(client):
    """The service converts alpha and 16-bit images to RGB a band of rows at a time (to spare memory); 700 x 500
    crosses bands, and the scores must equal the library's, which converts the whole image at once."""
    detector = client.app.state.detector
    service = TestClient(create_app(detector, ServeConfig(decoding_bytes=2**28)))
    photo = synthetic_photo(500, 700, seed=5)
    alpha = np.linspace(40, 255, 700, dtype=np.uint8)[None, :, None].repeat(500, axis=0)
    grey16 = (photo[..., 0].astype(np.uint16) * 257) ^ np.uint16(0x5A)  # uses the low byte too
    for img in (Image.fromarray(np.concatenate([photo, alpha], axis=2), "RGBA"), Image.fromarray(grey16)):
        buffer = io.BytesIO()
        img.save(buffer, format="PNG")
        response = service.post("/v1/detect", files=[("files", ("x.png", buffer.getvalue(), "image/png"))])
        served = response.json()["results"][0]
        local = detector.predict(Image.open(io.BytesIO(buffer.getvalue())))[0]
        assert served["probability"] == pytest.approx(local.probability, abs=1e-6), img.mode


def test_explain_returns_pictures(client):
    response = client.post("/v1/detect?explain=true", files=[("files", ("x.jpg", _jpeg(4), "image/jpeg"))])
    result = response.json()["results"][0]
    for key in ("noise_map_png", "spectrum_png"):
        assert result[key].startswith("data:image/png;base64,")


@pytest.mark.parametrize(
    "files, status, words",
    [
        ([], 422, "files"),  # the field is required
        ([("files", ("bad.txt", b"nope", "text/plain"))], 422, "no file could be read"),
        ([("files", ("empty.png", b"", "image/png"))], 422, "no file could be read"),
        ([("files", (f"{i}.jpg", _jpeg(i), "image/jpeg")) for i in range(4)], 413, "too many files"),
        ([("files", ("big.bmp", b"BM" + bytes(300_000), "image/bmp"))], 413, "larger than the limit"),
    ],
)
def test_clear_json_errors(client, files, status, words):
    response = client.post("/v1/detect", files=files) if files else client.post("/v1/detect")
    assert response.status_code == status
    assert words in str(response.json()["detail"])


def test_huge_dimensions_are_refused_before_decoding(client):
    # A tiny PNG header that claims 40000 x 40000 pixels: refused from the header, never decoded.
    buffer = io.BytesIO()
    Image.fromarray(np.zeros((8, 8, 3), dtype=np.uint8)).save(buffer, format="PNG")
    data = bytearray(buffer.getvalue())
    data[16:24] = (40000).to_bytes(4, "big") * 2  # IHDR width and height
    data[29:33] = zlib.crc32(bytes(data[12:29])).to_bytes(4, "big")  # the chunk's CRC over type + data
    response = client.post("/v1/detect", files=[("files", ("huge.png", bytes(data), "image/png"))])
    assert response.status_code == 422
    assert "pixels" in response.json()["detail"]["results"][0]["error"]


def test_docs_are_served_without_a_cdn(client):
    pytest.importorskip("fastapi_offline", reason="fastapi-offline (part of the serve extra) is not installed")
    docs = client.get("/docs")
    assert docs.status_code == 200 and "docs-assets/swagger-ui-bundle.js" in docs.text
    assert "cdn" not in docs.text.lower().replace("fastapi", "")
    assert client.get("/docs-assets/swagger-ui-bundle.js").status_code == 200


def test_a_model_without_noise_branch_says_so_instead_of_failing():
    """?explain=true asks for a noise map; a model without a noise branch (the frozen-feature probe, or NIRNet with
    use_noise=false) answers 400 naming why, /healthz says it has none, and plain scoring works."""
    detector = Detector(create_model("test_nirnet", use_noise=False, semantic_pretrained=False))
    service = TestClient(create_app(detector))
    assert service.get("/healthz").json()["noise_map"] is False
    files = [("files", ("a.jpg", _jpeg(), "image/jpeg"))]
    refused = service.post("/v1/detect?explain=true", files=files)
    assert refused.status_code == 400 and "no noise branch" in refused.json()["detail"]
    assert service.post("/v1/detect", files=files).status_code == 200
    assert TestClient(create_app(Detector(create_model("test_nirnet")))).get("/healthz").json()["noise_map"] is True
