"""Generator-family attribution: the head, its files, and every front end (Python, CLI, HTTP, page)."""

import csv
import hashlib
import io
import json
import shutil

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from nirnet.cli.main import app
from nirnet.detect import ROW_FIELDS, Detector
from nirnet.family import (
    UNKNOWN,
    FamilyHead,
    FamilyHeadError,
    family_images,
    fit_head,
    folds_for,
    open_set_folds,
    source_group,
)
from nirnet.models import create_model
from nirnet.testing import synthetic_photo

runner = CliRunner()


def _blobs(n_per: int = 12, dim: int = 6, seed: int = 0) -> tuple[np.ndarray, list[str]]:
    """Three well separated clusters of random features."""
    rng = np.random.default_rng(seed)
    centres = {"a": 4 * np.eye(dim)[0], "b": 4 * np.eye(dim)[1], "c": 4 * np.eye(dim)[2]}
    x = np.concatenate([c + rng.normal(size=(n_per, dim)) for c in centres.values()])
    return x, [name for name in centres for _ in range(n_per)]


def test_head_fits_saves_loads_and_says_unknown(tmp_path):
    x, names = _blobs()
    head = fit_head(x, names + [], parts=("head_input",), c=1.0)
    assert head.families == ["a", "b", "c"]
    assert (np.asarray(head.families)[head.probabilities(x).argmax(1)] == np.asarray(names)).mean() > 0.9
    head.threshold = 0.9  # a confident answer or unknown
    head.save(tmp_path)
    loaded = FamilyHead.load(tmp_path)
    assert loaded.families == head.families and np.allclose(loaded.logits(x), head.logits(x), atol=1e-4)
    answers = loaded.answer(np.stack([4 * np.eye(6)[0], np.zeros(6)]))
    assert answers[0].family == "a" and answers[1].family == UNKNOWN  # the centre of all three is no family
    assert list(answers[1].scores) and len(answers[1].scores) == 3 and abs(sum(answers[0].scores.values()) - 1) < 0.01
    config = json.loads((tmp_path / "family_head.json").read_text())
    assert config["families"] == ["a", "b", "c"] and config["open_set_threshold"] == 0.9


def test_small_families_are_left_out_and_two_classes_work():
    x, names = _blobs()
    head = fit_head(x[:20], names[:20], parts=("head_input",), min_images=8)  # a: 12, b: 8
    assert head.families == ["a", "b"] and head.weight.shape == (2, 6)
    assert head.answer(x[:1])[0].family == "a"
    with pytest.raises(FamilyHeadError, match=">= 2 families"):
        fit_head(x[:12], names[:12])


def test_broken_head_files_are_one_line_errors(tmp_path):
    x, names = _blobs()
    fit_head(x, names, parts=("head_input",)).save(tmp_path)
    (tmp_path / "family_head.json").write_text("{not json")
    with pytest.raises(FamilyHeadError, match="cannot be read"):
        FamilyHead.load(tmp_path)


def test_open_set_folds_hold_out_whole_families_and_source_files():
    x, names = _blobs()
    groups = [f"{n}{i // 2}" for i, n in enumerate(names)]  # pairs of tiles share a source file
    assert folds_for(names) == [["a"], ["b"], ["c"]]
    folds = open_set_folds(x, names, groups, parts=("head_input",), c=1.0)
    assert len(folds) == 3
    for fold, held in zip(folds, "abc"):
        assert set(fold["family"][fold["is_known"] == 0]) == {held}
        assert fold["logits"].shape[1] == 2  # fitted without the held-out family


def test_source_group_keeps_tiles_of_one_file_together():
    assert source_group("repo@1:grid.png box 0 0 256 256", "t1.png") == source_group(
        "repo@1:grid.png box 256 0 512 256", "t2.png"
    )
    assert source_group("repo@1:a.png", "a.png") != source_group("repo@1:a.png", "b.png")


