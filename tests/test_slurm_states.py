"""What SLURM says about a sweep's jobs (alexlab.slurm) and what the SLURM launcher does with it
(hydra_plugins/alexlab_slurm), on SLURM's own output as slurm-wlm 22.05 prints it: no cluster needed."""

import json
import subprocess
from pathlib import Path

import pytest

from alexlab import record, slurm
from hydra_plugins.alexlab_slurm import launcher as slurm_launcher

# `scontrol show job -o 18` of an array of three, submitted held, element 0 released and finished (trimmed)
SCONTROL = (
    "JobId=18 ArrayJobId=18 ArrayTaskId=1-2 JobName=wrap UserId=root(0) Priority=0 JobState=PENDING "
    "Reason=JobHeldUser Dependency=(null) Requeue=1 Restarts=0 ExitCode=0:0 RunTime=00:00:00 Command=(null) Power= \n"
    "JobId=19 ArrayJobId=18 ArrayTaskId=0 JobName=wrap UserId=root(0) JobState=COMPLETED Reason=None "
    "Dependency=(null) ExitCode=0:0 RunTime=00:00:01 Power= \n"
)


def test_scontrol_gives_each_element_of_an_array_its_state_pending_ranges_included():
    states = slurm.parse_scontrol(SCONTROL)
    assert set(states) == {"18_0", "18_1", "18_2"}
    assert states["18_1"] == slurm.JobState("18_1", "PENDING", "JobHeldUser", "0:0", "scontrol")
    assert states["18_1"].held and not states["18_1"].ended
    assert states["18_0"].ended and not states["18_0"].held and states["18_0"].line() == "SLURM job 18_0 COMPLETED"


def test_a_reason_with_spaces_is_read_whole():
    line = "JobId=7 ArrayJobId=6 ArrayTaskId=3 JobState=PENDING Reason=launch failed requeued held Dependency=(null)"
    (state,) = slurm.parse_scontrol(line).values()
    assert state.reason == "launch failed requeued held" and state.held
    assert state.line() == "SLURM job 6_3 PENDING (launch failed requeued held)"


@pytest.mark.parametrize(
    ("state", "reason", "ended", "held"),
    [
        ("RUNNING", "None", False, False),
        ("PENDING", "BeginTime", False, False),  # a requeued job waiting out its credential's window
        ("PENDING", "Resources", False, False),
        ("REQUEUED", "None", False, False),
        ("COMPLETING", "None", False, False),
        ("PENDING", "JobHeldAdmin", False, True),
        ("PENDING", "DependencyNeverSatisfied", False, True),
        ("REQUEUE_HOLD", "None", False, True),
        ("FAILED", "NonZeroExitCode", True, False),
        ("CANCELLED", "None", True, False),
        ("NODE_FAIL", "None", True, False),
        ("TIMEOUT", "TimeLimit", True, False),
        (slurm.GONE, "", True, False),
    ],
)
def test_each_state_is_waiting_ended_or_held(state, reason, ended, held):
    job = slurm.JobState("1_0", state, reason)
    assert (job.ended, job.held) == (ended, held)


def test_sacct_fills_in_what_slurmctld_has_forgotten_and_its_state_words_are_split():
    answers = {
        "scontrol": "JobId=21 ArrayJobId=20 ArrayTaskId=1 JobState=RUNNING Reason=None ExitCode=0:0\n",
        "sacct": "20_0|CANCELLED by 0|None|0:15\n20_1|PENDING|None|0:0\n20_[2-3%2]|PENDING|JobHeldUser|0:0\n",
    }

    def run(command, **kwargs):
        return subprocess.CompletedProcess(command, 0, answers[command[0]], "")

    states = slurm.array_states("20", run=run)
    assert states["20_0"] == slurm.JobState("20_0", "CANCELLED", "by 0", "0:15", "sacct")
    assert states["20_1"].state == "RUNNING" and states["20_1"].source == "scontrol"  # slurmctld's is the newer
    assert states["20_3"].held
    assert states["20_0"].line() == "SLURM job 20_0 CANCELLED (by 0), exit code 0:15"
    assert slurm.job_state("20_9", states) == slurm.JobState("20_9", slurm.GONE)


