"""ONNX export: ONNX Runtime must agree with PyTorch within 1e-4 on the exported logits."""

import json

import pytest

pytest.importorskip("onnxscript", reason="ONNX export needs onnxscript (pip install 'nirnet[onnx]')")
ort = pytest.importorskip("onnxruntime", reason="the check needs onnxruntime (pip install 'nirnet[onnx]')")
onnx = pytest.importorskip("onnx")

from nirnet.data.transforms import PreprocessConfig  # noqa: E402
from nirnet.detect import Detector  # noqa: E402
from nirnet.export import check_onnx, export_onnx  # noqa: E402
from nirnet.models import create_model  # noqa: E402


@pytest.mark.parametrize("name", ["default", "test_nirnet", "texture"])
def test_onnx_runtime_agrees_with_pytorch(tmp_path, name):
    # The embedded default, a model with every branch (semantic backbone included), and the texture-statistics branch.
    if name == "default":
        model = Detector.from_pretrained().model
    elif name == "texture":
        model = create_model("test_nirnet", semantic_pool="stats", semantic_taps=(0, 2)).eval()
    else:
        model = create_model(name)
    path = export_onnx(model, tmp_path / "model.onnx")
    check = check_onnx(model, path, batch=3)
    assert check.within(1e-4), check
    meta = json.loads({p.key: p.value for p in onnx.load(str(path)).metadata_props}["nirnet"])
    assert PreprocessConfig.from_dict(meta["preprocess"]) == model.config.preprocess
    assert meta["name"] == model.config.name
    assert meta["preprocess"]["input_scale"] == model.config.preprocess.input_scale
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()][0] == "crops"
    assert not list(tmp_path.glob("*.tmp"))  # written atomically


def test_the_check_judges_the_logit_gap_by_the_logits_size():
    from nirnet.export import OnnxCheck

    assert OnnxCheck(1.8e-4, 3, max_abs_logit=430.0).within(1e-4)  # float32 rounding at |logit| 430
    assert not OnnxCheck(1.8e-4, 3, max_abs_logit=0.5).within(1e-4)  # below |logit| 1 the bar is absolute
    assert not OnnxCheck(0.1, 3, max_abs_logit=430.0).within(1e-4)
