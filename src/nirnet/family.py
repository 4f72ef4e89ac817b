"""Generator-family attribution: which family made an image the detector calls generated, or ``unknown``.

A multinomial linear head reads the detector's own per-image features (the crop means of what ``NIRNet.embed``
returns: the branch features its real/generated head reads and the frozen texture statistics) and is fitted,
class-balanced, on a corpus of generated images whose family is known (by default on every crop as a row). The
detector's weights, features and logits are untouched, so its probabilities and verdicts are the same with or
without a head.

Open set: the head's largest softmax probability (``max_softmax``) or its log-sum-exp of logits (``energy``) is a
"this is a family I know" score; below the threshold stored with the head the answer is :data:`UNKNOWN`. The
threshold is calibrated on leave-family-out folds (:data:`nirnet.data.families.LEAVE_OUT_FOLDS`): per fold the head
is fitted without the fold's families and without a share of every other family's source files, and the threshold
separates the two held-out sides at the best balanced accuracy.

In a model folder the head is ``family_head.safetensors`` (``weight``, ``bias``, ``mean``, ``scale``) and
``family_head.json`` (family names, open-set score and threshold, feature spec, the weights it was fitted on);
a folder without them loads as before.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import re
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ._atomic import atomic_write, atomic_write_text
from .data.families import LEAVE_OUT_FOLDS, family_of

HEAD_WEIGHTS = "family_head.safetensors"
HEAD_CONFIG = "family_head.json"
UNKNOWN = "unknown"
FEATURE_PARTS = ("head_input", "hidden", "texture")
DEFAULT_PARTS = ("head_input", "texture")
OPEN_SET_SCORES = ("max_softmax", "energy")
TOP_K = 3
MIN_IMAGES = 8
_BOX = re.compile(r" box -?\d+ -?\d+ -?\d+ -?\d+$")


class FamilyHeadError(ValueError):
    """A family head that is missing, malformed, or does not fit the model it is used with."""


# ---------------------------------------------------------------------------------------------------- the head
def _softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def known_score(logits: np.ndarray, kind: str) -> np.ndarray:
    """Higher = more like a family the head knows: the largest softmax probability, or the log-sum-exp of the
    logits (the negative free energy)."""
    if kind == "max_softmax":
        return _softmax(logits).max(axis=1)
    if kind == "energy":
        top = logits.max(axis=1)
        return top + np.log(np.exp(logits - top[:, None]).sum(axis=1))
    raise FamilyHeadError(f"unknown open-set score {kind!r}; known: {', '.join(OPEN_SET_SCORES)}")


@dataclass
class Attribution:
    """One image's answer: a known family or :data:`UNKNOWN`, and the head's top-3 families with probabilities
    (shown even when the answer is unknown, so a user sees what it resembled)."""

    family: str
    scores: dict[str, float]


@dataclass
class FamilyHead:
    families: list[str]
    weight: np.ndarray  # C x D, on standardised features
    bias: np.ndarray  # C
    mean: np.ndarray  # D: feature standardisation
    scale: np.ndarray  # D
    parts: tuple[str, ...] = DEFAULT_PARTS
    threshold: float | None = None  # open-set: known score below this -> unknown (None: never unknown)
    open_set_score: str = "max_softmax"
    model: str = ""  # the model name the features come from
    model_weights_sha256: str | None = None  # the weights the head was fitted on
    info: dict = field(default_factory=dict)  # how it was fitted (counts, C, calibration numbers)

    @property
    def dim(self) -> int:
        return int(self.weight.shape[1])

    def logits(self, features: np.ndarray) -> np.ndarray:
        x = (np.asarray(features, dtype=np.float64) - self.mean) / self.scale
        return x @ self.weight.T + self.bias

    def probabilities(self, features: np.ndarray) -> np.ndarray:
        return _softmax(self.logits(features))

    def answer(self, features: np.ndarray) -> list[Attribution]:
        """:class:`Attribution` of each row of ``features`` (``N x D``)."""
        logits = self.logits(features)
        probs, known = _softmax(logits), known_score(logits, self.open_set_score)
        out = []
        for p, k in zip(probs, known):
            top = np.argsort(-p)[:TOP_K]
            scores = {self.families[i]: round(float(p[i]), 4) for i in top}
            unknown = self.threshold is not None and k < self.threshold
            out.append(Attribution(UNKNOWN if unknown else self.families[int(top[0])], scores))
        return out

    # ------------------------------------------------------------------ files
    @staticmethod
    def present(folder: str | os.PathLike) -> bool:
        return (Path(folder) / HEAD_CONFIG).is_file()

    def save(self, folder: str | os.PathLike) -> Path:
        from safetensors.numpy import save_file

        folder = Path(folder)
        # C-ordered copies: safetensors writes the raw buffer, and scikit-learn's coefficients are Fortran-ordered
        arrays = {
            name: np.ascontiguousarray(value, dtype=np.float32)
            for name, value in (
                ("weight", self.weight),
                ("bias", self.bias),
                ("mean", self.mean),
                ("scale", self.scale),
            )
        }
        atomic_write(folder / HEAD_WEIGHTS, lambda tmp: save_file(arrays, tmp))
        config = {
            "families": self.families,
            "feature_parts": list(self.parts),
            "feature_dim": self.dim,
            "feature_pooling": "mean over the detector's crops",
            "open_set_score": self.open_set_score,
            "open_set_threshold": self.threshold,
            "model": self.model,
            "model_weights_sha256": self.model_weights_sha256,
            "info": self.info,
        }
        atomic_write_text(folder / HEAD_CONFIG, json.dumps(config, indent=1, default=float) + "\n")
        return folder

    @classmethod
    def load(cls, folder: str | os.PathLike) -> FamilyHead:
        from safetensors.numpy import load_file

        folder = Path(folder)
        try:
            config = json.loads((folder / HEAD_CONFIG).read_text())
            arrays = load_file(str(folder / HEAD_WEIGHTS))
            head = cls(
                families=list(config["families"]),
                weight=arrays["weight"].astype(np.float64),
                bias=arrays["bias"].astype(np.float64),
                mean=arrays["mean"].astype(np.float64),
                scale=arrays["scale"].astype(np.float64),
                parts=tuple(config["feature_parts"]),
                threshold=config.get("open_set_threshold"),
                open_set_score=config.get("open_set_score", "max_softmax"),
                model=config.get("model", ""),
                model_weights_sha256=config.get("model_weights_sha256"),
                info=config.get("info", {}),
            )
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise FamilyHeadError(f"{folder}: the family head cannot be read ({type(exc).__name__}: {exc})") from None
        c, d = head.weight.shape
        if len(head.families) != c or head.bias.shape != (c,) or head.mean.shape != (d,) or head.scale.shape != (d,):
            raise FamilyHeadError(f"{folder}: the family head's arrays do not match its {len(head.families)} families")
        if unknown := set(head.parts) - set(FEATURE_PARTS):
            raise FamilyHeadError(f"{folder}: unknown feature parts {sorted(unknown)}; known: {FEATURE_PARTS}")
        known_score(np.zeros((1, c)), head.open_set_score)  # refuses an unknown score kind
        return head


# ---------------------------------------------------------------------------------------------------- features
def check_model(model: torch.nn.Module, parts: Sequence[str]) -> None:
    """A :class:`FamilyHeadError` when ``model`` cannot give these feature parts."""
    name = getattr(getattr(model, "config", None), "name", type(model).__name__)
    if not hasattr(model, "embed") or not hasattr(model, "part_widths"):
        raise FamilyHeadError(f"model {name} exposes no features for a family head (NIRNet models do)")
    if missing := set(parts) - set(model.part_widths()):
        raise FamilyHeadError(
            f"model {name} gives no {sorted(missing)} features (it has {', '.join(model.part_widths())})"
            + ("; 'texture' needs a semantic branch" if "texture" in missing else "")
        )


@torch.inference_mode()
def crop_features(model: torch.nn.Module, item, parts: Sequence[str]) -> np.ndarray:
    """``K x D`` features of one prepared image's crops (``detect.PreparedImage``), parts concatenated."""
    device = next(model.parameters()).device
    crops = item.crops.to(device).float().div_(255)
    view = item.view.to(device).float().div_(255) if item.view is not None else None
    feats, _ = model.embed(crops, view, crops_per_view=len(crops))
    return torch.cat([feats[p].float() for p in parts], dim=1).cpu().numpy()


