"""Fitting a frozen-feature detector (:class:`nirnet.models.probe.FrozenProbe`): features once, then closed form.

``nirnet train`` calls :func:`fit_probe` for a model of arch ``frozen_probe``. Every training image, real and
generated alike, goes through the same protocol (``probe.protocol``: centre crop to <= 512 px and JPEG 90), is read
the way the model reads it (its crops and whole-image view) and described by the model's frozen features, crops
averaged. The features are cached per image (``probe.feature_cache``), so a crash loses at most one image and a
refit costs seconds. Then:

1. The final model: the cached features prepared as the model reads them (``content_power``), then a standardiser
   and a balanced, L2-penalised logistic regression (each generator family, and each real source folder, the same
   total weight with ``data.balance``; the two classes the same total weight).
2. The threshold for unseen generators (``probe.calibrate``): for every fold of
   :data:`nirnet.data.families.LEAVE_OUT_FOLDS`, the same fit without that fold's families, scored on them against
   the held-out real photos (``data.validation``); the stored threshold maximises balanced accuracy on these pooled
   out-of-fold scores, which are also reported (AUC with bootstrap interval, per family, per real source) in
   ``<out_dir>/leave_family_out.json``.
"""

from __future__ import annotations

import csv
import functools
import hashlib
import io
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .._atomic import atomic_write, atomic_write_text
from ..data.balance import family_weights, source_of, source_weights
from ..data.families import LEAVE_OUT_FOLDS, family_of
from ..data.io import ImageLoadError, load_image
from ..data.transforms import inference_transform
from ..decision import DecisionRule
from ..eval.protocol import PROTOCOLS, degradation
from ..eval.stats import bootstrap_auc, class_accuracies
from ..models.probe import FrozenProbe
from ..models.registry import create_model
from .config import TrainConfig, dump_config
from .train import SetupError, generated_samples, prepare_run_folder, training_images, write_validation_manifest


def feature_key(model: FrozenProbe, protocol: str, augment: str | None = None) -> str:
    """What cached features depend on besides the file: the backbones, taps, member weights, crops, view size,
    protocol and the degradation of an augmented copy."""
    c = model.config
    spec = {
        "content": [c.content_backbone, c.content_size],
        "texture": [c.texture_backbone, list(c.texture_taps)],
        "preprocess": c.preprocess.to_dict(),
        "protocol": protocol,
    }
    if model.member is not None:  # only then, so the keys of features cached without a member stay valid
        spec["member"] = [model.member_digest, list(c.member_parts)]
    if augment:  # likewise: unaugmented keys stay as they were
        spec["augment"] = augment
    return json.dumps(spec, sort_keys=True)


def _save_npy(path: str, array: np.ndarray) -> None:
    with open(path, "wb") as handle:  # a handle, so numpy does not add ".npy" to the temporary name
        np.save(handle, array.astype(np.float32))


def _cache_file(cache: Path, spec: str, path: Path) -> Path:
    # keyed by the file's bytes, not its path or mtime: a data folder copied or provisioned again (new mtimes) or
    # moved keeps its cached features, and a file rewritten in place gets new ones
    content = hashlib.sha256(path.read_bytes()).hexdigest()
    key = hashlib.sha256(f"{spec}\n{content}".encode()).hexdigest()
    return cache / key[:2] / f"{key}.npy"


