"""The tests' fork server (tests/forkserver.py) gives what the installed command in a fresh process gives."""

import subprocess

import pytest
from helpers.commands import run_alexlab


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
