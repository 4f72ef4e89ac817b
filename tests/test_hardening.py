"""Careless and hostile use of the command line and the training entry point: one-line errors, nothing lost."""

import csv
import json
import os
import tracemalloc
from pathlib import Path

import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from nirnet.cli.main import app
from nirnet.data.io import MAX_FILE_BYTES, ImageLoadError, load_image
from nirnet.engine.config import ConfigError, load_config
from nirnet.engine.train import SetupError, check_inputs, prepare_run_folder
from nirnet.testing import synthetic_photo

runner = CliRunner()


def _photo(path: Path, seed: int = 0, size=(64, 80), fmt=None) -> Path:
    Image.fromarray(synthetic_photo(size[0], size[1], seed=seed)).save(path, format=fmt)
    return path


def _detect(model_dir, *args):
    return runner.invoke(app, ["detect", *map(str, args), "--model", str(model_dir), "--workers", "0", "--json"])


def _payload(result) -> dict:
    return json.loads(result.stdout[result.stdout.index("{") :])


def _one_line_error(result) -> None:
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output and "error" in result.output


# ---------------------------------------------------------------- reading files


def test_unreadable_file_is_reported_and_the_rest_scored(model_dir, tmp_path, monkeypatch):
    good = _photo(tmp_path / "good.png")
    _photo(tmp_path / "locked.png", seed=1)
    real_open = Path.open

    def deny(self, *args, **kwargs):  # chmod 000 does not stop root, so deny the read itself
        if self.name == "locked.png":
            raise PermissionError(13, "Permission denied")
        return real_open(self, *args, **kwargs)

    monkeypatch.setattr(Path, "open", deny)
    result = _detect(model_dir, tmp_path)
    assert result.exit_code == 1, result.output
    rows = {Path(r["path"]).name: r for r in _payload(result)["results"]}
    assert rows["good.png"]["probability"] is not None
    assert "permission denied" in rows["locked.png"]["error"]
    assert good.is_file()


def test_a_huge_non_image_is_refused_from_its_header(tmp_path):
    path = tmp_path / "big.png"
    with path.open("wb") as handle:  # sparse: 300 MB on paper, nothing on disk
        handle.write(b"this is no image" * 64)
        handle.truncate(300 * 2**20)
    tracemalloc.start()
    with pytest.raises(ImageLoadError, match="not a recognised image format"):
        load_image(path)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 20 * 2**20, f"read {peak / 2**20:.0f} MiB to reject a non-image"


def test_files_over_the_size_limit_are_refused_unread(tmp_path):
    path = tmp_path / "huge.jpg"
    with path.open("wb") as handle:
        handle.truncate(MAX_FILE_BYTES + 1)
    with pytest.raises(ImageLoadError, match="over the limit"):
        load_image(path)


def test_tiny_images_get_an_error_not_a_score(model_dir, tmp_path):
    Image.new("RGB", (1, 1), (9, 9, 9)).save(tmp_path / "dot.png")
    _photo(tmp_path / "ok.png")
    result = _detect(model_dir, tmp_path)
    rows = {Path(r["path"]).name: r for r in _payload(result)["results"]}
    assert rows["dot.png"]["probability"] is None and "too small" in rows["dot.png"]["error"]
    assert rows["ok.png"]["probability"] is not None


# ---------------------------------------------------------------- naming inputs


def test_names_with_glob_characters_are_taken_literally(model_dir, tmp_path):
    literal = _photo(tmp_path / "shot[1].png", seed=1)
    _photo(tmp_path / "shot1.png", seed=2)  # what the pattern shot[1].png would match
    result = _detect(model_dir, literal)
    assert result.exit_code == 0, result.output
    assert [Path(r["path"]).name for r in _payload(result)["results"]] == ["shot[1].png"]


def test_folder_scan_sniffs_content_and_reports_what_it_skipped(model_dir, tmp_path):
    _photo(tmp_path / "no_extension", fmt="JPEG")
    (tmp_path / "paper.pdf").write_bytes(b"%PDF-1.4\n%...")
    (tmp_path / "logo.svg").write_text('<svg xmlns="http://www.w3.org/2000/svg"/>')
    result = _detect(model_dir, tmp_path)
    payload = _payload(result)
    assert [Path(r["path"]).name for r in payload["results"]] == ["no_extension"]
    skipped = {Path(s["path"]).name: s["reason"] for s in payload["skipped"]}
    assert "PDF" in skipped["paper.pdf"] and "SVG" in skipped["logo.svg"]
    assert "skipped" in result.stderr


