"""A job's signals: SIGTERM, and SLURM's pre-emption (SIGUSR1), at any moment of a job end it as `interrupted`,
recorded, with its checkpoint to go on from; a pre-empted SLURM job is requeued. The job's handler is installed
before the seconds of importing torch and Lightning (alexlab.cli.run_task), so a signal is never lost."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import threading

log = logging.getLogger("alexlab")


class Interrupted(BaseException):
    """A signal (SIGTERM, a pre-emption) stopped the job outside the training loop (job_signals).
    A BaseException, as KeyboardInterrupt is: code that catches Exception does not swallow it."""


@contextlib.contextmanager
def job_signals():
    """SIGTERM anywhere in a job ends it as `interrupted`, recorded: while fitting, Lightning's own handler stops
    at the next step and CheckpointOnInterrupt saves last.ckpt (so this one only notes it: `Signals.defer`); before
    and after fitting (loading data, building the network, testing) this one raises Interrupted at once.

    Under SLURM, SIGUSR1 is the pre-emption (`scancel --signal=USR1`, `#SBATCH --signal=USR1@120` before the time
    limit: conf/launcher/slurm.yaml), and it may come at any moment of the job. It ends the job as SIGTERM does
    (while fitting: the same stop at the next step and last.ckpt), and then the job is requeued (`scontrol
    requeue`): the requeued job runs again in the same directory and goes on from that checkpoint, or starts again
    when it came before the first one. Lightning's own auto-requeue covers only the training loop (a USR1 while
    the job loads its data or tests killed it, and the work with it), so this handler replaces it for the whole job;
    Lightning sees a handler in place and leaves USR1 to it."""
    signals = Signals()
    main = threading.current_thread() is threading.main_thread()  # handlers live in the main thread
    handled = [signal.SIGTERM] + ([signal.SIGUSR1] if slurm_job() is not None else [])
    previous = {signum: signal.signal(signum, signals.handle) for signum in handled} if main else {}
    try:
        yield signals
    except BaseException:
        if signals.preempted:
            requeue(slurm_job())
        raise
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler if handler is not None else signal.SIG_DFL)


class Signals:
    def __init__(self) -> None:
        self.deferred = False
        self.received = False
        self.preempted = False  # SIGUSR1 under SLURM: requeue the job once it has ended

    def handle(self, signum, frame) -> None:
        # Lightning's loop handles SIGTERM only from the moment its own handler is in place (inside fit, after the
        # data's setup and the checkpoint's restore): before that, a deferred signal would be noted and the whole
        # fit run to its end, so this one raises then as it does outside fit.
        loop_handles = self.deferred and signal.getsignal(signal.SIGTERM) != self.handle
        if signum == signal.SIGUSR1:
            self.preempted = True
            log.warning("SIGUSR1 received: SLURM pre-empts this job; it stops here and is requeued")
            if loop_handles:  # the loop stops at its next step as for SIGTERM, and last.ckpt is saved
                os.kill(os.getpid(), signal.SIGTERM)
                return
        self.received = True
        if not loop_handles:
            raise Interrupted(f"{signal.Signals(signum).name} received")

    @contextlib.contextmanager
    def defer(self):
        """While Lightning's loop handles SIGTERM: only note it; raise once the loop has returned."""
        self.deferred = True
        try:
            yield
        finally:
            self.deferred = False
        if self.received:
            raise Interrupted("SIGTERM received while fitting")


# What SLURM and a terminal send every process of a job: SLURM's pre-emption (USR1, or USR2 where a site sets it),
# its SIGTERM, Ctrl-C. The main process handles them (job_signals); a DataLoader worker ignores them (worker_init).
JOB_SIGNALS = tuple(
    getattr(signal, name) for name in ("SIGUSR1", "SIGUSR2", "SIGTERM", "SIGINT") if hasattr(signal, name)
)  # (Windows has no SIGUSR1/2)


@contextlib.contextmanager
def held_for_children():
    """The job's signals held (blocked) in the calling thread while it starts child processes, which are born with
    them held: a signal that comes before a child has its own handling in place (torch's DataLoader worker installs
    a SIGTERM handler that dies of any SIGTERM not sent by its parent, milliseconds before it calls worker_init)
    waits for the child to take it (ignore_held: dropped) instead of killing it. The parent loses nothing: its other
    threads take a signal meanwhile (Python runs the handler in the main thread all the same), or it waits until the
    block ends."""
    if not hasattr(signal, "pthread_sigmask"):  # Windows: no POSIX signals to hold
        yield
        return
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, [])  # read only: the mask as it is
    try:  # (a handler that runs as the mask changes may raise: the finally puts it back all the same)
        signal.pthread_sigmask(signal.SIG_BLOCK, JOB_SIGNALS)
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def ignore_held() -> None:
    """In a child born under held_for_children: the job's signals ignored from now on, and the ones that came while
    held dropped (a held signal whose action becomes SIG_IGN is discarded), then no longer held."""
    for signum in JOB_SIGNALS:
        signal.signal(signum, signal.SIG_IGN)
    if hasattr(signal, "pthread_sigmask"):
        signal.pthread_sigmask(signal.SIG_UNBLOCK, JOB_SIGNALS)


def slurm_job() -> str | None:
    """The SLURM job this process runs in as `scontrol` names it (an array's element as JOB_TASK), None outside
    SLURM. An interactive allocation (srun bash, salloc) is not a batch job to requeue: None, as Lightning's
    SLURMEnvironment decides."""
    if "SLURM_JOB_ID" not in os.environ or os.environ.get("SLURM_JOB_NAME") in ("bash", "interactive"):
        return None
    array, task = os.environ.get("SLURM_ARRAY_JOB_ID"), os.environ.get("SLURM_ARRAY_TASK_ID")
    return f"{array}_{task}" if array and task else os.environ["SLURM_JOB_ID"]


def requeue(job: str | None) -> None:
    """`scontrol requeue JOB`, once per job: by its first task (SLURM_PROCID 0; every task of a step gets the
    signal). SLURM then ends this stint and starts the job again in the same directory."""
    import subprocess

    if job is None or os.environ.get("SLURM_PROCID", "0") != "0":
        return
    done = subprocess.run(["scontrol", "requeue", job], capture_output=True, text=True, check=False)
    if done.returncode == 0:
        log.warning("requeued SLURM job %s: it goes on from its last checkpoint", job)
    else:
        log.error("could not requeue SLURM job %s: %s", job, (done.stderr or done.stdout).strip())
