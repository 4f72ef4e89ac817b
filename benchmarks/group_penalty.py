"""Does a lighter L2 penalty on one feature group of a probe recipe change its out-of-fold AUC?

    python benchmarks/group_penalty.py [-c configs/nirnet_stack.yaml] [--factors 4 16]

The recipe's logit columns (``probe.detect_without`` removed) are split into its feature groups; a variant repeats
one group's standardised columns ``k`` times, which divides that group's effective L2 penalty by ``k`` (the same
fit otherwise: C, weights, folds). Each variant is scored with families and real sources held out and with families
held out alone, on the same out-of-fold rows as the recipe, and the paired difference is printed. Reads the
recipe's feature cache (``probe.feature_cache``); seed 0, the full fit.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from nirnet.engine.config import load_config
from nirnet.engine.probe_fit import (
    detect_columns,
    leave_family_out_report,
    out_of_fold,
    recipe_features,
)
from nirnet.eval.stats import bootstrap_auc_difference


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-c", "--config", default="configs/nirnet_stack.yaml")
    parser.add_argument("--factors", type=int, nargs="+", default=[4, 16])
    args = parser.parse_args()
    config = load_config(args.config)
    p = config.probe
    model, table, x, ok = recipe_features(config)
    arrays = [a[ok] for a in (table.labels, table.families, table.sources, table.held, table.weights)]
    columns = detect_columns(model, p.detect_without)
    spans = {name: np.arange(span.start, span.stop) for name, span in model.feature_groups().items()}
    groups = {name: idx for name, idx in spans.items() if columns[idx].all()}  # the groups the logit reads
    variants = {"recipe": [x[:, groups[g]] for g in groups]}
    for name in groups:
        for k in args.factors:
            variants[f"{name} x{k}"] = [np.repeat(x[:, groups[g]], k if g == name else 1, axis=1) for g in groups]
    for hold in (True, False):
        base = None
        for name, parts in variants.items():
            start = time.perf_counter()
            oof = out_of_fold(np.hstack(parts), *arrays, p.c, p.subsample, 0, hold_out_sources=hold)
            report = leave_family_out_report(oof)
            line = (
                f"{'families and sources' if hold else 'families'} held out, {name}: pooled AUC "
                f"{report['pooled_auc'][0]:.3f}, best balanced accuracy {report['balanced_accuracy']:.3f}"
            )
            if base is None:
                base = oof
            else:
                if not (np.array_equal(oof.rows, base.rows) and np.array_equal(oof.labels, base.labels)):
                    raise SystemExit("error: the variants' out-of-fold rows differ")
                diff = bootstrap_auc_difference(oof.labels, oof.scores, base.scores)
                line += f", minus the recipe {diff[0]:+.3f} ({diff[1]:+.3f} to {diff[2]:+.3f})"
            print(f"{line} [{time.perf_counter() - start:.0f} s]", flush=True)


if __name__ == "__main__":
    main()