@torch.inference_mode()
def image_features(
    model: FrozenProbe,
    paths: list[Path],
    protocol: str = "aligned",
    cache: str | Path | None = None,
    progress: Callable[[int, int], None] | None = None,
    augment: str | None = None,
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """(``N x D`` crop-mean frozen features, readable mask, one-line problems) of ``paths``; each image read
    through ``protocol`` (with the robustness grid's cell ``augment`` after its crop), then the model's inference
    transform. Unreadable rows are zeros and reported."""
    spec, transform = feature_key(model, protocol, augment), inference_transform(model.config)
    extra = degradation(augment) if augment else None
    read = functools.partial(PROTOCOLS[protocol], extra=extra)
    rows, ok, problems = [], [], []
    for index, path in enumerate(paths):
        file = _cache_file(Path(cache), spec, path) if cache else None
        if file is not None and file.is_file():
            rows.append(np.load(file)), ok.append(True)
        else:
            try:
                item = transform(read(load_image(path)))
            except ImageLoadError as exc:
                problems.append(f"{path}: {exc}")
                rows.append(None), ok.append(False)
            else:
                feats = model.raw_features(item.crops, item.view, len(item.crops)).mean(0).numpy()
                rows.append(feats.astype(np.float32)), ok.append(True)
                if file is not None:
                    atomic_write(file, lambda tmp, f=feats: _save_npy(tmp, f))
        if progress is not None:
            progress(index + 1, len(paths))
    width = model.feature_dim
    x = np.stack([r if r is not None else np.zeros(width, np.float32) for r in rows]) if rows else np.zeros((0, width))
    return x, np.array(ok, dtype=bool), problems


def prepared(model: FrozenProbe, x: np.ndarray) -> np.ndarray:
    """Cached raw features as the model's standardiser reads them (:meth:`FrozenProbe.prepare`: the content power)."""
    return model.prepare(torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))).numpy()


def class_balanced(weights: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """``weights`` rescaled so that each class sums to half the number of rows (the scale the penalty ``c`` of
    the logistic regression was chosen at)."""
    w = np.asarray(weights, dtype=float).copy()
    for cls in (0, 1):
        m = labels == cls
        if m.any():
            w[m] *= 0.5 * len(labels) / w[m].sum()
    return w


def fit_linear(
    x: np.ndarray,
    y: np.ndarray,
    w: np.ndarray,
    c: float,
    subsample: float = 1.0,
    seed: int = 0,
    columns: np.ndarray | None = None,
    reference: np.ndarray | None = None,
    blind: np.ndarray | None = None,
    blind_columns: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """(feature mean, feature scale, weights, bias) of a standardised, weighted, L2-penalised logistic regression
    on a ``subsample`` of the rows drawn by ``seed``; with ``columns`` (a mask) only those features are fitted and
    the others get weight 0 (they are still standardised). ``reference`` (a mask): the rows the standardiser is
    taken from (default all), e.g. the original images and not their augmented copies. ``blind`` (a row mask) and
    ``blind_columns`` (a column mask): those rows are fitted with those features at the other rows' centre, so
    they move the other weights only (``probe.content_blind``)."""
    from sklearn.linear_model import LogisticRegression

    keep = np.random.default_rng(seed).random(len(y)) < subsample if subsample < 1 else np.ones(len(y), bool)
    if len(set(y[keep])) < 2:
        raise SetupError("the probe needs real and generated images among its training rows")
    # the standardiser sets how hard the penalty bears on each feature: taken from the images a user would give
    # (augmented copies shift the spread of the features a degradation changes, and with it their penalty)
    base = keep if reference is None else keep & reference
    mean = x[base].mean(0)
    scale = x[base].std(0)
    scale[scale < 1e-8] = 1.0  # a constant feature: leave it unscaled (its weight is penalised to zero)
    columns = np.ones(x.shape[1], bool) if columns is None else columns
    z = (x[keep][:, columns] - mean[columns]) / scale[columns]
    sample_weight = class_balanced(w[keep], y[keep])
    if blind is not None and blind_columns is not None and blind[keep].any():
        # at the weighted centre of the other rows, a shift of those weights moves every row alike (the bias takes
        # it), so the blind rows cannot pull them: at the standardiser's centre they still could, when their own
        # features had moved that centre
        b, cols = blind[keep], np.flatnonzero(blind_columns[columns])
        if b.all():
            raise SetupError("probe.content_blind: every training image is content-blind")
        z[np.ix_(b, cols)] = np.average(z[~b][:, cols], axis=0, weights=sample_weight[~b])
    model = LogisticRegression(C=c, max_iter=5000)
    model.fit(z, y[keep], sample_weight=sample_weight)
    coef = np.zeros(x.shape[1])
    coef[columns] = model.coef_[0]
    return mean, scale, coef, float(model.intercept_[0])


def predict(x: np.ndarray, mean: np.ndarray, scale: np.ndarray, coef: np.ndarray, bias: float) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-(((x - mean) / scale) @ coef + bias)))