# ------------------------------------------------------------------------------------------- on a tiny detector
def _sha(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _images(folder, n: int = 3) -> list:
    folder.mkdir(exist_ok=True)
    paths = []
    for i in range(n):
        paths.append(folder / f"img{i}.png")
        Image.fromarray(synthetic_photo(96, 128, seed=i)).save(paths[-1])
    return paths


def test_probabilities_are_identical_with_and_without_the_head(model_dir, headed_dir, tmp_path):
    paths = _images(tmp_path / "in")
    plain = Detector.from_pretrained(str(model_dir), threshold=0.0)
    headed = Detector.from_pretrained(str(headed_dir), threshold=0.0)
    assert plain.family_head is None and headed.family_head is not None
    a = plain.predict(paths)
    b = headed.predict(paths, attribute=True)
    c = list(headed.predict_paths(paths, workers=0, attribute=True))
    assert [r.probability for r in a] == [r.probability for r in b] == [r.probability for r in c]
    assert [r.verdict for r in a] == [r.verdict for r in b]
    assert all(r.family is None and r.family_scores is None for r in a)  # not asked: empty, same keys
    for r in b + c:  # threshold 0: every image is "generated", so every image gets a family
        assert r.family in {"sdxl", "flux", "gpt4o"} and len(r.family_scores) == 3
        assert tuple(r.to_row()) == ROW_FIELDS
    assert [r.family_scores for r in b] == [r.family_scores for r in c]


def test_family_only_for_generated_verdicts(headed_dir, tmp_path):
    paths = _images(tmp_path / "in", 2)
    results = Detector.from_pretrained(str(headed_dir), threshold=1.0).predict(paths, attribute=True)
    assert all(r.verdict == "real" and r.family is None and r.family_scores is None for r in results)


def test_head_fitted_on_other_weights_is_not_used(headed_dir, tmp_path):
    folder = tmp_path / "m"
    shutil.copytree(headed_dir, folder)
    torch.manual_seed(1)
    create_model("test_nirnet", semantic="none").save_pretrained(folder)  # retrained weights, old head
    detector = Detector.from_pretrained(str(folder))
    assert detector.family_head is None
    with pytest.raises(FamilyHeadError, match="other weights"):
        detector.predict(_images(tmp_path / "in", 1), attribute=True)


def test_attribute_without_a_head_is_a_one_line_error(model_dir, tmp_path):
    paths = _images(tmp_path / "in", 1)
    with pytest.raises(FamilyHeadError, match="has no family head"):
        Detector.from_pretrained(str(model_dir)).predict(paths, attribute=True)
    result = runner.invoke(app, ["detect", str(paths[0]), "--attribute", "--model", str(model_dir), "--workers", "0"])
    assert result.exit_code == 2
    assert "--attribute: model test_nirnet has no family head" in result.output
    assert "Traceback" not in result.output and len(result.output.strip().splitlines()) == 1


def test_detect_cli_attribute_json_csv_and_table(headed_dir, tmp_path):
    paths = _images(tmp_path / "in", 2)
    out_csv = tmp_path / "out.csv"
    common = ["--model", str(headed_dir), "--threshold", "0", "--workers", "0", "--attribute"]
    result = runner.invoke(app, ["detect", *map(str, paths), *common, "--json", "--csv", str(out_csv)])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout[result.stdout.index("{") :])["results"]
    assert all(r["family"] in {"sdxl", "flux", "gpt4o"} and len(r["family_scores"]) == 3 for r in rows)
    with out_csv.open(newline="") as handle:
        as_csv = list(csv.DictReader(handle))
    assert list(as_csv[0]) == list(ROW_FIELDS)
    assert [json.loads(r["family_scores"]) for r in as_csv] == [r["family_scores"] for r in rows]
    table = runner.invoke(app, ["detect", *map(str, paths), *common])
    assert table.exit_code == 0 and "family (top 3)" in table.stdout


def test_resumed_detect_keeps_families_read_back_only_for_generated_verdicts(headed_dir, tmp_path):
    """Rows read back from --jsonl keep their family while the verdict is still generated; at a threshold that
    makes them real the family goes, as for a freshly scored image."""
    paths = _images(tmp_path / "in", 2)
    log = tmp_path / "log.jsonl"
    common = ["--model", str(headed_dir), "--workers", "0", "--attribute", "--json", "--jsonl", str(log)]
    first = runner.invoke(app, ["detect", str(paths[0]), *common, "--threshold", "0"])
    assert first.exit_code == 0, first.output
    resumed = runner.invoke(app, ["detect", *map(str, paths), *common, "--threshold", "0", "--resume"])
    assert resumed.exit_code == 0, resumed.output
    rows = json.loads(resumed.stdout[resumed.stdout.index("{") :])["results"]
    before = json.loads(first.stdout[first.stdout.index("{") :])["results"][0]
    assert rows[0]["family"] == before["family"] and rows[0]["family_scores"] == before["family_scores"]
    assert rows[1]["family"] in {"sdxl", "flux", "gpt4o"}
    real = runner.invoke(app, ["detect", *map(str, paths), *common, "--threshold", "1", "--resume"])
    assert real.exit_code == 0, real.output
    rows = json.loads(real.stdout[real.stdout.index("{") :])["results"]
    assert [(r["verdict"], r["family"], r["family_scores"]) for r in rows] == [("real", None, None)] * 2