def image_features(model: torch.nn.Module, items: Sequence, parts: Sequence[str]) -> np.ndarray:
    """``N x D``: each prepared image's crop-mean features (the pooling the detector uses for its logits)."""
    check_model(model, parts)
    return np.stack([crop_features(model, item, parts).mean(axis=0) for item in items])


# ---------------------------------------------------------------------------------------------------- corpus
@dataclass(frozen=True)
class FamilyImage:
    path: Path
    family: str
    group: str  # images sharing a group (tiles of one grid) must stay on one side of a split


def source_group(source: str, path: str) -> str:
    """The split group of an image: tiles cut from one file (``source`` ending in `` box x0 y0 x1 y1``) share the
    file; any other image is its own group."""
    return _BOX.sub("", source) if _BOX.search(source or "") else f"file:{path}"


def family_images(folders: Sequence[str | os.PathLike]) -> list[FamilyImage]:
    """The generated images (``label`` 1) of datasets with a ``manifest.csv`` (``path,label,generator,...``;
    ``family`` when present, else the generator's family from :mod:`nirnet.data.families`)."""
    images: list[FamilyImage] = []
    for folder in map(Path, folders):
        manifest = folder / "manifest.csv"
        if not manifest.is_file():
            raise FamilyHeadError(f"{folder} has no manifest.csv (path,label,generator[,source,family])")
        with manifest.open(newline="", encoding="utf-8") as handle:
            rows = list(csv.DictReader(handle))
        if rows and not {"path", "label", "generator"} <= set(rows[0]):
            raise FamilyHeadError(f"{manifest}: needs the columns path, label and generator")
        for row in rows:
            if str(row["label"]).strip() not in ("1", "fake", "generated"):
                continue
            family = (row.get("family") or "").strip() or family_of(row["generator"])
            images.append(FamilyImage(folder / row["path"], family, source_group(row.get("source", ""), row["path"])))
    if not images:
        raise FamilyHeadError("no generated images in " + ", ".join(map(str, folders)))
    return images


