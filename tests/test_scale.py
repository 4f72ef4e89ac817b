"""Scoring at scale on a local 2-CPU Ray: same probabilities as `nirnet detect`, resumable, bad files as rows."""

import importlib.util
import io
import json

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


def test_a_bad_backend_fails_in_one_line_before_ray_starts(tmp_path, corpus):
    with pytest.raises(ValueError, match="backend must be one of torch, onnx"):
        score_at_scale([corpus / "folder"], tmp_path / "out", backend="tpu")


def test_path_lists_and_missing_files(tmp_path, corpus):
    (tmp_path / "list.csv").write_text("path\n" + str(corpus / "folder" / "0.png") + "\nmissing.png\n")
    chunks = plan_chunks([tmp_path / "list.csv"], 10)
    assert chunks[0].paths == (str(corpus / "folder" / "0.png"), str(tmp_path / "missing.png"))
