"""benchmarks/threshold_rules.py on made-up out-of-fold scores: each rule's threshold, its out-of-fold and nested
accuracies."""

import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def _fit_folder(path: Path, seed: int) -> Path:
    """A fit folder whose scores put photos around 0.3 and generated images around 0.7, fold 2's lower."""
    rng = np.random.default_rng(seed)
    path.mkdir(parents=True)
    with open(path / "leave_family_out_scores.csv", "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["protocol", "fold", "held_source", "path", "label", "group", "score"])
        for fold in range(3):
            for i in range(40):
                writer.writerow(["families_and_sources", fold, "a", f"r{i}", 0, "a", rng.normal(0.3, 0.1)])
                score = rng.normal(0.55 if fold == 2 else 0.7, 0.1)
                writer.writerow(["families_and_sources", fold, "a", f"g{fold}_{i}", 1, f"f{fold}", score])
    return path


def test_rules_report_thresholds_and_nested_accuracy(tmp_path):
    fits = [_fit_folder(tmp_path / f"fit{k}", k) for k in range(2)]
    out = tmp_path / "out"
    args = [arg for fit in fits for arg in ("--fit", str(fit))]
    script = str(ROOT / "benchmarks" / "threshold_rules.py")
    result = subprocess.run(
        [sys.executable, script, *args, "--real-quantile", "0.9", "--out", str(out)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "| equal_error |" in result.stdout and "| real_0.9 |" in result.stdout
    report = json.loads((out / "threshold_rules.json").read_text())["rules"]
    assert set(report) == {"max_balanced", "equal_error", "real_0.9"}
    for row in report.values():
        assert len(row["threshold"]) == 2 and len(row["nested"]) == 2
        for real, generated, balanced in row["oof"] + row["nested"]:
            assert abs(balanced - (real + generated) / 2) < 1e-9 and 0.5 < balanced <= 1
    for real, generated, _ in report["equal_error"]["oof"]:
        assert abs(real - generated) < 0.03  # one misclassified image of 120 either side
    for real, _, _ in report["real_0.9"]["oof"]:
        assert abs(real - 0.9) < 0.01
    # the best balanced accuracy on all folds is an upper bound of the nested one
    best, nested = (np.mean([b for *_, b in report["max_balanced"][k]]) for k in ("oof", "nested"))
    assert best >= nested
