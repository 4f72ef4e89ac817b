"""Scoring at scale on a local 2-CPU Ray: same probabilities as `nirnet detect`, resumable, bad files as rows."""

import importlib.util
import io
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("ray", reason="the ray extra is not installed (pip install 'nirnet[ray]')")
pytest.importorskip("pyarrow", reason="the ray extra is not installed (pip install 'nirnet[ray]')")

from nirnet.detect import Detector  # noqa: E402
from nirnet.scale import plan_chunks, read_rows, score_at_scale, tar_shard  # noqa: E402
from nirnet.testing import synthetic_photo  # noqa: E402


@pytest.fixture(scope="module")
def local_ray(tmp_path_factory):
    import ray

    # Actors inherit the environment Ray starts with: ONNX exports go to a temporary cache, not the user's. The
    # context restores the variable however the fixture ends, a skip included.
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("NIRNET_CACHE", str(tmp_path_factory.mktemp("nirnet_cache")))
        try:
            ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
        except Exception as exc:  # noqa: BLE001 - e.g. a sandbox without shared memory: say so, do not fail
            pytest.skip(f"a local Ray cannot start on this machine: {type(exc).__name__}: {exc}")
        yield
        ray.shutdown()


def _png(seed: int) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(synthetic_photo(70, 90, seed=seed)).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("corpus")
    (root / "folder").mkdir()
    for i in range(5):
        (root / "folder" / f"{i}.png").write_bytes(_png(i))
    (root / "folder" / "broken.jpg").write_bytes(b"not an image")
    shards = root / "shards"
    shards.mkdir()
    tar_shard(shards / "a.tar", {f"k{i}.png": _png(10 + i) for i in range(3)} | {"k0.json": b"{}"})
    tar_shard(shards / "b.tar", {"x.png": _png(20), "y.jpg": b"junk"})
    return root


@pytest.fixture(scope="module")
def full_run(local_ray, corpus, model_dir, tmp_path_factory):
    """One uninterrupted run (Ray actors start slowly, so the tests share it)."""
    out = tmp_path_factory.mktemp("scaled") / "full"
    inputs = [corpus / "folder", corpus / "shards"]
    report = score_at_scale(inputs, out, model=str(model_dir), chunk_size=2, actors=2, jsonl=True)
    return inputs, out, report


def test_ray_scores_equal_detect(full_run, corpus, model_dir):
    _, out, report = full_run
    rows = {r["path"]: r for r in read_rows(out)}
    assert report.rows == len(rows) == 6 + 5 and report.failed == 2
    detector = Detector.from_pretrained(str(model_dir))
    for p in detector.predict_paths(sorted((corpus / "folder").glob("*")), workers=0):
        if p.ok:
            assert rows[p.source]["probability"] == pytest.approx(p.probability, abs=1e-6)
        else:
            assert rows[p.source]["error"]
    for i in range(3):
        image = Image.open(io.BytesIO(_png(10 + i)))
        expected = detector.predict(image)[0].probability
        assert rows[f"{corpus / 'shards' / 'a.tar'}::k{i}.png"]["probability"] == pytest.approx(expected, abs=1e-6)
    assert rows[f"{corpus / 'shards' / 'b.tar'}::y.jpg"]["error"]
    assert {r["model"] for r in rows.values()} == {"test_nirnet"}
    lines = (out / "results.jsonl").read_text().splitlines()
    assert len(lines) == 11 and json.loads(lines[0])["path"]


def test_resumed_run_equals_uninterrupted(full_run, model_dir, tmp_path):
    import shutil

    inputs, out, _ = full_run
    shutil.copytree(out, tmp_path / "part")
    chunks = plan_chunks(inputs, 2)
    for chunk in chunks[1::2]:  # as if the job died before these chunks were written
        (tmp_path / "part" / chunk.name).unlink()
    # The rest is scored on the ONNX Runtime backend when it is installed: the same rows as the torch run.
    onnx = importlib.util.find_spec("onnxruntime") is not None and importlib.util.find_spec("onnxscript") is not None
    backend = "onnx" if onnx else "torch"
    report = score_at_scale(inputs, tmp_path / "part", model=str(model_dir), chunk_size=2, actors=2, backend=backend)
    assert report.skipped_chunks == len(chunks) - len(chunks[1::2])
    full, resumed = read_rows(out, chunks), read_rows(tmp_path / "part", chunks)
    assert [r["path"] for r in full] == [r["path"] for r in resumed]
    np.testing.assert_allclose(
        [r["probability"] or -1 for r in full], [r["probability"] or -1 for r in resumed], atol=1e-4 if onnx else 1e-6
    )


def test_scale_verb_writes_parquet_rows(local_ray, corpus, model_dir, tmp_path):
    """`nirnet scale` end to end through the CLI runner (on the Ray this module started)."""
    from typer.testing import CliRunner

    from nirnet.cli.main import app

    args = ["scale", str(corpus / "folder"), "--out", str(tmp_path / "out"), "--model", str(model_dir)]
    result = CliRunner().invoke(app, [*args, "--actors", "1", "--chunk-size", "3", "--backend", "torch", "--jsonl"])
    assert result.exit_code == 0, result.output
    assert "6 images in 2 chunks (0 already done), 1 could not be read" in " ".join(result.output.split())
    rows = read_rows(tmp_path / "out")
    assert len(rows) == 6 and (tmp_path / "out" / "results.jsonl").is_file()
    bad = CliRunner().invoke(app, ["scale", str(corpus / "folder"), "--out", str(tmp_path / "x"), "--backend", "tpu"])
    assert bad.exit_code == 2 and "Traceback" not in bad.output


