"""Every `nirnet` verb runs end to end through the CLI runner on tiny inputs, so a wiring bug (an option that does
not reach the library, a library default the verb contradicts) fails the default suite. Verbs tested elsewhere are
listed in VERB_TESTS with the test that runs them; the first test fails when a verb has none."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import typer
from PIL import Image
from typer.testing import CliRunner

from nirnet.cli.main import app
from nirnet.testing import synthetic_photo

TESTS = Path(__file__).parent

#: verb -> (test file, test function) that runs it through the CLI runner and checks its result.
VERB_TESTS = {
    "train": ("test_verbs.py", "test_train_writes_a_model_that_detect_loads"),
    "pretrain-denoiser": ("test_denoise.py", "test_cli_pretrains_and_reports"),
    "eval": ("test_eval.py", "test_eval_calibrate_stores_threshold"),
    "detect": ("test_detect.py", "test_detect_cli_all_good_exits_zero"),
    "serve": ("test_verbs.py", "test_serve_wires_its_options_into_the_service"),
    "scale": ("test_scale.py", "test_scale_verb_writes_parquet_rows"),
    "demo": ("test_shipped.py", "test_demo_verb_runs_end_to_end"),
    "data summary": ("test_verbs.py", "test_data_summary_counts_a_folder"),
    "data check": ("test_cli.py", "test_data_check_reports_bad_files"),
    "data build-corpus": ("test_corpus.py", "test_cli_exit_status_says_whether_rows_were_missing"),
    "imprint train-ae": ("test_autoencoder_training.py", "test_train_ae_cli_never_writes_into_the_package"),
    "imprint fit": ("test_verbs.py", "test_imprint_fit_copula_and_plot"),
    "imprint copula": ("test_verbs.py", "test_imprint_fit_copula_and_plot"),
    "imprint plot": ("test_verbs.py", "test_imprint_fit_copula_and_plot"),
    "imprint sample": ("test_shipped.py", "test_imprint_sample_cli"),
    "imprint reconstruct": ("test_verbs.py", "test_imprint_reconstruct_caches_round_trips"),
    "export onnx": ("test_verbs.py", "test_export_onnx_writes_and_checks"),
    "family fit": ("test_family.py", "test_family_fit_cli_writes_a_model_folder_that_attributes"),
}

runner = CliRunner()


def _commands(command=None, name: str = ""):
    """(name, command) of the app, every group and every verb under it, depth first."""
    command = typer.main.get_command(app) if command is None else command
    yield name, command
    for sub, child in getattr(command, "commands", {}).items():
        yield from _commands(child, f"{name} {sub}".strip())


def test_every_verb_has_an_end_to_end_test():
    verbs = {name for name, command in _commands() if not hasattr(command, "commands")}
    assert verbs == set(VERB_TESTS), f"verbs without a listed test: {sorted(verbs - set(VERB_TESTS))}"
    for verb, (file, test) in VERB_TESTS.items():
        assert f"def {test}(" in (TESTS / file).read_text(), f"{verb}: {file} has no {test}"


def test_help_texts_have_no_tags_that_markdown_drops():
    """The CLI renders help as Markdown, which drops ``<word>`` as an HTML tag (``ROOT/<owner>+<name>/repo`` printed
    as ``ROOT/+/repo``): write placeholders in capitals instead."""
    import re

    texts = [
        (f"{name} {param.name}".strip(), getattr(param, "help", None) or "")
        for name, command in _commands()
        for param in command.params
    ] + [(name, command.help or "") for name, command in _commands()]
    tags = [(where, tag) for where, text in texts for tag in re.findall(r"<[A-Za-z_][\w-]*>", text)]
    assert not tags, f"help texts with a tag Markdown drops: {tags}"


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> Path:
    """12 synthetic photos, large enough for the imprint fit's 128 px crops, on both sides of its SHA-1 split."""
    folder = tmp_path_factory.mktemp("photos")
    for i in range(12):
        Image.fromarray(synthetic_photo(160, 176, seed=i)).save(folder / f"photo{i}.png")
    return folder


def _ok(result) -> str:
    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.output
    return result.output


def test_train_writes_a_model_that_detect_loads(photos, tmp_path):
    from nirnet.imprint.bank import BankEntry, ImprintBank
    from nirnet.imprint.laplace import LearnedLaplace

    bank = ImprintBank([BankEntry("toy", 4)], [LearnedLaplace(4)])
    bank.save(tmp_path / "bank.safetensors")
    overrides = [
        "model=test_nirnet",
        f"data.real=[{photos}]",
        f"data.bank={tmp_path / 'bank.safetensors'}",
        "optim.steps=2",
        "optim.batch_pairs=2",
        "optim.warmup=1",
        f"run.out_dir={tmp_path / 'run'}",
        "run.workers=0",
        "data.recon_cache=null",
        "model_overrides.crop_size=64",
        "model_overrides.semantic_size=64",
        "model_overrides.da_crop=32",
        "model_overrides.da_encoder=ours:nearest_s8",
        "model_overrides.da_latent_channels=8",
    ]
    config = TESTS.parent / "configs" / "nirnet_tiny_cpu.yaml"
    output = _ok(runner.invoke(app, ["train", "-c", str(config), *overrides, "--no-progress"]))
    final = tmp_path / "run" / "final"
    assert "final model:" in output and (final / "model.safetensors").is_file()
    args = ["detect", str(photos / "photo0.png"), "--model", str(final), "--json", "--workers", "0"]
    stdout = _ok(runner.invoke(app, args))
    payload = json.loads(stdout[stdout.index("{") :])
    assert payload["results"][0]["probability"] is not None