def best_balanced_threshold(labels: np.ndarray, scores: np.ndarray) -> tuple[float, float]:
    """(threshold, balanced accuracy) maximising balanced accuracy of ``score >= threshold`` is generated."""
    from sklearn.metrics import roc_curve

    fpr, tpr, thresholds = roc_curve(labels, scores)
    balanced = 0.5 * (tpr + 1 - fpr)
    best = int(np.argmax(balanced[1:])) + 1  # the first point is "nothing is generated" (threshold infinite)
    return float(np.clip(thresholds[best], 0.0, 1.0)), float(balanced[best])


def content_blinding(
    model: FrozenProbe, blind_families: Sequence[str], labels: np.ndarray, families: np.ndarray
) -> tuple[np.ndarray | None, np.ndarray]:
    """(the generated rows of ``probe.content_blind``'s families or None, the mask of the content columns): rows
    that are fitted with their content features at the other rows' centre. Unknown names are a setup error."""
    content = np.zeros(model.feature_dim, bool)
    content[model.feature_groups().get("content", slice(0, 0))] = True
    if not blind_families:
        return None, content
    if not content.any():
        raise SetupError(f"probe.content_blind: {model.config.name} has no content features")
    present = set(families[labels == 1])
    unknown = sorted(set(blind_families) - present)
    if unknown:
        raise SetupError(
            f"probe.content_blind names families without training images: {', '.join(unknown)} "
            f"(present: {', '.join(sorted(present))})"
        )
    return (labels == 1) & np.isin(families, list(blind_families)), content


def detect_columns(model: FrozenProbe, detect_without: Sequence[str]) -> np.ndarray:
    """The mask of the feature columns a probe's real/generated logit reads: all but the groups named in
    ``probe.detect_without`` (which must name some, not all, of the model's feature groups)."""
    groups = model.feature_groups()
    if set(detect_without) - set(groups) or set(groups) <= set(detect_without):
        raise SetupError(
            f"probe.detect_without must name some, not all, of {model.config.name}'s feature groups "
            f"{sorted(groups)}; got {list(detect_without)}"
        )
    columns = np.ones(model.feature_dim, bool)
    for name in detect_without:
        columns[groups[name]] = False
    return columns


@dataclass
class OutOfFold:
    """Out-of-fold scores: per test row its label, probability, group (the family of a generated row, the source
    folder of a real one) and row index in the fitted table; ``folds``: the families each fold held out. A real
    photo is a test row of every fold."""

    labels: np.ndarray
    scores: np.ndarray
    groups: np.ndarray
    rows: np.ndarray
    folds: list[list[str]]
    held_source: np.ndarray  # per test row, the real source its fit left out ("-": none)
    fold: np.ndarray  # per test row, the index in ``folds`` of the fold that scored it