def test_a_cluster_without_accounting_or_without_the_job_gives_no_state_and_no_error():
    def run(command, **kwargs):
        return subprocess.CompletedProcess(command, 1, "", "Slurm accounting storage is disabled")

    assert slurm.array_states("5", run=run) == {}
    assert slurm.job_state("5_0", {}).line() == "SLURM job 5_0 ended without a result; SLURM no longer lists it"


class FakeJob:
    """A submitit job as the launcher's wait sees it: an id and the path of its result file."""

    def __init__(self, job_id: str, folder: Path) -> None:
        self.job_id = job_id
        self.paths = type("Paths", (), {"result_pickle": folder / f"{job_id}_result.pkl"})()

    def results(self):
        return [json.loads(self.paths.result_pickle.read_text())]


def test_the_wait_records_ended_and_held_jobs_failed_and_returns_every_job(tmp_path, monkeypatch):
    """Job 0 has its result; SLURM cancelled job 1 (its record said running); job 2 stays held. The wait returns
    all three: job 1 at once (result_grace_s 0), job 2 after held_timeout_s, cancelled; records say why."""
    sweep = tmp_path / "sweep"
    for number in (1, 2):
        (sweep / str(number)).mkdir(parents=True)
    record.write(sweep / "1", record.Record(status=record.Status.RUNNING, overrides=["dropout=off"], history=[{}]))
    jobs = [FakeJob(f"30_{i}", tmp_path) for i in range(3)]
    jobs[0].paths.result_pickle.write_text(json.dumps("job 0's JobReturn"))
    states = {"30_1": slurm.JobState("30_1", "CANCELLED", "None", "0:15"),
              "30_2": slurm.JobState("30_2", "PENDING", "JobHeldAdmin")}  # fmt: skip
    cancelled = []

    def cancel(job_id: str) -> None:  # as scancel: SLURM then lists the job cancelled
        cancelled.append(job_id)
        states[job_id] = slurm.JobState(job_id, "CANCELLED", "None", "0:15")

    monkeypatch.setattr(slurm, "array_states", lambda array: dict(states))
    monkeypatch.setattr(slurm, "cancel", cancel)
    launcher = slurm_launcher.AlexlabSlurmLauncher(poll_s=0.01, held_timeout_s=0.05, result_grace_s=0)
    overrides = [["dropout=on"], ["dropout=off"], ["+x=1"]]
    returns = launcher.wait(jobs, overrides, [sweep / str(i) for i in range(3)])
    assert returns[0] == "job 0's JobReturn"
    assert [r.return_value != r.return_value for r in returns[1:]] == [True, True]  # NaN: the sweep goes on
    one, two = record.read(sweep / "1"), record.read(sweep / "2")
    assert one.status == record.Status.FAILED and one.error == "SLURM job 30_1 CANCELLED, exit code 0:15"
    assert one.history == [{}] and one.overrides == ["dropout=off"]  # what its own record said is kept
    assert two.status == record.Status.FAILED and two.overrides == ["+x=1"]
    assert two.error == "SLURM job 30_2 PENDING (JobHeldAdmin): held for 0.05 s, cancelled"
    assert cancelled == ["30_2"]


def test_a_finished_record_is_never_turned_into_a_failure(tmp_path):
    """A job that finished its run and was killed before submitit wrote its result: the run's own word stands."""
    finished = record.Record(status=record.Status.FINISHED, overrides=["a=1"], best={"val/top1_err": 0.25})
    record.write(tmp_path, finished)
    before = (tmp_path / record.RECORD).read_bytes()
    returned = slurm_launcher.AlexlabSlurmLauncher.ended_without_result("SLURM job 1_0 CANCELLED", ["a=1"], tmp_path)
    assert returned.return_value == 0.25 and (tmp_path / record.RECORD).read_bytes() == before


@pytest.mark.parametrize("wait", ["poll_s", "held_timeout_s", "result_grace_s"])
@pytest.mark.parametrize("bad", [float("nan"), -1.0, float("inf"), "soon", True])
def test_a_wait_that_is_not_a_number_of_seconds_is_refused_in_one_line(wait, bad):
    """A NaN grace would never run out (a job that ended without its result never recorded, the sweep waiting
    forever): each wait must be a finite number of seconds >= 0."""
    with pytest.raises(ValueError, match=rf"^hydra.launcher.{wait}={bad}: a number of seconds >= 0$"):
        slurm_launcher.AlexlabSlurmLauncher(**{wait: bad})
