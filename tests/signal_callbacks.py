"""A Lightning callback for the tests of tests/test_record.py, loaded by the real `alexlab` command through
`+callbacks.signal._target_=signal_callbacks.SigtermAt` (the test puts this folder on PYTHONPATH): it sends the job's
own process SIGTERM at one moment of the run, as `kill` or a cluster's time limit would."""

import os
import signal
import subprocess
import time
from pathlib import Path

import lightning as L


class SigtermAt(L.Callback):
    """SIGTERM at Lightning's `hook`, once: not again once the file `once` exists (a resumed run goes on)."""

    def __init__(self, hook: str, once: str) -> None:
        if not hasattr(L.Callback, hook):
            raise ValueError(f"no Lightning hook {hook}")
        self.hook, self.once = hook, Path(once)
        setattr(self, hook, self._send)

    def _send(self, *args, **kwargs) -> None:
        if not self.once.exists():
            self.once.touch()
            os.kill(os.getpid(), signal.SIGTERM)


class ScancelAt(SigtermAt):
    """At Lightning's `hook`, once: `scancel --signal=USR1` of the SLURM job running this process, as a cluster's
    pre-emption or `#SBATCH --signal=USR1@120` before the time limit: SLURM signals every process of the job's step
    (the DataLoader workers too), and Lightning's auto-requeue saves hpc_ckpt_<n>.ckpt and requeues the job."""

    def _send(self, *args, **kwargs) -> None:
        if not self.once.exists():
            self.once.touch()
            subprocess.run(["scancel", "--signal=USR1", os.environ["SLURM_JOB_ID"]], check=True)
            time.sleep(5)  # the signal arrives at this moment of the run (slurmd delivers it a little later)