def test_serve_wires_its_options_into_the_service(model_dir, monkeypatch):
    pytest.importorskip("fastapi", reason="the serve extra (fastapi) is not installed")
    pytest.importorskip("httpx", reason="fastapi's test client needs httpx")
    import io

    from fastapi.testclient import TestClient

    import nirnet.serve.server

    served = {}

    def fake_run(service, host, port, log_level, header_timeout_s):  # instead of listening on a port
        served.update(host=host, port=port, header_timeout_s=header_timeout_s)
        buffer = io.BytesIO()
        Image.fromarray(synthetic_photo(96, 96, seed=1)).save(buffer, format="PNG")
        files = [("files", (f"{i}.png", buffer.getvalue(), "image/png")) for i in range(3)]
        served["reply"] = TestClient(service).post("/v1/detect", files=files)

    monkeypatch.setattr(nirnet.serve.server, "run", fake_run)
    args = ["serve", "--model", str(model_dir), "--port", "8123", "--max-files", "2", "--threshold", "0"]
    output = _ok(runner.invoke(app, [*args, "--backend", "torch"]))
    assert "serving test_nirnet on http://127.0.0.1:8123/" in output
    assert served["header_timeout_s"] == 10.0  # the service's default, not a restated one
    assert served["reply"].status_code == 413  # --max-files reached the service: 3 files > 2
    missing = runner.invoke(app, ["serve", "--model", "no_such_model"])
    assert missing.exit_code == 2 and "Traceback" not in missing.output and "no_such_model" in missing.output


def test_data_summary_counts_a_folder(tmp_path):
    for label, count in (("real", 2), ("fake", 3)):
        (tmp_path / label).mkdir()
        for i in range(count):
            Image.fromarray(synthetic_photo(48, 48, seed=i)).save(tmp_path / label / f"{i}.png")
    summary = json.loads(_ok(runner.invoke(app, ["data", "summary", str(tmp_path), "--json"])))
    assert json.dumps(summary).count("3") >= 1 and json.dumps(summary).count("2") >= 1
    bad = runner.invoke(app, ["data", "summary", str(tmp_path), "--layout", "genimage"])
    assert bad.exit_code == 2 and "Traceback" not in bad.output


def test_imprint_fit_copula_and_plot(photos, tmp_path):
    cache = ["--cache-dir", str(tmp_path / "cache")]
    bank = tmp_path / "bank.safetensors"
    fit = ["imprint", "fit", str(photos), "--out", str(bank), "--ae", "ours:nearest_s8", "--steps", "5"]
    assert "ours:nearest_s8" in _ok(runner.invoke(app, [*fit, "--max-train-images", "6", *cache]))
    assert bank.is_file()
    copula = ["imprint", "copula", str(photos), "--bank", str(bank), "--out", str(tmp_path / "copula.safetensors")]
    assert "lag-1 correlation" in _ok(runner.invoke(app, [*copula, "--max-train-images", "4", *cache]))
    plot = ["imprint", "plot", str(photos), "--bank", str(bank), "--out-dir", str(tmp_path / "plots"), "--images", "3"]
    _ok(runner.invoke(app, [*plot, *cache]))
    assert (tmp_path / "plots" / "imprint_pca.png").is_file() and (tmp_path / "plots" / "residuals.png").is_file()
    bad = runner.invoke(app, ["imprint", "plot", str(photos), "--bank", str(tmp_path / "none.safetensors")])
    assert bad.exit_code == 2 and "Traceback" not in bad.output


def test_imprint_reconstruct_caches_round_trips(photos, tmp_path):
    args = ["imprint", "reconstruct", str(photos), "--out", str(tmp_path / "recon"), "--ae", "ours:nearest_s8"]
    _ok(runner.invoke(app, [*args, "--region", "64", "--limit", "2"]))
    index = json.loads((tmp_path / "recon" / "index.json").read_text())
    assert index and len(list((tmp_path / "recon").rglob("*.png"))) == 2


def test_export_onnx_writes_and_checks(model_dir, tmp_path):
    pytest.importorskip("onnxruntime", reason="onnxruntime is not installed")
    output = _ok(runner.invoke(app, ["export", "onnx", str(tmp_path / "m.onnx"), "--model", str(model_dir)]))
    assert (tmp_path / "m.onnx").is_file() and "max |logit difference|" in output
    (tmp_path / "file").write_text("not a folder")
    bad = runner.invoke(app, ["export", "onnx", str(tmp_path / "file" / "m.onnx"), "--model", str(model_dir)])
    assert bad.exit_code == 2 and "Traceback" not in bad.output and "a folder on its path is a file" in bad.output
