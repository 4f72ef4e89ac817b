"""Scoring at scale on Ray Data (the ``ray`` extra): millions of images, resumable, one row per image.

Inputs are cut into *chunks*: a fixed number of paths from folders and CSV / Parquet path lists, or one
WebDataset-style tar shard (members grouped by key, the name up to the first dot; image members are scored). Ray
Data runs ``map_batches`` over an actor pool, one :class:`~nirnet.detect.Detector` per actor; each actor scores a
chunk and writes it as one Parquet file, atomically, named after the chunk's content. A rerun into the same output
folder skips the chunks whose file exists, so an interrupted job resumes where it stopped. A file that cannot be
read is a row with ``error`` set, never a failed job.

Rows: the result schema of :data:`nirnet.detect.ROW_FIELDS` (``path`` is the file path, or
``shard.tar::key.ext`` for a tar member). With ``attribute`` the generated verdicts also get ``family`` and
``family_scores`` (the model's family head), as ``nirnet detect --attribute`` gives them; a resumed run keeps the
chunks already written as they are.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from ._atomic import atomic_write
from .data.sources import expand_sources, shard_members
from .data.sources import write_shard as tar_shard  # noqa: F401 - kept under its former name
from .decision import DecisionRule
from .defaults import DEFAULT_BACKEND, DEFAULT_BATCH_SIZE, DEFAULT_CHUNK_SIZE


@dataclass(frozen=True)
class Chunk:
    """A unit of work: some file paths, or one tar shard."""

    paths: tuple[str, ...] = ()
    shard: str | None = None

    @property
    def name(self) -> str:
        digest = hashlib.sha1("\n".join(self.paths or (self.shard or "",)).encode()).hexdigest()[:16]
        return f"part-{digest}.parquet"


def plan_chunks(inputs: Iterable[str | os.PathLike], chunk_size: int = DEFAULT_CHUNK_SIZE) -> list[Chunk]:
    """Inputs (as :func:`~nirnet.data.sources.expand_sources` reads them) -> chunks, in input order."""
    return plan(inputs, chunk_size)[0]


def plan(
    inputs: Iterable[str | os.PathLike], chunk_size: int = DEFAULT_CHUNK_SIZE
) -> tuple[list[Chunk], list[tuple[Path, str]]]:
    """(chunks, files left out with the reason): ``chunk_size`` image paths per chunk, then one chunk per shard."""
    sources = expand_sources(inputs)
    paths = [str(p) for p in sources.files]
    chunks = [Chunk(paths=tuple(paths[i : i + chunk_size])) for i in range(0, len(paths), chunk_size)]
    return chunks + [Chunk(shard=str(s)) for s in sources.shards], sources.skipped


class ChunkScorer:
    """A Ray actor: one detector, scores whole chunks and writes one Parquet file per chunk."""

    def __init__(
        self,
        model: str | None,
        out_dir: str,
        threshold: float | None,
        batch_size: int,
        backend: str = DEFAULT_BACKEND,
        attribute: bool = False,
    ) -> None:
        import torch

        from .detect import Detector

        torch.set_num_threads(1)  # one actor per core
        self.detector = Detector.from_pretrained(model, threshold=threshold, batch_size=batch_size, backend=backend)
        self.out_dir = Path(out_dir)
        self.attribute = attribute
        if attribute:
            self.detector.require_family_head()

    def __call__(self, batch: dict) -> dict:
        written = []
        for encoded in batch["chunk"]:
            chunk = Chunk(**json.loads(encoded))
            rows = list(self.score_chunk(chunk))
            write_rows(self.out_dir / chunk.name, rows)
            written.append(len(rows))
        return {"rows": written}

    def score_chunk(self, chunk: Chunk) -> Iterator[dict]:
        from .detect import prepare_source

        if chunk.shard is None:
            predictions = self.detector.predict_paths(list(chunk.paths), workers=0, attribute=self.attribute)
        else:
            items = []  # (name, prepared or None, error)
            for name, data, error in shard_members(chunk.shard):
                items.append(
                    (name, None, error) if error else (name, *prepare_source(self.detector.model.config, data, name))
                )
            predictions = self.detector.predictions(items, self.attribute)
        for p in predictions:
            yield p.to_row()


def write_rows(path: Path, rows: list[dict]) -> None:
    """One chunk's rows as Parquet, atomically (a crash never leaves a part file that looks finished)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from .detect import ROW_SCHEMA, flat_row

    arrow = {str: pa.string(), float: pa.float64(), dict: pa.string()}  # a dict (family scores) as JSON text
    schema = pa.schema([(name, arrow[kind]) for name, kind in ROW_SCHEMA.items()])
    table = pa.Table.from_pylist([flat_row(row) for row in rows], schema=schema)
    atomic_write(path, lambda tmp: pq.write_table(table, tmp))


