"""Lightning's CSV logger (logger=csv, and the fallback when W&B cannot start), with one change: a resumed run keeps
the rows of the epochs before it. Lightning's writer deletes an existing metrics.csv when it starts ("Previous log
files in this directory will be deleted"), so resuming a run (resume=true, a re-run sweep, a SLURM requeue) emptied
the CSV of every epoch before the interruption. This one appends to it, with the columns it already has."""

from __future__ import annotations

import csv

from lightning.pytorch.loggers import CSVLogger as LightningCSVLogger
from lightning.pytorch.loggers.csv_logs import ExperimentWriter
from lightning.pytorch.loggers.logger import rank_zero_experiment


class AppendingWriter(ExperimentWriter):
    def _check_log_dir_exists(self) -> None:
        """Called by the writer's __init__ where Lightning's deletes the old file: reads its columns instead, so
        that the rows to come are appended under the same header (Lightning rewrites the file when columns are
        added, keeping its rows)."""
        if self._fs.isfile(self.metrics_file_path):
            with self._fs.open(self.metrics_file_path, "r", newline="") as file:
                self.metrics_keys = sorted(next(csv.reader(file), []))


class CSVLogger(LightningCSVLogger):
    @property
    @rank_zero_experiment
    def experiment(self) -> AppendingWriter:
        if self._experiment is None:
            self._fs.makedirs(self.root_dir, exist_ok=True)
            self._experiment = AppendingWriter(log_dir=self.log_dir)
        return self._experiment
