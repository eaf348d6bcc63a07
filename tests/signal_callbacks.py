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
            wait_for_preemption(limit_s=120)


def wait_for_preemption(limit_s: float) -> None:
    """Until the job's USR1 handler (alexlab.signals.Signals) has seen the signal that slurmd delivers a little after
    scancel returns, so that it lands at this moment of the run, however long slurmd takes; at a moment where the
    handler raises (loading, testing) the wait ends with it. Not seen within limit_s: the test fails, saying so."""
    handler = getattr(signal.getsignal(signal.SIGUSR1), "__self__", None)
    deadline = time.monotonic() + limit_s
    while handler is not None and not handler.preempted:
        if time.monotonic() > deadline:
            raise RuntimeError(f"SIGUSR1 not delivered within {limit_s:g} s of scancel --signal=USR1")
        time.sleep(0.1)


class CancelAt(SigtermAt):
    """At Lightning's `hook`, once among all the jobs that share `once`: a plain `scancel` of the SLURM job running
    this process, as an administrator's: SLURM ends the job (SIGTERM, then SIGKILL after KillWait) and does not run it
    again. Jobs that reach the hook together: the one that creates `once` (O_EXCL) is cancelled, the others go on."""

    def _send(self, *args, **kwargs) -> None:
        try:
            os.close(os.open(self.once, os.O_CREAT | os.O_EXCL))
        except FileExistsError:
            return
        # an array's element by ARRAY_TASK: scancel refuses its own job id ("Invalid job id specified")
        job = f"{os.environ['SLURM_ARRAY_JOB_ID']}_{os.environ['SLURM_ARRAY_TASK_ID']}"
        # not check=True: scancel runs inside the job's step, and SLURM's SIGTERM to the step may end it before it
        # exits (the job then recorded "scancel died with SIGTERM" as its own error, not SLURM's CANCELLED)
        subprocess.run(["scancel", job], check=False)
        time.sleep(60)  # SLURM ends the job during this wait


class PrintThreads(L.Callback):
    """Prints the run's torch thread count when it starts fitting (tests/test_forkserver.py)."""

    def on_fit_start(self, trainer, pl_module) -> None:
        import torch

        print(f"torch threads: {torch.get_num_threads()}", flush=True)