def out_of_fold(
    x: np.ndarray,
    labels: np.ndarray,
    families: np.ndarray,
    sources: np.ndarray,
    held: np.ndarray,
    weights: np.ndarray,
    c: float,
    subsample: float,
    seed: int,
    folds: list[list[str]] = LEAVE_OUT_FOLDS,
    allowed: set[str] | None = None,
    test_features: np.ndarray | None = None,
    hold_out_sources: bool = False,
    copies: np.ndarray | None = None,
    blind: np.ndarray | None = None,
    blind_columns: np.ndarray | None = None,
) -> OutOfFold:
    """Scores of the held-out families of each fold against the held-out real photos (``held``), each fold fitted
    on the other families and the training real photos. A family in no fold is never held out (always trained on).
    ``allowed``: train only on these families (a point of the diversity curve); folds holding all of them out
    are skipped. ``test_features``: what the test rows are scored on (default ``x``), when the training rows are
    post-processed copies of the images a user would give the model. ``hold_out_sources``: every fold is fitted
    once per real source folder without any photo of that source, and scores the fold's families against all of
    that source's photos (a generated image is scored once per source, a photo once per fold), so the scores are
    those of photos from a source the model never saw, as a user's are. ``copies``: rows that are augmented copies
    of training rows (``probe.augment``): trained on with their family and source, never scored. ``blind`` and
    ``blind_columns``: rows trained on with those features at the other rows' centre (scored as they are)."""
    scorable = np.ones(len(labels), bool) if copies is None else ~copies
    present = set(families[labels == 1])
    real_sources = sorted(set(sources[labels == 0]))
    if hold_out_sources and len(real_sources) < 2:
        raise SetupError("holding real sources out needs photos of at least two source folders")
    splits = real_sources if hold_out_sources else [None]
    ys, ss, gs, rows, splits_of, fold_of, used = [], [], [], [], [], [], []
    for fold in folds:
        out = [f for f in fold if f in present]
        trainable = (present if allowed is None else present & set(allowed)) - set(out)
        if not out or not trainable:
            continue
        for source in splits:
            if source is None:
                train_real, test_real = (labels == 0) & ~held, (labels == 0) & held
            else:
                train_real, test_real = (labels == 0) & ~held & (sources != source), (labels == 0) & (sources == source)
            train = train_real | ((labels == 1) & np.isin(families, list(trainable)) & ~held)
            test = (test_real | ((labels == 1) & np.isin(families, out))) & scorable
            reference = None if copies is None else ~copies[train]
            mean, scale, coef, bias = fit_linear(
                x[train],
                labels[train],
                weights[train],
                c,
                subsample,
                seed,
                reference=reference,
                blind=None if blind is None else blind[train],
                blind_columns=blind_columns,
            )
            scored = x if test_features is None else test_features
            ys.append(labels[test]), ss.append(predict(scored[test], mean, scale, coef, bias))
            gs.append(np.where(labels[test] == 1, families[test], sources[test]))
            rows.append(np.flatnonzero(test))
            splits_of.append(np.full(int(test.sum()), "-" if source is None else source, dtype=object))
            fold_of.append(np.full(int(test.sum()), len(used)))
        used.append(out)
    if not used:
        empty = (np.zeros(0, int), np.zeros(0), np.zeros(0, str), np.zeros(0, int))
        return OutOfFold(*empty, [], np.zeros(0, object), np.zeros(0, int))
    arrays = (np.concatenate(a) for a in (ys, ss, gs, rows))
    return OutOfFold(*arrays, used, np.concatenate(splits_of), np.concatenate(fold_of))


def leave_family_out_report(oof: OutOfFold) -> dict:
    """:func:`out_of_fold` scores summarised: pooled AUC with bootstrap interval, per family and per real source,
    and the threshold that maximises balanced accuracy on them (empty without folds or held-out real photos)."""
    y, s, g, image = oof.labels, oof.scores, oof.groups, oof.rows
    if not oof.folds or not (y == 0).any():
        return {}
    threshold, balanced = best_balanced_threshold(y, s)
    real, generated, _ = class_accuracies(y, DecisionRule(threshold).flags(s))

    def auc(keep: np.ndarray) -> tuple[float, float, float]:
        # a held-out photo is scored once per fold: its scores are resampled together
        return bootstrap_auc(y[keep], s[keep], clusters=image[keep])

    per_family = {f: auc((y == 0) | (g == f)) for f in sorted(set(g[y == 1]))}
    per_source = {r: auc((y == 1) | (g == r)) for r in sorted(set(g[y == 0]))}
    return {
        "folds": oof.folds,
        "pooled_auc": auc(np.ones(len(y), dtype=bool)),
        "threshold": threshold,
        "balanced_accuracy": balanced,
        "real_accuracy": real,
        "generated_accuracy": generated,
        "per_family_auc": per_family,
        "per_real_source_auc": per_source,
        "n_real": int((y == 0).sum()),
        "n_generated": int((y == 1).sum()),
    }


