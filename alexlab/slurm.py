"""What SLURM says about the jobs of a sweep, for the launcher that waits on them (launcher=slurm,
hydra_plugins/alexlab_slurm).

A job of a sweep ends in one of two ways: it runs to its end and submitit leaves its result file beside it, or SLURM
ends it without one: an administrator's `scancel`, a node failure, a time limit, a requeue killed before it started
("Job credential revoked"), or a requeue held by SLURM that would wait for a person forever. A launcher that waits for
result files alone waits forever on the second kind (submitit asks `sacct`, which a cluster without accounting does not
answer: every job stays UNKNOWN). This module asks SLURM itself, in the order that works on any cluster:

- `scontrol show job -o ARRAY_ID`: every element of the array, from slurmctld, with or without accounting, for as
  long as slurmctld keeps an ended job (MinJobAge, 300 s by default; the launcher asks every few seconds);
- `sacct -X -P -j ID` where accounting exists: jobs that slurmctld has forgotten;
- and a job that neither knows any more is one that ended.

A job's state is SLURM's own word (JobState): PENDING, RUNNING and the other states of a job on its way are `waiting`;
COMPLETED, FAILED, CANCELLED, TIMEOUT, NODE_FAIL and the other end states are `ended`; a job held by SLURM (a requeue
held after its launch failed, `scontrol hold`, a dependency that can never be satisfied) is `held`, and the launcher
gives it a while (hydra.launcher.held_timeout_s) before it cancels it and records it failed.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Callable
from dataclasses import dataclass

# SLURM's job states (squeue(1), JOB STATE CODES) by what they mean for a launcher waiting on the job
ENDED = {"BOOT_FAIL", "CANCELLED", "COMPLETED", "DEADLINE", "FAILED", "NODE_FAIL", "OUT_OF_MEMORY", "PREEMPTED",
         "REVOKED", "TIMEOUT"}  # fmt: skip
HELD_STATES = {"REQUEUE_HOLD", "SPECIAL_EXIT", "RESV_DEL_HOLD", "STOPPED"}
# a PENDING job with one of these reasons starts only once a person acts (scontrol release, a new dependency)
HELD_REASONS = ("JobHeld", "launch failed requeued held", "launch_failed_requeued_held", "DependencyNeverSatisfied",
                "BadConstraints", "InvalidAccount", "InvalidQOS", "PartitionDown", "PartitionInactive")  # fmt: skip
GONE = "GONE"  # neither slurmctld nor accounting knows the job any more: it ended long ago

Run = Callable[..., subprocess.CompletedProcess]


@dataclass(frozen=True)
class JobState:
    """One job of an array as SLURM reports it."""

    job: str  # ARRAY_TASK, as scontrol and scancel name an array element: 12_0
    state: str  # JobState (RUNNING, FAILED, ...), or GONE
    reason: str = ""  # Reason (BeginTime, JobHeldAdmin, NonZeroExitCode, ...): why it waits or why it ended
    exit_code: str = ""  # ExitCode, status:signal (1:0, 0:9)
    source: str = ""  # scontrol, sacct or "" (GONE)

    @property
    def ended(self) -> bool:
        return self.state in ENDED or self.state == GONE

    @property
    def held(self) -> bool:
        return self.state in HELD_STATES or (
            self.state == "PENDING" and any(self.reason.startswith(held) for held in HELD_REASONS)
        )

    def line(self) -> str:
        """The state in one line, as the run's record keeps it."""
        if self.state == GONE:
            return f"SLURM job {self.job} ended without a result; SLURM no longer lists it"
        reason = f" ({self.reason})" if self.reason and self.reason != "None" else ""
        code = f", exit code {self.exit_code}" if self.exit_code and self.exit_code != "0:0" else ""
        return f"SLURM job {self.job} {self.state}{reason}{code}"


def array_states(array_id: str, run: Run = subprocess.run) -> dict[str, JobState]:
    """The state of every element of the array `array_id` that SLURM still knows: ARRAY_TASK -> JobState."""
    states = parse_scontrol(_output(run, ["scontrol", "show", "job", "-o", array_id]))
    known = {job for job in states}
    for job, state in parse_sacct(_output(run, ["sacct", "-X", "-P", "-n", "-o", "JobID,State,Reason,ExitCode",
                                                "-j", array_id])).items():  # fmt: skip
        if job not in known:  # slurmctld's word first: it is the newer
            states[job] = state
    return states


def job_state(job: str, states: dict[str, JobState]) -> JobState:
    """The state of array element `job` (12_0) among `states` (array_states); GONE where SLURM has forgotten it."""
    return states.get(job) or JobState(job, GONE)


def _output(run: Run, command: list[str]) -> str:
    """A command's output, "" where it fails (no accounting, a job slurmctld has forgotten, SLURM not reachable)."""
    try:
        done = run(command, capture_output=True, text=True, timeout=60, check=False)
    except (OSError, subprocess.SubprocessError):
        return ""
    return done.stdout if done.returncode == 0 else ""


# A field of `scontrol show job -o`: Key=value up to the next " Key=" (a value may hold spaces: Reason=launch failed)
FIELD = re.compile(r"(?:^|\s)([A-Z][A-Za-z:/]*)=(.*?)(?=\s[A-Z][A-Za-z:/]*=|$)")


def parse_scontrol(text: str) -> dict[str, JobState]:
    """`scontrol show job -o` of an array: one line per element, or per range of elements still pending together
    (ArrayTaskId=2-3%2, or 2,4-5)."""
    states = {}
    for line in text.splitlines():
        fields = {key: value.strip() for key, value in FIELD.findall(line)}
        if "JobState" not in fields:
            continue
        array, tasks = fields.get("ArrayJobId"), fields.get("ArrayTaskId")
        ids = [f"{array}_{task}" for task in task_ids(tasks)] if array and tasks else [fields.get("JobId", "")]
        for job in ids:
            states[job] = JobState(job, fields["JobState"], fields.get("Reason", ""), fields.get("ExitCode", ""),
                                   "scontrol")  # fmt: skip
    return states


def parse_sacct(text: str) -> dict[str, JobState]:
    """`sacct -X -P -n -o JobID,State,Reason,ExitCode`: one line per job; a pending range as 12_[2-3%2]."""
    states = {}
    for line in text.splitlines():
        parts = line.split("|")
        if len(parts) != 4:
            continue
        job_id, state, reason, code = parts
        state = state.split()[0] if state else ""  # "CANCELLED by 0" -> CANCELLED (the rest goes to the reason)
        reason = " ".join(part for part in (parts[1].partition(" ")[2], reason) if part and part != "None")
        main, _, tasks = job_id.partition("_")
        ids = [f"{main}_{task}" for task in task_ids(tasks.strip("[]"))] if tasks else [job_id]
        for job in ids:
            states[job] = JobState(job, state, reason, code, "sacct")
    return states


def task_ids(text: str) -> list[str]:
    """The array task ids of `2`, `2-3%2`, `2,4-5`."""
    ids = []
    for part in text.partition("%")[0].split(","):
        first, _, last = part.partition("-")
        if first.isdigit() and (not last or last.isdigit()):
            ids += [str(i) for i in range(int(first), int(last or first) + 1)]
    return ids


def cancel(job: str, run: Run = subprocess.run) -> None:
    """`scancel JOB`: a held job that will never start on its own is taken off the queue, so that it cannot start
    later behind the sweep's back and write into a directory the sweep has recorded."""
    _output(run, ["scancel", job])
