"""The ONNX Runtime backend: the same probabilities as PyTorch, one export per model kept in the user cache (a
changed model gets a new one, a broken file is replaced), and clear errors for what cannot run."""

import json
import sys

import pytest
import torch
from PIL import Image

pytest.importorskip("onnxscript", reason="the onnx backend needs onnxscript (pip install 'nirnet[onnx]')")
pytest.importorskip("onnxruntime", reason="the onnx backend needs onnxruntime (pip install 'nirnet[onnx]')")

from nirnet import runtime  # noqa: E402
from nirnet.detect import Detector  # noqa: E402
from nirnet.models import create_model  # noqa: E402
from nirnet.testing import synthetic_photo  # noqa: E402


@pytest.fixture
def cache(tmp_path, monkeypatch):
    folder = tmp_path / "cache"
    monkeypatch.setenv("NIRNET_CACHE", str(folder))
    return folder


def _images(n: int = 3) -> list[Image.Image]:
    return [Image.fromarray(synthetic_photo(80 + 16 * i, 96, seed=i)) for i in range(n)]


def test_onnx_backend_scores_like_torch_and_exports_once(cache, monkeypatch):
    # Every branch, with a semantic backbone that reads the whole image: the graph's second input (view) is fed too.
    model = create_model("test_nirnet", semantic_view="image").eval()
    assert model.config.uses_image_view
    torch_scores = Detector(model).predict_images(_images())
    onnx_detector = Detector(model, backend="onnx")
    assert onnx_detector.forward.input_names == ["crops", "view"]
    onnx_scores = onnx_detector.predict_images(_images())
    for (p_torch, logits_torch), (p_onnx, logits_onnx) in zip(torch_scores, onnx_scores):
        assert abs(p_torch - p_onnx) < 1e-4
        assert max(abs(a - b) for a, b in zip(logits_torch, logits_onnx)) < 1e-3
    files = list((cache / "onnx").glob("*.onnx"))
    assert len(files) == 1 and files[0].name.startswith("test_nirnet-")
    assert not list((cache / "onnx").glob("*.tmp"))

    def no_export(*args, **kwargs):
        raise AssertionError("a cached model was exported again")

    monkeypatch.setattr("nirnet.export.export_onnx", no_export)
    again = Detector(model, backend="onnx").predict_images(_images(1))
    assert abs(again[0][0] - onnx_scores[0][0]) < 1e-6


def test_a_changed_model_gets_its_own_export_and_a_broken_file_is_replaced(cache):
    model = create_model("test_nirnet", semantic="none").eval()
    first = runtime.OnnxForward(model)
    with torch.no_grad():
        model.head[-1].bias.add_(1.0)  # the same config, other weights: a stale graph would score the old model
    second = runtime.OnnxForward(model)
    assert first.path != second.path
    crops = torch.rand(2, 3, 64, 64)
    with torch.inference_mode():
        assert torch.allclose(second(crops), model(crops), atol=1e-4)
    second.path.write_bytes(b"not an onnx file")  # e.g. cut short by a full disk
    repaired = runtime.OnnxForward(model)
    with torch.inference_mode():
        assert torch.allclose(repaired(crops), model(crops), atol=1e-4)


def test_backend_errors_say_what_to_do(cache, monkeypatch):
    model = create_model("test_nirnet", semantic="none")
    with pytest.raises(ValueError, match="backend must be one of torch, onnx"):
        Detector(model, backend="tensorrt")
    with pytest.raises(ValueError, match="runs on the CPU"):
        runtime.forward_for(model, "onnx", torch.device("cuda"))

    def broken_exporter(*args, **kwargs):
        raise TypeError("an operator the exporter does not know")

    with monkeypatch.context() as patch:
        patch.setattr(torch.onnx, "export", broken_exporter)
        with pytest.raises(ValueError, match="does not know; score with the torch backend instead"):
            Detector(model, backend="onnx")
    assert not list(cache.rglob("*.tmp")) and not list(cache.rglob("*.onnx"))
    blocker = cache.parent / "a_file"
    blocker.write_text("")
    monkeypatch.setenv("NIRNET_CACHE", str(blocker / "cache"))  # a folder that cannot be made
    with pytest.raises(ValueError, match="set NIRNET_CACHE to a writable folder"):
        Detector(model, backend="onnx")
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    with pytest.raises(ValueError, match=r"pip install 'nirnet\[onnx\]'"):
        Detector(model, backend="onnx")


def test_cli_detect_with_the_onnx_backend_keeps_stdout_json(cache, model_dir, tmp_path):
    from typer.testing import CliRunner

    from nirnet.cli.main import app

    folder = tmp_path / "images"
    folder.mkdir()
    for i, img in enumerate(_images(2)):
        img.save(folder / f"{i}.png")
    result = CliRunner().invoke(app, ["detect", str(folder), "-m", str(model_dir), "--json", "--backend", "onnx"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)  # the exporter's progress lines went to stderr
    assert payload["scored"] == 2
    bad = CliRunner().invoke(app, ["detect", str(folder), "-m", str(model_dir), "--backend", "tpu"])
    assert bad.exit_code == 2 and "backend must be one of" in bad.output and "Traceback" not in bad.output