@dataclass
class ScaleReport:
    chunks: int
    skipped_chunks: int
    rows: int
    failed: int
    output: Path
    skipped: list[tuple[Path, str]] = field(default_factory=list)  # files left out of the inputs, with why


def score_at_scale(
    inputs: Iterable[str | os.PathLike],
    out_dir: str | os.PathLike,
    model: str | None = None,
    threshold: float | None = None,
    address: str | None = None,
    actors: int | None = None,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    batch_size: int = DEFAULT_BATCH_SIZE,
    jsonl: bool = False,
    backend: str = DEFAULT_BACKEND,
    verbose: bool = False,
    attribute: bool = False,
) -> ScaleReport:
    """Score every input image on Ray (a local Ray in this process without ``address`` / ``RAY_ADDRESS``); writes
    ``out_dir/part-*.parquet`` (and ``out_dir/results.jsonl`` with ``jsonl``); returns counts. ``backend``: where
    each actor runs the forward pass (``auto``, ``torch`` or ``onnx``, see :mod:`nirnet.runtime`). Ray's own log
    lines (start-up, Data progress) are off unless ``verbose``. ``attribute``: also the generator family of
    generated verdicts (the model needs a family head; checked before Ray starts)."""
    try:
        import ray
    except ImportError as exc:
        raise ImportError("scoring at scale needs the ray extra: pip install 'nirnet[ray]'") from exc
    from .runtime import check_backend

    check_backend(backend)  # one line here rather than a failure inside every actor
    if threshold is not None:
        threshold = DecisionRule(threshold).threshold  # likewise: an invalid threshold is refused before Ray starts
    if attribute:
        from .detect import Detector

        Detector.from_pretrained(model, backend="torch").require_family_head()  # likewise, before Ray starts
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    chunks, skipped = plan(inputs, chunk_size)
    todo = [c for c in chunks if not (out / c.name).is_file()]
    if todo:
        level = logging.INFO if verbose else logging.ERROR
        if not verbose:
            _quiet_ray()
        if not ray.is_initialized():
            ray.init(
                address=address or os.environ.get("RAY_ADDRESS"),
                include_dashboard=False,
                log_to_driver=verbose,
                logging_level=level,
            )
        import ray.data

        logging.getLogger("ray.data").setLevel(level)  # Ray Data sets its own level when it is imported
        ray.data.DataContext.get_current().enable_progress_bars = verbose
        pool = actors or max(1, int(ray.available_resources().get("CPU", 1)))
        items = [{"chunk": json.dumps({"paths": list(c.paths), "shard": c.shard})} for c in todo]
        ds = ray.data.from_items(items, override_num_blocks=len(items))
        ds.map_batches(
            ChunkScorer,
            fn_constructor_args=(model, str(out), threshold, batch_size, backend, attribute),
            batch_size=1,
            compute=ray.data.ActorPoolStrategy(size=min(pool, len(items))),
            num_cpus=1,
        ).materialize()
    rows = read_rows(out, chunks)
    if jsonl:
        text = "".join(json.dumps(row) + "\n" for row in rows)
        atomic_write(out / "results.jsonl", lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))
    failed = sum(1 for r in rows if r["error"])
    return ScaleReport(len(chunks), len(chunks) - len(todo), len(rows), failed, out, skipped)


def _quiet_ray() -> None:
    """Ray's start-up notes, token warning and Data progress lines would bury the one summary line the caller
    prints; errors that stop the job still raise. The core's C++ log level is read from the environment when Ray
    starts (a user's own setting wins)."""
    os.environ.setdefault("RAY_BACKEND_LOG_LEVEL", "fatal")
    for name in ("ray", "ray.data"):
        logging.getLogger(name).setLevel(logging.ERROR)


def read_rows(out_dir: str | os.PathLike, chunks: list[Chunk] | None = None) -> list[dict]:
    """The rows of a scored output folder (in chunk order when ``chunks`` is given)."""
    import pyarrow.parquet as pq

    out = Path(out_dir)
    files = [out / c.name for c in chunks] if chunks is not None else sorted(out.glob("part-*.parquet"))
    rows: list[dict] = []
    for file in files:
        rows += pq.read_table(file).to_pylist()
    return rows