def model_key(detector) -> str:
    """What cached features depend on: the model's config and weights (not its decision threshold, which changes
    no feature: a recalibrated model reuses them)."""
    config = json.loads(detector.model.config.to_json())
    config.pop("threshold", None)
    digest = hashlib.sha256(json.dumps(config, sort_keys=True).encode())
    for name, tensor in sorted(detector.model.trainable_state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def corpus_features(
    detector,
    images: Sequence[FamilyImage],
    cache: str | os.PathLike | None = None,
    num_crops: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]:
    """(per-crop features by part, owner image index of each crop, ok mask per image) of ``images``, read through
    the detector's inference preprocessing (``detect.prepare_source``). Cached in ``cache`` under a key of the file
    list, the model and the crop count."""
    from .detect import prepare_source

    model = detector.model
    check_model(model, ())
    widths = model.part_widths()
    parts = [p for p in FEATURE_PARTS if p in widths]
    key = hashlib.sha256(
        "\n".join([model_key(detector), str(num_crops), *(str(i.path) for i in images)]).encode()
    ).hexdigest()[:20]
    file = Path(cache) / f"family-features-{key}.npz" if cache else None
    if file is not None and file.is_file():
        stored = np.load(file)
        return {p: stored[p] for p in parts}, stored["owner"], stored["ok"]
    feats: dict[str, list[np.ndarray]] = {p: [] for p in parts}
    owner, ok = [], []
    for index, image in enumerate(images):
        item, _ = prepare_source(model.config, image.path, str(image.path), num_crops)
        ok.append(item is not None)
        if item is not None:
            both = crop_features(model, item, parts)  # one forward, split back into parts by their widths
            for p, piece in zip(parts, np.split(both, np.cumsum([widths[p] for p in parts])[:-1], axis=1)):
                feats[p].append(piece)
            owner += [index] * len(item.crops)
        if progress is not None:
            progress(index + 1, len(images))
    out = {p: np.concatenate(v) if v else np.zeros((0, 0), np.float32) for p, v in feats.items()}
    owner_arr, ok_arr = np.array(owner, dtype=np.int64), np.array(ok)
    if file is not None:

        def write(tmp: str) -> None:
            with open(tmp, "wb") as handle:  # a handle, so numpy does not add ".npz" to the temporary name
                np.savez(handle, owner=owner_arr, ok=ok_arr, **out)

        atomic_write(file, write)
    return out, owner_arr, ok_arr


def pooled(crop_feats: dict[str, np.ndarray], owner: np.ndarray, n: int, parts: Sequence[str]) -> np.ndarray:
    """``n x D`` image features: the crop mean of the chosen parts (rows of unreadable images are zeros)."""
    x = np.concatenate([crop_feats[p] for p in parts], axis=1)
    sums = np.zeros((n, x.shape[1]))
    np.add.at(sums, owner, x)
    counts = np.bincount(owner, minlength=n)[:, None]
    return sums / np.maximum(counts, 1)


# ---------------------------------------------------------------------------------------------------- fitting
def known_families(families: Sequence[str], min_images: int = MIN_IMAGES) -> list[str]:
    counts = Counter(families)
    return sorted(f for f, n in counts.items() if n >= min_images)


def fit_head(
    x: np.ndarray,
    families: Sequence[str],
    *,
    parts: Sequence[str] = DEFAULT_PARTS,
    c: float = 0.1,
    min_images: int = MIN_IMAGES,
    model: str = "",
) -> FamilyHead:
    """A class-balanced multinomial logistic head on standardised ``x`` (``N x D``) for the families with at least
    ``min_images`` rows (the others are left out). No open-set threshold yet (:func:`calibrate_open_set`)."""
    names = np.asarray(families)
    known = known_families(names, min_images)
    if len(known) < 2:
        raise FamilyHeadError(f"a family head needs >= 2 families with >= {min_images} images; found {known}")
    keep = np.isin(names, known)
    xs, ys = np.asarray(x, dtype=np.float64)[keep], names[keep]
    mean, scale = xs.mean(axis=0), xs.std(axis=0) + 1e-6
    weight, bias = _fit_softmax((xs - mean) / scale, np.searchsorted(known, ys), len(known), c)
    counts = Counter(ys.tolist())
    info = {"c": c, "min_images": min_images, "images": {str(f): counts[f] for f in known}}
    return FamilyHead([str(f) for f in known], weight, bias, mean, scale, tuple(parts), model=model, info=info)


def _fit_softmax(x: np.ndarray, y: np.ndarray, classes: int, c: float) -> tuple[np.ndarray, np.ndarray]:
    """Class-balanced multinomial logistic regression, scikit-learn's objective (``C`` times the balanced sum of
    losses plus half the squared weights), by full-batch L-BFGS in float64: a fraction of a second where
    scikit-learn's solver takes tens of seconds on these few hundred rows of several hundred correlated features."""
    xt, yt = torch.from_numpy(x), torch.from_numpy(y.astype(np.int64))
    counts = torch.bincount(yt, minlength=classes).double()
    sample_w = (len(yt) / (classes * counts))[yt]  # "balanced": every family the same total weight
    weight = torch.zeros(classes, x.shape[1], dtype=torch.float64, requires_grad=True)
    bias = torch.zeros(classes, dtype=torch.float64, requires_grad=True)
    optimiser = torch.optim.LBFGS(
        [weight, bias], lr=1, max_iter=1000, tolerance_grad=1e-6, tolerance_change=1e-10, line_search_fn="strong_wolfe"
    )

    def objective() -> torch.Tensor:
        optimiser.zero_grad()
        losses = torch.nn.functional.cross_entropy(xt @ weight.T + bias, yt, reduction="none")
        loss = c * (sample_w * losses).sum() + 0.5 * (weight**2).sum()
        loss.backward()
        return loss

    with torch.enable_grad():
        optimiser.step(objective)
    return weight.detach().numpy(), bias.detach().numpy()


def fit_rows(
    x: np.ndarray,
    names: np.ndarray,
    train: np.ndarray,
    crops: tuple[np.ndarray, np.ndarray] | None,
    *,
    parts: Sequence[str],
    c: float,
    model: str = "",
) -> FamilyHead:
    """A head on the ``train`` rows (a mask over images), fitted on their crop means, or with ``crops`` on each of
    their crops as a row of its own (more, noisier rows: measured better in closed and open set; the head still
    reads crop means at inference)."""
    if crops is None:
        return fit_head(x[train], names[train], parts=parts, c=c, min_images=1, model=model)
    crop_x, owner = crops
    rows = train[owner]
    return fit_head(crop_x[rows], names[owner[rows]], parts=parts, c=c, min_images=1, model=model)


def split_groups(groups: np.ndarray, share: float, rng: np.random.Generator) -> np.ndarray:
    """A mask of rows whose group is drawn into the held-out ``share`` of groups (at least one group is kept on
    the other side, so a family with a single source file is never held out whole)."""
    unique = np.array(sorted(set(groups.tolist())))
    if len(unique) < 2:
        return np.zeros(len(groups), dtype=bool)
    n = min(len(unique) - 1, max(1, round(share * len(unique))))
    held = set(rng.choice(unique, size=n, replace=False).tolist())
    return np.array([g in held for g in groups])


def open_set_folds(
    x: np.ndarray,
    families: Sequence[str],
    groups: Sequence[str],
    *,
    parts: Sequence[str] = DEFAULT_PARTS,
    c: float = 0.1,
    min_images: int = MIN_IMAGES,
    seed: int = 0,
    folds: Sequence[Sequence[str]] | None = None,
    held_share: float = 0.25,
    crops: tuple[np.ndarray, np.ndarray] | None = None,
) -> list[dict[str, np.ndarray]]:
    """Per leave-family-out fold (default :func:`folds_for`): the head fitted on the known families (>=
    ``min_images`` images in all of ``families``) without the fold's families and without ``held_share`` of every
    other known family's groups, and its logits on both held-out sides (every image of the fold's families, known
    or too small to be known, against the held-out groups of the others). Returns per fold ``logits``,
    ``is_known`` (1 = held-out image of a known family), ``family``, ``predicted`` (the head's top family),
    ``index`` (their rows of ``x``), ``train`` (the rows fitted on) and the fitted ``head``.
    ``crops``: (per-crop features, owner row of each crop) to fit on single crops (:func:`fit_rows`)."""
    names, group_arr = np.asarray(families), np.asarray(groups)
    known = known_families(names, min_images)
    rng = np.random.default_rng(seed)
    out = []
    for fold in folds if folds is not None else folds_for(names, min_images):
        unseen = np.isin(names, list(fold))
        if not unseen.any() or len(set(known) - set(fold)) < 2:
            continue
        test_known = np.zeros(len(names), dtype=bool)
        for family in sorted(set(known) - set(fold)):
            rows = np.flatnonzero(names == family)
            test_known[rows[split_groups(group_arr[rows], held_share, rng)]] = True
        train = np.isin(names, known) & ~unseen & ~test_known
        head = fit_rows(x, names, train, crops, parts=parts, c=c)
        test = unseen | test_known
        logits = head.logits(x[test])
        out.append(
            {
                "logits": logits,
                "is_known": test_known[test].astype(int),
                "family": names[test],
                "predicted": np.asarray(head.families)[logits.argmax(axis=1)],
                "index": np.flatnonzero(test),  # rows of x on the held-out sides, in the order of logits
                "train": train,  # the mask of rows the head was fitted on
                "head": head,
            }
        )
    return out


def folds_for(families: Sequence[str], min_images: int = MIN_IMAGES) -> list[list[str]]:
    """The leave-family-out folds for these families: :data:`LEAVE_OUT_FOLDS` where they name them, and each known
    family that no fold names as a fold of its own (another corpus's families)."""
    present = set(families)
    folds = [[f for f in fold if f in present] for fold in LEAVE_OUT_FOLDS]
    named = {f for fold in LEAVE_OUT_FOLDS for f in fold}
    folds += [[f] for f in known_families(families, min_images) if f not in named]
    return [fold for fold in folds if fold]


def calibrate_open_set(folds: list[dict[str, np.ndarray]], kind: str = "max_softmax") -> dict:
    """The open-set threshold (best balanced accuracy of known vs unknown on the pooled held-out sides), the
    pooled AUROC and the rates at that threshold."""
    from sklearn.metrics import roc_auc_score

    from .eval.metrics import best_threshold

    y = np.concatenate([f["is_known"] for f in folds])
    s = np.concatenate([known_score(f["logits"], kind) for f in folds])
    threshold = best_threshold(y, s)
    return {
        "score": kind,
        "threshold": threshold,
        "auroc": float(roc_auc_score(y, s)),
        "known_kept": float((s[y == 1] >= threshold).mean()),
        "unknown_caught": float((s[y == 0] < threshold).mean()),
        "n_known": int(y.sum()),
        "n_unknown": int((1 - y).sum()),
    }


def fit_family_head(
    detector,
    datasets: Sequence[str | os.PathLike],
    out: str | os.PathLike,
    *,
    parts: Sequence[str] = DEFAULT_PARTS,
    c: float = 0.1,
    min_images: int = MIN_IMAGES,
    score: str = "max_softmax",
    seeds: Sequence[int] = (0, 1, 2),
    cache: str | os.PathLike | None = None,
    progress: Callable[[int, int], None] | None = None,
    rows: str = "crops",
) -> FamilyHead:
    """Fit a family head for ``detector`` on the generated images of ``datasets``, calibrate its open-set
    threshold on the leave-family-out folds (``seeds`` draws of the held-out source files, pooled), and write a
    complete model folder to ``out``: the detector's ``config.json`` and ``model.safetensors`` plus the head.
    ``rows``: ``crops`` fits on every crop as a row, ``images`` on crop means."""
    import shutil

    from .models.registry import SHIPPED_MODELS

    out = Path(out)
    if out.resolve().is_relative_to(SHIPPED_MODELS.resolve()):
        raise FamilyHeadError(f"--out {out} is inside the installed package; write the head to a folder of yours")
    if unknown := set(parts) - set(FEATURE_PARTS):
        raise FamilyHeadError(f"unknown feature parts {sorted(unknown)}; known: {', '.join(FEATURE_PARTS)}")
    known_score(np.zeros((1, 2)), score)
    if rows not in ("crops", "images"):
        raise FamilyHeadError(f"rows must be crops or images, got {rows!r}")
    check_model(detector.model, parts)  # before any image is read
    images = family_images(datasets)
    crop_feats, owner, ok = corpus_features(detector, images, cache, progress=progress)
    if missing := set(parts) - set(crop_feats):
        raise FamilyHeadError(f"model {detector.name} gives no {sorted(missing)} features")
    x = pooled(crop_feats, owner, len(images), parts)[ok]
    names = np.array([i.family for i, good in zip(images, ok) if good])
    groups = np.array([i.group for i, good in zip(images, ok) if good])
    row_of = np.cumsum(ok) - 1  # image index -> row of x (unreadable images have no crops)
    crops = (np.concatenate([crop_feats[p] for p in parts], axis=1), row_of[owner]) if rows == "crops" else None
    folds = [
        fold
        for seed in seeds
        for fold in open_set_folds(x, names, groups, parts=parts, c=c, min_images=min_images, seed=seed, crops=crops)
    ]
    if not folds:
        raise FamilyHeadError("the open-set calibration needs >= 3 known families (one held out, two to fit)")
    calibration = calibrate_open_set(folds, score)
    known = np.isin(names, known_families(names, min_images))
    head = fit_rows(x, names, known, crops, parts=parts, c=c, model=detector.name)
    head.info.update(min_images=min_images, rows=rows, images={f: int((names == f).sum()) for f in head.families})
    head.threshold, head.open_set_score = calibration["threshold"], score
    head.model_weights_sha256 = detector.provenance()["weights_sha256"]
    head.info.update(
        datasets=[Path(d).name for d in datasets],
        unreadable=int((~ok).sum()),
        open_set_calibration={**calibration, "seeds": list(seeds), "folds": folds_for(names, min_images)},
    )
    source = detector.source or ""
    folder = SHIPPED_MODELS / source.split(":", 1)[1] if source.startswith("shipped:") else Path(source)
    out.mkdir(parents=True, exist_ok=True)
    if not source:  # a detector built in memory: save its model, so the folder loads on its own
        detector.model.save_pretrained(out)
    elif folder.resolve() != out.resolve():
        for name in ("config.json", "model.safetensors"):
            shutil.copyfile(folder / name, out / name)
    head.save(out)
    return head
