"""Secrets are used but never written: not in metrics.json, Hydra's saved configs, the Optuna sweeper's files, the
log or the W&B run files."""

import logging
from pathlib import Path

import optuna
import pytest
import test_optuna_sweeper
from helpers.commands import run_alexlab

from alexlab.masking import SecretsFilter, is_secret_name, mask, mask_file, mask_text
from alexlab.optuna_storage import open_storage

# the tests' own PostgreSQL server (trust authentication: the password in the URL is sent and ignored)
postgres_server, postgres_url = test_optuna_sweeper.postgres_server, test_optuna_sweeper.postgres_url


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        (
            "hydra.sweeper.storage=postgresql://u:s3cr3t@127.0.0.1:9/db",
            "hydra.sweeper.storage=postgresql://u:<masked>@127.0.0.1:9/db",
        ),
        ("trial.storage='mysql+pymysql://me:p%40ss@db/x'", "trial.storage='mysql+pymysql://me:<masked>@db/x'"),
        ("+secret_token=abc", "+secret_token=<masked>"),
        ("  api_key: abc123", "  api_key: <masked>"),
        ('{"password": "a b"}', '{"password": "<masked>"}'),
        ("WANDB_API_KEY=abc lr: 0.1", "WANDB_API_KEY=<masked> lr: 0.1"),
        # a value with a comma or a space is masked whole: a sweep over two secrets, a YAML line, a quoted override
        ("+db_password=A,B", "+db_password=<masked>"),
        ("db_password: A,B C", "db_password: <masked>"),
        ("- +db_password='A,B'", "- +db_password='<masked>'"),
        ("password=[a,b] lr=1", "password=<masked> lr=1"),
        ("override_dirname: +api_token=x,lr=1", "override_dirname: +api_token=<masked>,lr=1"),
        ("    secret: 'A B'\n    lr: 0.1", "    secret: '<masked>'\n    lr: 0.1"),
        ("    secret: A B\n    lr: 0.1", "    secret: <masked>\n    lr: 0.1"),
        # not secrets
        ("postgresql://u@host/db sqlite:///x.db key=value", "postgresql://u@host/db sqlite:///x.db key=value"),
        (
            "exclude_keys: []  api_key: ${oc.env:KEY}  KeyError: 'x'",
            "exclude_keys: []  api_key: ${oc.env:KEY}  KeyError: 'x'",
        ),
    ],
)
def test_mask_text(text, masked):
    assert mask_text(text) == masked


def test_what_is_a_secret(monkeypatch):
    assert all(map(is_secret_name, ("api_key", "WANDB_API_KEY", "db.password", "+secret_token", "PGPASSWORD")))
    assert not any(map(is_secret_name, ("key", "exclude_keys", "monkey", "tokenizer", "storage")))
    assert not any(map(is_secret_name, ("seed_key", "hydra.sweeper.seed_key")))  # the seed rounds' `seed`
    assert mask_text("    seed_key: seed\n    api_key: abc\n") == "    seed_key: seed\n    api_key: <masked>\n"
    monkeypatch.setenv("WANDB_API_KEY", "0123456789abcdef")
    assert mask_text("logged in with 0123456789abcdef") == "logged in with <masked>"
    data = {"logger": {"api_key": "abc", "project": "p"}, "overrides": ["+token=x", "lr=1"], "n": 3, "none": None}
    assert mask(data) == {
        "logger": {"api_key": "<masked>", "project": "p"},
        "overrides": ["+token=<masked>", "lr=1"],
        "n": 3,
        "none": None,
    }


def test_log_lines_and_saved_files_are_masked(tmp_path):
    record = logging.LogRecord("alexlab", logging.INFO, __file__, 1, "study in %s", ("postgresql://u:pw@h/db",), None)
    assert SecretsFilter().filter(record) and record.getMessage() == "study in postgresql://u:<masked>@h/db"
    saved = tmp_path / "overrides.yaml"
    saved.write_text("- +db.password=pw\n- lr=0.1\n")
    mask_file(saved)
    assert saved.read_text() == "- +db.password=<masked>\n- lr=0.1\n"


def assert_nowhere(secret: str, root: Path, *outputs: str) -> None:
    found = [str(p) for p in root.rglob("*") if p.is_file() and secret.encode() in p.read_bytes()]
    assert not found, f"{secret} written to {found}"
    assert not [line for output in outputs for line in output.splitlines() if secret in line]


def test_a_run_writes_no_secret(tmp_path):
    """A run with W&B (offline) given a token and a URL with a password as config values."""
    result = run_alexlab(
        "experiment=smoke",
        "logger=wandb",
        "trainer.max_epochs=1",
        "test_after_fit=false",
        "+api_token=t0ps3cr3t",
        "+db_url=postgresql://alex:s3cr3t@db.example/runs",
        f"paths.output_root={tmp_path / 'outputs'}",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert list(tmp_path.rglob("run-*.wandb")) and list(tmp_path.rglob("metrics.json"))
    for secret in ("t0ps3cr3t", "s3cr3t"):
        assert_nowhere(secret, tmp_path, result.stdout, result.stderr)


def test_an_optuna_sweep_uses_the_storage_password_and_writes_it_nowhere(tmp_path, postgres_url):
    storage = postgres_url.replace("://postgres@", "://postgres:s3cr3t@")
    result = run_alexlab(
        "-m",
        "hydra/sweeper=optuna",
        "experiment=smoke",
        "logger=wandb",
        "trainer.max_epochs=1",
        "test_after_fit=false",
        "optimizer.lr=tag(log, interval(1e-4, 1e-1))",
        "hydra.sweeper.n_trials=1",
        f"hydra.sweeper.storage='{storage}'",
        f"hydra.sweep.dir={tmp_path / 'sweep'}",
        f"paths.output_root={tmp_path / 'outputs'}",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    trials = optuna.load_study(study_name="alexlab", storage=open_storage(storage)).trials
    assert [t.state.name for t in trials] == ["COMPLETE"]  # the study connected, with the password
    written = {p.name for p in (tmp_path / "sweep").rglob("*")}
    assert {"multirun.yaml", "optuna_study.yaml", "optimization_results.yaml", "hydra.yaml", "metrics.json"} <= written
    assert_nowhere("s3cr3t", tmp_path, result.stdout, result.stderr)
