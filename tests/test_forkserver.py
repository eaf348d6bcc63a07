"""The tests' fork server (tests/forkserver.py) gives what the installed command in a fresh process gives."""

import re
import signal
import subprocess
from pathlib import Path

import pytest
from helpers.commands import run_alexlab, start_alexlab

TESTS = Path(__file__).resolve().parent


@pytest.mark.parametrize(
    "args",
    [
        ("info", "model=small", "data.num_classes=10"),  # output, exit 0
        ("experiment=smoke", "dropout=maybe"),  # one line on stderr, exit 2
        ("trian",),  # did-you-mean, exit 2
    ],
)
def test_a_forked_run_ends_as_a_fresh_process_does(tmp_path, args):
    forked = run_alexlab(*args, cwd=tmp_path)
    fresh = run_alexlab(*args, cwd=tmp_path, fresh=True)
    assert (forked.returncode, forked.stdout, forked.stderr) == (fresh.returncode, fresh.stdout, fresh.stderr)
    assert forked.stdout or forked.stderr


def test_a_run_past_its_timeout_is_killed_and_the_next_run_works(tmp_path):
    with pytest.raises(subprocess.TimeoutExpired):
        run_alexlab("experiment=smoke", "logger=none", f"paths.output_root={tmp_path}", cwd=tmp_path, timeout=2)
    after = run_alexlab("info", "model=small", cwd=tmp_path)
    assert after.returncode == 0 and "features.conv1" in after.stdout


def test_a_started_run_is_waited_for_signalled_and_killed_as_a_popen_is(tmp_path):
    """start_alexlab's forked run: stdout and stderr in one text, a timeout that leaves it running, kill -9 (with its
    process group), then the status a Popen gives (-9), and its server handed out again for the next run."""
    refused = start_alexlab("info", "model=small", "data.num_classes=x", cwd=tmp_path)  # one line on stderr, exit 2
    assert refused.communicate(timeout=120)[0].startswith("alexlab: error: data.num_classes=x")
    assert refused.returncode == refused.poll() == 2
    shown = start_alexlab("info", "model=small", cwd=tmp_path)  # the table on stdout, exit 0
    assert "features.conv1" in shown.communicate(timeout=120)[0] and shown.returncode == 0
    long = start_alexlab("experiment=smoke", "logger=none", "trainer.max_epochs=1000", f"paths.output_root={tmp_path}",
                         cwd=tmp_path)  # fmt: skip
    with pytest.raises(subprocess.TimeoutExpired):
        long.communicate(timeout=1)
    assert long.poll() is None
    long.kill()
    assert isinstance(long.communicate(timeout=120)[0], str) and long.returncode == -signal.SIGKILL
    long.send_signal(signal.SIGTERM)  # a run that has ended: nothing to signal, as with a Popen
    assert run_alexlab("info", "model=small", cwd=tmp_path).returncode == 0


@pytest.mark.parametrize("threads", ["1", "2"])
def test_a_forked_run_has_the_threads_its_omp_num_threads_gives_a_fresh_one(tmp_path, threads):
    """torch reads OMP_NUM_THREADS when it is imported, which a forked child has done before it sees the run's
    environment: the fork server applies it as a fresh process would have read it."""
    args = ("experiment=smoke", "logger=none", "trainer.max_epochs=1", "trainer.limit_train_batches=1",
            "trainer.limit_val_batches=1", "test_after_fit=false")  # fmt: skip
    args += ("+callbacks.threads._target_=signal_callbacks.PrintThreads",)
    env = {"OMP_NUM_THREADS": threads, "PYTHONPATH": str(TESTS)}
    runs = [run_alexlab(*args, f"paths.output_root={tmp_path / str(fresh)}", cwd=tmp_path, env=env, fresh=fresh)
            for fresh in (False, True)]  # fmt: skip
    counts = [re.findall(r"torch threads: (\d+)", run.stdout + run.stderr) for run in runs]
    assert counts == [[threads], [threads]], [run.stderr[-2000:] for run in runs]