def test_scale_attribute_names_families_of_generated_rows(local_ray, corpus, headed_dir, model_dir, tmp_path):
    """`nirnet scale --attribute`: family and top-3 scores for generated verdicts, from paths and tar shards alike,
    equal to `detect`'s; a model without a family head is refused in one line before Ray starts."""
    from typer.testing import CliRunner

    from nirnet.cli.main import app

    out = tmp_path / "out"
    args = ["scale", str(corpus / "folder"), str(corpus / "shards"), "--out", str(out), "--model", str(headed_dir)]
    result = CliRunner().invoke(app, [*args, "--actors", "1", "--threshold", "0", "--backend", "torch", "--attribute"])
    assert result.exit_code == 0, result.output
    rows = {r["path"]: r for r in read_rows(out)}
    scored = [r for r in rows.values() if not r["error"]]
    assert len(scored) == 9 and all(r["family"] in {"sdxl", "flux", "gpt4o"} for r in scored)
    detector = Detector.from_pretrained(str(headed_dir), threshold=0.0)
    for p in detector.predict_paths(sorted((corpus / "folder").glob("*")), workers=0, attribute=True):
        if p.ok:
            assert rows[p.source]["family"] == p.family
            assert json.loads(rows[p.source]["family_scores"]) == pytest.approx(p.family_scores, abs=1e-4)
    bad = CliRunner().invoke(app, ["scale", str(corpus / "folder"), "--out", str(tmp_path / "x"), "--attribute",
                                   "--model", str(model_dir)])  # fmt: skip
    assert bad.exit_code == 2 and "has no family head" in bad.output and "Traceback" not in bad.output


def test_a_bad_backend_fails_in_one_line_before_ray_starts(tmp_path, corpus):
    with pytest.raises(ValueError, match="backend must be one of auto, torch, onnx"):
        score_at_scale([corpus / "folder"], tmp_path / "out", backend="tpu")


def test_path_lists_and_missing_files(tmp_path, corpus):
    (tmp_path / "list.csv").write_text("path\n" + str(corpus / "folder" / "0.png") + "\nmissing.png\n")
    chunks = plan_chunks([tmp_path / "list.csv"], 10)
    assert chunks[0].paths == (str(corpus / "folder" / "0.png"), str(tmp_path / "missing.png"))


def _encoded(fmt: str, seed: int) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(synthetic_photo(70, 90, seed=seed)).save(buffer, format=fmt)
    return buffer.getvalue()


def test_detect_scale_and_serve_accept_the_same_files_and_write_one_schema(local_ray, model_dir, tmp_path):
    """An extension-less JPEG and a PNG named .jpg are scored by `detect` and `scale` alike, and the JSON, CSV,
    Parquet and HTTP rows of the same three files have the same fields and values."""
    import csv

    pytest.importorskip("fastapi", reason="the serve extra (fastapi) is not installed")
    pytest.importorskip("httpx", reason="fastapi's test client needs httpx")
    from fastapi.testclient import TestClient
    from typer.testing import CliRunner

    from nirnet.cli.main import app
    from nirnet.detect import ROW_FIELDS
    from nirnet.serve import ServeConfig, create_app

    files = {"photo": _encoded("JPEG", 1), "png_named.jpg": _encoded("PNG", 2), "c.png": _encoded("PNG", 3)}
    folder = tmp_path / "in"
    folder.mkdir()
    for name, data in files.items():
        (folder / name).write_bytes(data)
    (folder / "notes.txt").write_text("not an image")

    args = ["detect", str(folder), "--json", "--csv", str(tmp_path / "out.csv"), "--model", str(model_dir)]
    result = CliRunner().invoke(app, [*args, "--workers", "0"])
    assert result.exit_code == 0, result.output
    as_json = json.loads(result.stdout[result.stdout.index("{") :])["results"]
    with (tmp_path / "out.csv").open(newline="") as handle:
        as_csv = list(csv.DictReader(handle))
    report = score_at_scale([folder], tmp_path / "scaled", model=str(model_dir), actors=1)
    assert [path.name for path, _ in report.skipped] == ["notes.txt"]
    as_parquet = read_rows(tmp_path / "scaled")
    client = TestClient(create_app(Detector.from_pretrained(str(model_dir)), ServeConfig(decoding_bytes=2**28)))
    upload = [("files", (name, data, "application/octet-stream")) for name, data in files.items()]
    as_http = client.post("/v1/detect", files=upload).json()["results"]

    def by_name(rows: list[dict], from_text: bool = False) -> dict[str, dict]:
        out = {}
        for row in rows:
            common = {k: row[k] for k in ROW_FIELDS}
            if from_text:  # CSV cells are text: empty for none, numbers as written
                common = {k: None if v == "" else v for k, v in common.items()}
                common.update({k: float(common[k]) for k in ("probability", "threshold") if common[k] is not None})
            out[Path(common.pop("path")).name] = common
        return out

    assert [list(r) for r in as_csv] == [list(r) for r in as_parquet] == [list(ROW_FIELDS)] * 3
    assert all(tuple(r)[: len(ROW_FIELDS)] == ROW_FIELDS for r in as_json + as_http)  # JSON adds crop logits
    outputs = [by_name(as_json), by_name(as_csv, from_text=True), by_name(as_parquet), by_name(as_http)]
    reference = outputs[0]
    assert set(reference) == set(files) and all(r["error"] is None for r in reference.values())
    for output in outputs[1:]:
        assert set(output) == set(reference)
        for name, row in output.items():
            assert row["probability"] == pytest.approx(reference[name]["probability"], abs=1e-6)
            assert {k: v for k, v in row.items() if k != "probability"} == {
                k: v for k, v in reference[name].items() if k != "probability"
            }