def test_http_attribute_flag_and_page(model_dir, headed_dir):
    pytest.importorskip("fastapi", reason="the serve extra (fastapi) is not installed")
    pytest.importorskip("httpx", reason="fastapi's test client needs httpx")
    from fastapi.testclient import TestClient

    from nirnet.serve import ServeConfig, create_app

    buffer = io.BytesIO()
    Image.fromarray(synthetic_photo(96, 128, seed=5)).save(buffer, format="PNG")
    upload = [("files", ("a.png", buffer.getvalue(), "image/png"))]
    config = ServeConfig(decoding_bytes=2**28)
    headed = TestClient(create_app(Detector.from_pretrained(str(headed_dir), threshold=0.0), config))
    assert headed.get("/healthz").json()["families"] == ["flux", "gpt4o", "sdxl"]
    row = headed.post("/v1/detect?attribute=true", files=upload).json()["results"][0]
    local = headed.app.state.detector.predict(Image.open(io.BytesIO(buffer.getvalue())), attribute=True)[0]
    assert row["family"] == local.family and row["family_scores"] == local.family_scores
    plain_row = headed.post("/v1/detect", files=upload).json()["results"][0]
    assert plain_row["family"] is None and plain_row["probability"] == row["probability"]
    page = headed.get("/").text
    assert "attribute=true" in page and "familyBlock" in page and "Generator family" in page
    plain = TestClient(create_app(Detector.from_pretrained(str(model_dir)), config))
    assert plain.get("/healthz").json()["families"] is None
    refused = plain.post("/v1/detect?attribute=true", files=upload)
    assert refused.status_code == 400 and "no family head" in refused.json()["detail"]


def test_family_fit_cli_writes_a_model_folder_that_attributes(model_dir, tmp_path):
    data = tmp_path / "data"
    (data / "img").mkdir(parents=True)
    rows = ["path,label,generator,source,family"]
    for f, family in enumerate(["alpha", "beta", "gamma"]):
        for i in range(8):
            img = synthetic_photo(80, 80, seed=10 * f + i).astype(np.int16) + 40 * f  # families differ in level
            Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(data / "img" / f"{family}{i}.png")
            rows.append(f"img/{family}{i}.png,1,gen_{family},repo:{family}{i}.png,{family}")
    rows.append("img/alpha0.png,0,real,repo:photo.png,")  # real rows are not read
    (data / "manifest.csv").write_text("\n".join(rows) + "\n")
    assert len(family_images([data])) == 24
    out = tmp_path / "headed"
    args = ["family", "fit", "--corpus", str(data), "--out", str(out), "--model", str(model_dir)]
    result = runner.invoke(app, [*args, "--parts", "head_input", "--seed", "0", "--cache", str(tmp_path / "cache")])
    assert result.exit_code == 0, result.output
    assert "3 families (alpha, beta, gamma)" in result.stdout and "AUROC" in result.stdout
    assert {p.name for p in out.iterdir()} >= {"config.json", "model.safetensors", "family_head.json"}
    assert list((tmp_path / "cache").glob("family-features-*.npz"))  # features cached
    detector = Detector.from_pretrained(str(out), threshold=0.0)
    assert detector.family_head.families == ["alpha", "beta", "gamma"]
    assert detector.predict(data / "img" / "beta1.png", attribute=True)[0].family in {"alpha", "beta", "gamma", UNKNOWN}
    bad = runner.invoke(
        app, [*args, "--parts", "texture", "--cache", str(tmp_path / "cache")]
    )  # the tiny model has no semantic branch
    assert bad.exit_code == 2 and "texture" in bad.output and "Traceback" not in bad.output


def test_the_shipped_default_has_a_family_head_that_attributes(tmp_path):
    from nirnet.detect import DEFAULT_MODEL
    from nirnet.models.registry import SHIPPED_MODELS

    head = FamilyHead.load(SHIPPED_MODELS / DEFAULT_MODEL)
    assert {"sdxl", "gpt4o", "vqgan_ar", "gemini", "stylegan", "flux", "midjourney", "sd1"} <= set(head.families)
    assert head.threshold is not None and 0 < head.threshold < 1 and head.open_set_score == "max_softmax"
    detector = Detector.from_pretrained(backend="torch", threshold=0.0)
    assert detector.family_head is not None, detector.family_head_problem  # fitted on the shipped weights
    path = _images(tmp_path / "in", 1)[0]
    result = detector.predict(path, attribute=True)[0]
    assert result.family in {*head.families, UNKNOWN} and len(result.family_scores) == 3
    assert result.probability == Detector.from_pretrained(backend="torch").predict(path)[0].probability
