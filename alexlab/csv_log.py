"""Lightning's CSV logger (logger=csv, and the fallback when W&B cannot start), compact and kept across a resume.

- One row per epoch. Lightning's writer adds a row per call: the training metrics, the validation metrics and the
  learning rate of one epoch each had their own sparse row, and the test's row sat under an epoch that never ran
  (the epoch counter after fit). Here the metrics of one epoch share its row; what comes without an epoch (the lr
  monitor's value, logged as the epoch starts) goes into the next epoch's row; the test's metrics go into the row
  of the last epoch trained.
- A resumed run keeps the rows before it. Lightning's writer deletes an existing metrics.csv when it starts
  ("Previous log files in this directory will be deleted"), so resuming a run (resume=true, a re-run sweep, a SLURM
  requeue) emptied it; this one reads it back and goes on.

The table is small (a row per epoch), so each save writes it whole, atomically (alexlab.record.atomic_write): a
reader never sees half a file.
"""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path

from lightning.pytorch.loggers import CSVLogger as LightningCSVLogger
from lightning.pytorch.loggers.csv_logs import ExperimentWriter
from lightning.pytorch.loggers.logger import rank_zero_experiment

from alexlab.record import atomic_write


class EpochRowsWriter(ExperimentWriter):
    def __init__(self, log_dir: str) -> None:
        self.rows: list[dict[str, float]] = []  # the whole table, one row per epoch
        self.waiting: dict[str, float] = {}  # metrics logged without an epoch: they join the next epoch's row
        super().__init__(log_dir)

    def _check_log_dir_exists(self) -> None:
        """Called by the writer's __init__ where Lightning's deletes the old file: reads its rows back instead."""
        path = Path(self.metrics_file_path)
        if path.is_file():
            with path.open(newline="") as file:
                self.rows = [{k: float(v) for k, v in row.items() if v != ""} for row in csv.DictReader(file)]

    def log_metrics(self, metrics_dict: dict, step: int | None = None) -> None:
        metrics = {k: v.item() if hasattr(v, "item") else v for k, v in metrics_dict.items()}
        if step is not None:
            metrics["step"] = step
        if "epoch" not in metrics:
            self.waiting.update(metrics)
            return
        if any(key.startswith("test/") for key in metrics) and self.rows:
            metrics["epoch"] = self.rows[-1]["epoch"]  # the test is of the network as the last epoch left it
        metrics = {**self.waiting, **metrics}
        self.waiting = {}
        row = next((row for row in self.rows if row.get("epoch") == metrics["epoch"]), None)
        if row is None:
            self.rows.append(metrics)
        else:
            row.update(metrics)

    def save(self) -> None:
        if self.waiting and self.rows:
            self.rows[-1].update(self.waiting)
            self.waiting = {}
        if not self.rows:
            return
        keys = sorted({key for row in self.rows for key in row} - {"epoch", "step"})
        text = io.StringIO()
        writer = csv.DictWriter(text, fieldnames=["epoch", "step", *keys])
        writer.writeheader()
        for row in sorted(self.rows, key=lambda row: row["epoch"]):
            writer.writerow({k: shown(k, v) for k, v in row.items()})
        atomic_write(Path(self.metrics_file_path), lambda f: f.write(text.getvalue().encode()))


def shown(key: str, value: float) -> str | float:
    """epoch and step as whole numbers; NaN as an empty cell."""
    if isinstance(value, float) and math.isnan(value):
        return ""
    return int(value) if key in ("epoch", "step") else value


class CSVLogger(LightningCSVLogger):
    @property
    @rank_zero_experiment
    def experiment(self) -> EpochRowsWriter:
        if self._experiment is None:
            self._fs.makedirs(self.root_dir, exist_ok=True)
            self._experiment = EpochRowsWriter(log_dir=self.log_dir)
        return self._experiment