def _at_threshold(report: dict, oof: OutOfFold, threshold: float) -> dict:
    """``report`` with its accuracies read at ``threshold`` (a threshold fitted on other folds) beside its own."""
    real, generated, balanced = class_accuracies(oof.labels, DecisionRule(threshold).flags(oof.scores))
    return {
        **report,
        "stored_threshold": threshold,
        "real_accuracy_at_stored": real,
        "generated_accuracy_at_stored": generated,
        "balanced_accuracy_at_stored": balanced,
    }


def out_of_fold_csv(scored: list[tuple[str, OutOfFold]], paths: Sequence[Path | str]) -> str:
    """Out-of-fold scores as CSV: protocol, fold (index of the held-out families), the real source the scoring
    fit left out ("-": none), path, label, group (family or real source) and the probability; (fold, held_source,
    path) names one test image of a protocol."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["protocol", "fold", "held_source", "path", "label", "group", "score"])
    for protocol, oof in scored:
        for row, label, group, source, fold, score in zip(
            oof.rows, oof.labels, oof.groups, oof.held_source, oof.fold, oof.scores
        ):
            writer.writerow([protocol, int(fold), source, str(paths[row]), int(label), group, f"{score:.6f}"])
    return buffer.getvalue()


def read_out_of_fold_csv(path: str | Path, protocol: str) -> list[dict[str, str]]:
    """The rows of one protocol of a fit's ``leave_family_out_scores.csv`` (:func:`out_of_fold_csv`)."""
    with open(path, newline="", encoding="utf-8") as fh:
        rows = [row for row in csv.DictReader(fh) if row["protocol"] == protocol]
    if not rows:
        raise ValueError(f"{path} has no out-of-fold scores of protocol {protocol!r}")
    return rows


@dataclass
class ProbeTable:
    """The rows a probe is fitted on, in one order: training then held-out real photos, then training then
    held-out generated images, with their label, held-out flag, family ("real" for photos), real source folder
    ("-" for generated rows) and sampling weight (``data.balance``)."""

    paths: list[Path]
    labels: np.ndarray
    held: np.ndarray
    families: np.ndarray
    sources: np.ndarray
    weights: np.ndarray


def probe_table(config: TrainConfig) -> ProbeTable:
    """The :class:`ProbeTable` of a training config's data section."""
    samples = generated_samples(config)
    real_train, gen_train, real_held, gen_held = training_images(config, samples)
    generator_of = {s.path: s.subset for s in samples}
    real, generated = real_train + real_held, gen_train + gen_held
    if config.data.balance:
        weights = np.r_[
            source_weights(real), family_weights([generator_of[q] for q in generated], config.data.min_family_images)
        ]
    else:
        weights = np.ones(len(real) + len(generated))
    held = [np.zeros(len(real_train)), np.ones(len(real_held)), np.zeros(len(gen_train)), np.ones(len(gen_held))]
    return ProbeTable(
        paths=real + generated,
        labels=np.r_[np.zeros(len(real), int), np.ones(len(generated), int)],
        held=np.concatenate(held).astype(bool),
        families=np.array(["real"] * len(real) + [family_of(generator_of[q]) for q in generated]),
        sources=np.array([source_of(q) for q in real] + ["-"] * len(generated)),
        weights=weights,
    )


def recipe_features(config: TrainConfig) -> tuple[FrozenProbe, ProbeTable, np.ndarray, np.ndarray]:
    """What a refit of a probe recipe starts from: its (unfitted) model, its :class:`ProbeTable`, every row's frozen
    features through the recipe's protocol and feature cache, prepared as its standardiser reads them, and the mask
    of the rows that could be read."""
    table = probe_table(config)
    model = create_model(config.model, **config.model_overrides).eval()
    x, ok, _ = image_features(model, table.paths, config.probe.protocol, config.probe.feature_cache)
    return model, table, prepared(model, x), ok


