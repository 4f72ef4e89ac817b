"""The ONNX Runtime backend: the same probabilities as PyTorch, one export per model kept in the user cache (a
changed model gets a new one, a broken file is replaced), and clear errors for what cannot run. The default backend,
auto: ONNX Runtime on the CPU, else PyTorch with a one-line note; GPUs keep PyTorch.

tests/conftest.py makes auto pick PyTorch for the rest of the suite (NIRNET_AUTO_BACKEND=torch); the tests of auto
remove that. Exports take seconds, so the tests share them through the cache where they can."""

import json
import sys

import pytest
import torch
from PIL import Image

pytest.importorskip("onnxscript", reason="the onnx backend needs onnxscript (pip install onnxscript)")
pytest.importorskip("onnxruntime", reason="the onnx backend needs onnxruntime (pip install onnxruntime)")

from nirnet import runtime  # noqa: E402
from nirnet.detect import Detector  # noqa: E402
from nirnet.models import create_model  # noqa: E402
from nirnet.testing import synthetic_photo  # noqa: E402


@pytest.fixture
def cache(tmp_path, monkeypatch):
    folder = tmp_path / "cache"
    monkeypatch.setenv("NIRNET_CACHE", str(folder))
    return folder


@pytest.fixture
def auto(monkeypatch):
    """The default backend as users get it (the suite's conftest otherwise makes auto pick PyTorch)."""
    monkeypatch.delenv(runtime.AUTO_ENV, raising=False)


def _images(n: int = 3) -> list[Image.Image]:
    return [Image.fromarray(synthetic_photo(80 + 16 * i, 96, seed=i)) for i in range(n)]


def test_auto_on_the_cpu_exports_once_with_a_note_and_scores_like_torch(cache, auto, monkeypatch, capsys):
    # Every branch, with a semantic backbone that reads the whole image: the graph's second input (view) is fed too.
    model = create_model("test_nirnet", semantic_view="image").eval()
    assert model.config.uses_image_view
    torch_detector = Detector(model, backend="torch")
    assert torch_detector.backend == "torch" and torch_detector.forward is torch_detector.model
    torch_scores = torch_detector.predict_images(_images())
    capsys.readouterr()
    onnx_detector = Detector(model)  # the default, auto: ONNX Runtime on the CPU
    assert onnx_detector.backend == "onnx" and isinstance(onnx_detector.forward, runtime.OnnxForward)
    printed = capsys.readouterr()
    assert printed.out == ""  # stdout is for results
    assert printed.err.startswith("note: exporting test_nirnet for ONNX Runtime once") and printed.err.count("\n") == 1
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
    assert Detector(model).backend == "onnx"
    assert capsys.readouterr().err == ""  # a cached model: no note


def test_auto_falls_back_to_torch_in_one_line(cache, auto, monkeypatch, capsys):
    model = create_model("test_nirnet", semantic="none")

    def broken_exporter(*args, **kwargs):
        raise TypeError("an operator the exporter does not know\n(and a long story on further lines)")

    with monkeypatch.context() as patch:
        patch.setattr(torch.onnx, "export", broken_exporter)
        detector = Detector(model)
    assert detector.backend == "torch" and detector.forward is detector.model
    printed = capsys.readouterr()
    assert printed.out == "" and "Traceback" not in printed.err
    # The export note, then one line that says why PyTorch scores (the cause's first line only).
    exporting, fallback = printed.err.splitlines()
    assert exporting.startswith("note: exporting test_nirnet")
    assert fallback.startswith("note: scoring with PyTorch") and fallback.endswith("does not know)")
    assert not list(cache.rglob("*.onnx"))

    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # not installed
    detector = Detector(model)
    assert detector.backend == "torch"
    printed = capsys.readouterr()
    assert printed.err.count("\n") == 1 and "onnxruntime is not installed" in printed.err


def test_auto_on_a_gpu_stays_torch(cache, auto, monkeypatch, capsys):
    model = create_model("test_nirnet", semantic="none")
    monkeypatch.setattr("nirnet.export.export_onnx", lambda *a, **k: pytest.fail("auto exported for a GPU"))
    backend, forward = runtime.select_forward(model, "auto", torch.device("cuda"))
    assert backend == "torch" and forward is model
    assert capsys.readouterr().err == ""
    monkeypatch.setenv(runtime.AUTO_ENV, "torch")  # the opt-out, on the CPU
    assert runtime.select_forward(model, "auto", torch.device("cpu")) == ("torch", model)


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
    with pytest.raises(ValueError, match="backend must be one of auto, torch, onnx"):
        Detector(model, backend="tensorrt")
    with pytest.raises(ValueError, match="runs on the CPU"):
        runtime.select_forward(model, "onnx", torch.device("cuda"))

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
    with pytest.raises(ValueError, match="pip install onnxruntime onnxscript"):
        Detector(model, backend="onnx")


def test_cli_detect_with_the_onnx_backend_keeps_stdout_json(cache, auto, model_dir, tmp_path):
    from typer.testing import CliRunner

    from nirnet.cli.main import app

    folder = tmp_path / "images"
    folder.mkdir()
    for i, img in enumerate(_images(2)):
        img.save(folder / f"{i}.png")
    result = CliRunner().invoke(app, ["detect", str(folder), "-m", str(model_dir), "--json", "--backend", "onnx"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)  # the export note went to stderr
    assert payload["scored"] == 2
    # The default (auto) reuses that export: the same scores, and stdout still holds only the JSON.
    default = CliRunner().invoke(app, ["detect", str(folder), "-m", str(model_dir), "--json"])
    assert default.exit_code == 0, default.output
    assert json.loads(default.stdout) == payload
    bad = CliRunner().invoke(app, ["detect", str(folder), "-m", str(model_dir), "--backend", "tpu"])
    assert bad.exit_code == 2 and "backend must be one of" in bad.output and "Traceback" not in bad.output
