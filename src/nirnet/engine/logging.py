"""Training metrics: a rich progress bar, JSONL lines and (when installed) TensorBoard scalars."""

from __future__ import annotations

import json
from pathlib import Path

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from .._atomic import atomic_write_text


class MetricLogger:
    def __init__(self, out_dir: Path, enabled: bool, show_progress: bool, total: int, start: int = 0) -> None:
        self.enabled = enabled
        self.last: dict[str, float] = {}
        self._jsonl = None
        self._tb = None
        self._progress = None
        if not enabled:
            return
        out_dir.mkdir(parents=True, exist_ok=True)
        _drop_lines_after(out_dir / "metrics.jsonl", start)
        self._jsonl = (out_dir / "metrics.jsonl").open("a", encoding="utf-8")
        try:
            from torch.utils.tensorboard import SummaryWriter

            self._tb = SummaryWriter(str(out_dir / "tensorboard"))
        except ImportError:  # tensorboard is optional
            self._tb = None
        if show_progress:
            self._progress = Progress(
                TextColumn("train"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[info]}"),
                TimeRemainingColumn(),
            )
            self._progress.start()
            self._task = self._progress.add_task("train", total=total, completed=start, info="")

    def step(self, step: int, metrics: dict[str, float], log: bool) -> None:
        self.last = {"step": step, **metrics}
        if not self.enabled:
            return
        if self._progress is not None:
            info = f"loss {metrics['loss']:.3f} acc {metrics['acc']:.2f} lr {metrics['lr']:.1e}"
            self._progress.update(self._task, completed=step, info=info)
        if log:
            self._jsonl.write(json.dumps(self.last) + "\n")
            self._jsonl.flush()
            if self._tb is not None:
                for key, value in metrics.items():
                    self._tb.add_scalar(f"train/{key}", value, step)

    def close(self) -> None:
        if self._progress is not None:
            self._progress.stop()
        if self._jsonl is not None:
            self._jsonl.close()
        if self._tb is not None:
            self._tb.close()


def _drop_lines_after(path: Path, step: int) -> None:
    """Keep the lines of steps up to ``step`` (where a resumed run starts): the steps after its checkpoint are
    run and logged again, so their old lines would appear twice. A line torn by a crash goes too."""
    if not path.is_file():
        return
    lines = path.read_text(encoding="utf-8", errors="replace").splitlines(keepends=True)
    kept = [line for line in lines if line.endswith("\n") and _step_of(line) <= step]
    if len(kept) < len(lines):
        atomic_write_text(path, "".join(kept))


def _step_of(line: str) -> float:
    """The step a metrics line logs (infinity for a line that is not one)."""
    try:
        return int(json.loads(line)["step"])
    except (ValueError, KeyError, TypeError):
        return float("inf")