def fit_probe(
    config: TrainConfig,
    resume: bool = False,
    show_progress: bool = True,
    overwrite: bool = False,
    on_message: Callable[[str], None] | None = None,
) -> Path:
    """Fit a ``frozen_probe`` model as :mod:`this module <nirnet.engine.probe_fit>` describes; returns the folder
    of the final model (``<out_dir>/final``)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    say = on_message or (lambda _: None)
    p = config.probe
    if p.protocol not in PROTOCOLS:
        raise SetupError(f"probe.protocol must be one of {', '.join(PROTOCOLS)}, got {p.protocol!r}")
    if not 0 < p.subsample <= 1 or p.c <= 0 or p.augment_weight <= 0:
        raise SetupError("probe.subsample must be in (0, 1], probe.c and probe.augment_weight positive")
    for label in p.augment:  # before any feature is computed
        try:
            degradation(label)
        except ValueError as exc:
            raise SetupError(f"probe.augment: {exc}") from None
    out_dir = Path(config.run.out_dir)
    prepare_run_folder(out_dir, resume, overwrite)
    start = time.perf_counter()
    if config.run.threads:
        torch.set_num_threads(config.run.threads)
    model = create_model(config.model, **config.model_overrides)
    if not isinstance(model, FrozenProbe):
        raise SetupError(f"{config.model} is not a frozen-feature model (arch frozen_probe)")
    model.eval()
    table = probe_table(config)
    paths, labels = table.paths, table.labels
    n_real = int((labels == 0).sum())
    atomic_write_text(out_dir / "config.yaml", dump_config(config))
    write_validation_manifest(config, out_dir)

    say(
        f"features of {len(paths)} images ({n_real} real, {len(paths) - n_real} generated), cached in {p.feature_cache}"
    )
    bar = Progress(
        TextColumn("features"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(), disable=not show_progress
    )
    with bar:
        task = bar.add_task("features", total=len(paths))
        x, ok, problems = image_features(
            model, paths, p.protocol, p.feature_cache, lambda done, _: bar.update(task, completed=done)
        )
        # augmented copies of the training rows (never of held-out ones: those are scored), appended after them
        source_rows = np.flatnonzero(~table.held)
        copies = [np.zeros(len(paths), bool)]
        for label in p.augment:
            task = bar.add_task(label, total=len(source_rows))
            xa, oka, _ = image_features(
                model,
                [paths[i] for i in source_rows],
                p.protocol,
                p.feature_cache,
                lambda done, _, t=task: bar.update(t, completed=done),
                augment=label,
            )
            x, ok = np.concatenate([x, xa]), np.concatenate([ok, oka & ok[source_rows]])
            copies.append(np.ones(len(source_rows), bool))
        copies = np.concatenate(copies)
    n_copies = len(p.augment)
    rows_of = np.r_[np.arange(len(paths)), np.tile(source_rows, n_copies)]  # the image each row was made from
    x = prepared(model, x)
    row_weights = table.weights[rows_of] * np.where(copies, p.augment_weight, 1.0)
    for line in problems[:20]:
        say(f"skipped {line}")
    if len(problems) > 20:
        say(f"... and {len(problems) - 20} more unreadable images")
    featurised = time.perf_counter() - start

    x, labels, held, families, sources, weights, copies, rows_of = (
        a[ok]
        for a in (
            x,
            *(a[rows_of] for a in (labels, table.held, table.families, table.sources)),
            row_weights,
            copies,
            rows_of,
        )
    )
    columns = detect_columns(model, p.detect_without)
    detect_x = x[:, columns]  # what the real/generated logit reads; folds need nothing else
    blind, content = content_blinding(model, p.content_blind, labels, families)
    # the recipe's folds, with or without its real sources held out as well
    fold_scores = functools.partial(
        out_of_fold,
        detect_x,
        labels,
        families,
        sources,
        held,
        weights,
        p.c,
        p.subsample,
        config.run.seed,
        copies=copies,
        blind=blind,
        blind_columns=content[columns],
    )
    report: dict = {}
    if p.calibrate:
        oof = fold_scores(hold_out_sources=p.hold_out_sources)
        report = leave_family_out_report(oof)
        kept = [paths[i] for i in rows_of]  # per fitted row, its image (copies are never scored rows)
        scored = [("families_and_sources" if p.hold_out_sources else "families", oof)]
        if report:
            report["never_held_out"] = sorted(set(families[labels == 1]) - {f for fold in oof.folds for f in fold})
            report["hold_out_sources"] = p.hold_out_sources
            if p.hold_out_sources:  # the families-only number too, comparable with recipes calibrated without
                plain = fold_scores()
                families_only = leave_family_out_report(plain)
                scored.append(("families", plain))
                report["families_only_pooled_auc"] = families_only.get("pooled_auc")
                if families_only:  # the protocol: held-out photos of every (seen) source, at our threshold
                    report["families_only"] = _at_threshold(families_only, plain, report["threshold"])
        else:
            say("no threshold calibration: it needs data.validation > 0 and families of LEAVE_OUT_FOLDS")
        if report:  # per image, for paired comparisons of recipes on the same held-out images
            atomic_write_text(out_dir / "leave_family_out_scores.csv", out_of_fold_csv(scored, kept))
    train = ~held
    mean, scale, coef, bias = fit_linear(
        x[train],
        labels[train],
        weights[train],
        p.c,
        p.subsample,
        config.run.seed,
        columns,
        ~copies[train],
        blind=None if blind is None else blind[train],
        blind_columns=content,
    )
    with torch.no_grad():
        model.feature_mean.copy_(torch.from_numpy(mean).float())
        model.feature_scale.copy_(torch.from_numpy(scale).float())
        model.head.weight.copy_(torch.from_numpy(coef).float()[None])
        model.head.bias.fill_(bias)
    # the forward pass skips the groups fitted with zero weight (the family head still reads them)
    model.config = model.config.replace(logit_without=tuple(p.detect_without))
    if report:
        model.config = model.config.replace(threshold=report["threshold"])
    final = out_dir / "final"
    model.save_pretrained(final)
    summary = {
        "model": config.model,
        "images": {"real": int((labels[~copies] == 0).sum()), "generated": int((labels[~copies] == 1).sum())},
        "augmented_copies": int(copies.sum()),
        "unreadable": len(problems),
        "families": sorted(set(families[labels == 1])),
        "augment": list(p.augment),
        "content_blind": list(p.content_blind),
        "detect_without": list(p.detect_without),
        "threshold": model.config.threshold,
        "features_s": round(featurised, 1),
        "total_s": round(time.perf_counter() - start, 1),
    }
    if report:
        atomic_write_text(out_dir / "leave_family_out.json", json.dumps(report, indent=1))
        auc = report["pooled_auc"]
        summary["leave_family_out"] = {"pooled_auc": auc, "balanced_accuracy": report["balanced_accuracy"]}
        protocol = "leave-family-and-source-out" if p.hold_out_sources else "leave-family-out"
        say(
            f"{protocol}: pooled AUC {auc[0]:.3f} ({auc[1]:.2f}-{auc[2]:.2f}), balanced accuracy "
            f"{report['balanced_accuracy']:.3f} at the stored threshold {report['threshold']:.3f}"
        )
        if report.get("families_only_pooled_auc"):
            summary["leave_family_out"]["families_only_pooled_auc"] = report["families_only_pooled_auc"]
            plain = report["families_only"]
            say(
                f"families held out alone: pooled AUC {plain['pooled_auc'][0]:.3f}, balanced accuracy "
                f"{plain['balanced_accuracy_at_stored']:.3f} at the stored threshold"
            )
    atomic_write_text(out_dir / "summary.json", json.dumps(summary, indent=1))
    return final
