"""The one decision rule: validated in the library, the same comparison for verdicts and metrics, passed in at
construction by every front end."""

from __future__ import annotations

import io
import json
import math

import pytest
from PIL import Image
from typer.testing import CliRunner

from nirnet.cli.main import app
from nirnet.decision import DEFAULT_THRESHOLD, DecisionRule
from nirnet.detect import Detector
from nirnet.eval.metrics import binary_metrics
from nirnet.eval.stats import balanced_accuracy
from nirnet.models import create_model
from nirnet.models.base import DetectorModel
from nirnet.testing import synthetic_photo


@pytest.mark.parametrize("bad", [-0.1, 1.5, math.nan, True, "0.5", None])
def test_an_invalid_threshold_is_a_one_line_error_in_the_library(bad, tmp_path):
    with pytest.raises(ValueError, match=r"threshold must be a probability in \[0, 1\]"):
        DecisionRule(bad)
    if bad is None:
        return  # None means "the model's threshold" to a detector
    with pytest.raises(ValueError, match="threshold must be"):
        Detector(create_model("test_nirnet"), threshold=bad)
    detector = Detector(create_model("test_nirnet"))
    with pytest.raises(ValueError, match="threshold must be"):
        detector.threshold = bad
    model = create_model("test_nirnet")
    model.save_pretrained(tmp_path / "m")
    with pytest.raises(ValueError, match="threshold must be"):
        DetectorModel.store_threshold(tmp_path / "m", bad)


def test_verdicts_and_metrics_share_the_comparison():
    rule = DecisionRule(0.25)
    scores = [0.0, 0.2499, 0.25, 0.9]
    assert [rule.verdict(s) for s in scores] == ["real", "real", "generated", "generated"]
    assert rule.flags(scores).tolist() == [False, False, True, True]
    labels = [0, 0, 1, 1]
    assert binary_metrics(labels, scores, 0.25)["acc"] == 1.0  # a score equal to the threshold is "generated"
    assert balanced_accuracy(labels, scores, 0.25) == 1.0
    assert DecisionRule().threshold == DEFAULT_THRESHOLD == create_model("test_nirnet").config.threshold
    assert DecisionRule.of(None, 0.7) == DecisionRule(0.7) and DecisionRule.of(rule) is rule


def test_every_front_end_passes_the_rule_at_construction(model_dir, tmp_path):
    """A threshold of 0 makes every image "generated" and 1 (nearly) every image "real", in each front end."""
    Image.fromarray(synthetic_photo(64, 80, seed=1)).save(tmp_path / "a.png")
    for threshold, verdict in ((0.0, "generated"), (1.0, "real")):
        args = ["detect", str(tmp_path / "a.png"), "--json", "--model", str(model_dir), "--workers", "0"]
        result = CliRunner().invoke(app, [*args, "--threshold", str(threshold)])
        assert result.exit_code == 0, result.output
        payload = json.loads(result.stdout[result.stdout.index("{") :])
        assert payload["threshold"] == threshold and payload["results"][0]["verdict"] == verdict
        detector = Detector.from_pretrained(str(model_dir), threshold=threshold)
        assert detector.predict(tmp_path / "a.png")[0].to_row()["verdict"] == verdict
    pytest.importorskip("fastapi", reason="the serve extra (fastapi) is not installed")
    pytest.importorskip("httpx", reason="fastapi's test client needs httpx")
    from fastapi.testclient import TestClient

    from nirnet.serve import ServeConfig, create_app

    client = TestClient(create_app(Detector.from_pretrained(str(model_dir), threshold=0.0), ServeConfig()))
    buffer = io.BytesIO()
    Image.fromarray(synthetic_photo(64, 80, seed=2)).save(buffer, format="PNG")
    body = client.post("/v1/detect", files=[("files", ("b.png", buffer.getvalue(), "image/png"))]).json()
    assert body["threshold"] == 0.0 and body["results"][0]["verdict"] == "generated"


def test_scale_refuses_an_invalid_threshold_before_ray_starts(tmp_path):
    pytest.importorskip("ray", reason="the ray extra is not installed (pip install 'nirnet[ray]')")
    from nirnet.scale import score_at_scale

    with pytest.raises(ValueError, match="threshold must be"):
        score_at_scale([tmp_path], tmp_path / "out", threshold=1.5)