def test_csv_output_survives_non_utf8_file_names(model_dir, tmp_path):
    name = os.fsdecode(b"caf\xe9.png")  # Latin-1 bytes: not valid UTF-8
    try:
        _photo(tmp_path / name)
    except (UnicodeEncodeError, OSError):
        pytest.skip("the file system refuses non-UTF-8 names")
    out = tmp_path / "scores.csv"
    result = runner.invoke(
        app, ["detect", str(tmp_path), "--model", str(model_dir), "--workers", "0", "--csv", str(out)]
    )
    assert result.exit_code == 0, result.output
    with out.open(encoding="utf-8", errors="surrogateescape", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert Path(rows[0]["path"]).name == name and float(rows[0]["probability"]) >= 0


def test_table_is_not_truncated_when_piped(model_dir, tmp_path):
    folder = tmp_path / ("a_rather_long_folder_name_" * 4)
    folder.mkdir()
    path = _photo(folder / "image_with_a_long_name_too.png")
    result = runner.invoke(app, ["detect", str(path), "--model", str(model_dir), "--workers", "0"])
    assert result.exit_code == 0, result.output
    assert str(path) in result.stdout


# ---------------------------------------------------------------- options


def test_threshold_outside_zero_one_is_refused(model_dir, tmp_path):
    result = runner.invoke(app, ["detect", str(_photo(tmp_path / "x.png")), "--threshold", "1.5"])
    assert result.exit_code == 2 and "less than or equal to 1" in " ".join(result.output.split())


def test_help_shows_no_value_after_flags():
    result = runner.invoke(app, ["detect", "--help"], env={"COLUMNS": "160"})
    line = next(line for line in result.output.splitlines() if "--json" in line)
    assert "<bool>" not in line


def test_model_errors_are_one_line(model_dir, tmp_path):
    image = _photo(tmp_path / "x.png")
    run_folder = tmp_path / "run"
    (run_folder / "final").mkdir(parents=True)
    for name in ("config.json", "model.safetensors"):
        (run_folder / "final" / name).write_bytes((model_dir / name).read_bytes())
    result = runner.invoke(app, ["detect", str(image), "--model", str(run_folder)])
    _one_line_error(result)
    assert "final" in result.output
    _one_line_error(runner.invoke(app, ["detect", str(image), "--model", "no_such_model"]))
    if not torch.cuda.is_available():
        _one_line_error(runner.invoke(app, ["detect", str(image), "--model", str(model_dir), "--device", "cuda"]))


# ---------------------------------------------------------------- training


def test_train_without_config_is_one_line():
    result = runner.invoke(app, ["train"])
    _one_line_error(result)
    assert "-c" in result.output


def test_config_values_are_typed_and_checked(tmp_path):
    assert load_config(None, ["optim.lr=1e-4"]).optim.lr == pytest.approx(1e-4)
    with pytest.raises(ConfigError, match="optim.steps"):
        load_config(None, ["optim.steps=abc"])
    with pytest.raises(ConfigError, match="unknown key 'optim.nope'"):
        load_config(None, ["optim.nope=1"])
    bad = tmp_path / "bad.yaml"
    bad.write_text("optim: [unclosed")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)
    result = runner.invoke(app, ["train", "-c", str(bad)])
    _one_line_error(result)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_train_on_cuda_without_a_gpu_is_one_line(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text(f"data:\n  real: [{tmp_path}]\nrun:\n  device: cuda\n")
    _one_line_error(runner.invoke(app, ["train", "-c", str(config)]))


def test_missing_recon_cache_names_the_command(tmp_path):
    config = load_config(None, [f"data.real=[{tmp_path}]", f"data.recon_cache={tmp_path / 'cache'}"])
    with pytest.raises(SetupError, match="nirnet imprint reconstruct"):
        check_inputs(config)


def test_a_run_folder_is_never_silently_mixed(tmp_path):
    out = tmp_path / "run"
    (out / "step_00000100").mkdir(parents=True)
    (out / "metrics.jsonl").write_text("{}\n")
    (out / "notes.txt").write_text("mine")
    with pytest.raises(SetupError, match="--resume"):
        prepare_run_folder(out, resume=False, overwrite=False)
    prepare_run_folder(out, resume=True, overwrite=False)  # continuing is fine
    assert (out / "metrics.jsonl").exists()
    prepare_run_folder(out, resume=False, overwrite=True)
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"]
    result = runner.invoke(app, ["train", "-c", str(tmp_path / "x.yaml"), "--resume", "--overwrite"])
    _one_line_error(result)


def test_a_model_folder_cannot_make_us_download(model_dir, tmp_path):
    folder = tmp_path / "m"
    folder.mkdir()
    config = json.loads((model_dir / "config.json").read_text())
    config.update(semantic="open_clip:ViT-B-32", semantic_weights="openai")  # a hub tag, not a file
    (folder / "config.json").write_text(json.dumps(config))
    (folder / "model.safetensors").write_bytes((model_dir / "model.safetensors").read_bytes())
    result = runner.invoke(app, ["detect", str(_photo(tmp_path / "x.png")), "--model", str(folder)])
    _one_line_error(result)
    assert "never downloads" in " ".join(result.output.split())


def test_a_whole_image_semantic_view_cannot_be_trained_on_crops():
    from nirnet.engine.train import build_step_module

    config = load_config(None, ["model=test_nirnet", "model_overrides.semantic_view=image"])
    with pytest.raises(SetupError, match="semantic_view"):
        build_step_module(config, torch.device("cpu"))
