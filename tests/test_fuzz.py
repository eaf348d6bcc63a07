"""A fuzzer of what a user types and of the files a user can damage (hypothesis, derandomized: the same examples on
every run, so that a failure in CI is reproducible).

- Overrides: one to three drawn from the real config (every key the smoke experiment composes, with values of its
  type, of another type, NaN and infinities), the real config groups (their options and ones they lack), and damaged
  spellings of both (typos, a missing value, an open bracket, an unresolvable interpolation, +/++/~ on the wrong
  key, a list where one value goes), after a base that keeps a run to seconds.
- Damage: a finished sweep (tests/conftest.py's seed_grid) copied, one of its files damaged (cut short, garbage,
  valid JSON or YAML of the wrong shape, a value of the wrong type deep inside, deleted, a directory or a link loop in
  its place), in one job or in every one, then `alexlab report` (with options of any value), `report --source
  wandb`, `dashboard --offline` or `test ckpt_path=` on it.

Each example runs the real command line and must end cleanly: exit 0, or exactly one line `alexlab: error: ...` on
stderr (exit 2 for a command refused, 1 for runs that did not finish), never a traceback; and a refused command
leaves every file that was there before byte-identical. The default run draws a bounded number of examples (about
a minute each); `pytest -m slow tests/test_fuzz.py` draws many more. Every failure the fuzzer found is kept below as
an explicit @example.
"""

from __future__ import annotations

import json
import math
import shutil
import tempfile
from pathlib import Path

import pytest
import yaml
from helpers.commands import run_alexlab, tree_digest
from hydra import compose, initialize_config_module
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st
from omegaconf import OmegaConf

from alexlab import files
from alexlab.config_groups import CONFIG_PACKAGE, group_options

# Keeps a run to seconds whatever the fuzzed overrides say (a later override of the same key wins: the fuzzed ones
# come after, drawn from values that keep a run short, and the time limit comes last).
BASE = ["experiment=smoke", "logger=none", "trainer.max_epochs=1", "trainer.limit_train_batches=2",
        "trainer.limit_val_batches=1", "trainer.limit_test_batches=1", "data.num_workers=0"]  # fmt: skip
TIME_LIMIT = "+trainer.max_time=00:00:00:20"

# Not drawn: where the outputs go (the fuzzer's own directory), Hydra's and the launchers' settings (other processes,
# clusters), experiments (hours of training), presets too big to train in seconds, and what reaches the network.
LEFT_OUT_KEYS = ("hydra.", "paths.", "data.source.download", "experiment")
LEFT_OUT_OPTIONS = {"launcher": {"slurm", "submitit_local", "joblib"}, "model": {"paper", "torchvision"},
                    "trainer": {"ddp", "ddp_cpu"}, "logger": {"wandb"}, "data": {"imagenette"}}  # fmt: skip
LEFT_OUT_GROUPS = {"experiment"}

NUMBERS = [1, 2, 0, -1, 3, 16, 0.5, 1.0, 0.0, 1e-3, 2.5, -1.5, math.nan, math.inf, -math.inf]
WORDS = ["abc", "", "auto", "null", "true", "on", "x y", "café", "1e400", "0x10", "${oc.env:ALEXLAB_FUZZ_UNSET}",
         "${no.such.key}", "${oc.decode:'[1,2]'}", "[1,2]", "{a: 1}", "[", "'open", "1,2", "a=b"]  # fmt: skip


def leaves() -> dict[str, object]:
    """Every key the smoke experiment's config composes -> its value (interpolations as written)."""
    with initialize_config_module(CONFIG_PACKAGE, version_base="1.3"):
        config = OmegaConf.to_container(compose("config", overrides=["experiment=smoke"]), resolve=False)
    found: dict[str, object] = {}

    def walk(node, prefix: str) -> None:
        if isinstance(node, dict) and node and not prefix.endswith("_target_"):
            for key, value in node.items():
                walk(value, f"{prefix}.{key}" if prefix else str(key))
        elif not prefix.startswith(LEFT_OUT_KEYS) and not prefix.endswith("._target_"):
            found[prefix] = node

    walk(config, "")
    return found


KEYS = leaves()
GROUPS = {g: options for g, options in group_options().items() if g not in LEFT_OUT_GROUPS}


def text(value) -> str:
    """A value as typed on the command line."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float) and not math.isfinite(value):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if value is None:
        return "null"
    if isinstance(value, (list, dict)):
        return json.dumps(value).replace('"', "")
    return str(value)


@st.composite
def value_for(draw, default) -> str:
    """A value for a key whose config value is `default`: one of its type most often, else any other."""
    if isinstance(default, bool):
        same = st.sampled_from(["true", "false"])
    elif isinstance(default, (int, float)):
        same = st.sampled_from(NUMBERS).map(text)
    elif isinstance(default, list):
        same = st.sampled_from([text(default), "[]", "[1,2]", "[a]", "[0.5,nan]"])
    elif isinstance(default, str) and not default.startswith("${"):
        same = st.sampled_from([default, "abc", ""])
    else:  # null, a mapping or an interpolation: anything
        same = st.sampled_from(NUMBERS).map(text) | st.sampled_from(["true", "null", "abc"])
    other = st.sampled_from(NUMBERS).map(text) | st.sampled_from(WORDS)
    return draw(st.one_of(same, same, other))


@st.composite
def key_override(draw) -> str:
    key = draw(st.sampled_from(sorted(KEYS)))
    return f"{key}={draw(value_for(KEYS[key]))}"


@st.composite
def group_override(draw) -> str:
    group = draw(st.sampled_from(sorted(GROUPS)))
    options = [o for o in GROUPS[group] if o not in LEFT_OUT_OPTIONS.get(group, ())]
    option = draw(st.sampled_from(options) | st.sampled_from(["nope", "7", "[5]", ""]))
    return f"{group}={option}"


@st.composite
def damaged(draw, override: str) -> str:
    """A damaged spelling of a valid-looking override."""
    key, _, value = override.partition("=")
    how = draw(st.sampled_from(["typo", "no value", "no equals", "add", "force", "delete", "sweep", "bracket",
                                "unset env", "missing key", "list", "double equals"]))  # fmt: skip
    if how == "typo" and len(key) > 1:
        cut = draw(st.integers(0, len(key) - 1))
        return f"{key[:cut]}{key[cut + 1 :]}={value}"
    return {
        "no value": f"{key}=",
        "no equals": key,
        "add": f"+{key}={value}",
        "force": f"++{key}={value}",
        "delete": f"~{key}",
        "sweep": f"{key}={value},{value}",
        "bracket": f"{key}=[{value}",
        "unset env": f"{key}=${{oc.env:ALEXLAB_FUZZ_UNSET}}",
        "missing key": f"{key}=${{no.such.key}}",
        "list": f"{key}=[{value}]",
        "double equals": f"{key}=={value}",
    }.get(how, f"{key}x={value}")


@st.composite
def command_lines(draw) -> list[str]:
    overrides = ["-m"] if draw(st.integers(0, 5)) == 0 else []  # a sweep (of what the overrides sweep, or one job)
    for _ in range(draw(st.integers(1, 3))):
        override = draw(st.one_of(key_override(), group_override()))
        if draw(st.integers(0, 3)) == 0:
            override = draw(damaged(override))
        overrides.append(override)
    return overrides


def check_ends_cleanly(result, before: dict[str, str], root: Path) -> None:
    """The contract of every example (module docstring)."""
    said = f"\nstdout:\n{result.stdout[-3000:]}\nstderr:\n{result.stderr[-3000:]}"
    assert "Traceback" not in result.stdout + result.stderr, said
    if result.returncode == 0:
        event("exit 0")
        return
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode in (1, 2), f"exit {result.returncode}{said}"
    assert len(lines) == 1 and lines[0].startswith("alexlab: error: "), f"not one error line{said}"
    event(f"exit {result.returncode}")
    if result.returncode == 2:
        after = tree_digest(root)
        changed = [path for path, digest in before.items() if after.get(path) != digest]
        assert not changed, f"a refused command changed or removed {changed[:5]}{said}"


@pytest.fixture(scope="module")
def fuzz_root(tmp_path_factory) -> Path:
    """Where the override examples write their runs; earlier examples' runs stay, for later ones to leave alone."""
    return tmp_path_factory.mktemp("fuzz_overrides")


FEW = settings(
    max_examples=20,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)
MANY = settings(FEW, max_examples=300)


def run_overrides(root: Path, overrides: list[str]) -> None:
    before = tree_digest(root)
    result = run_alexlab(*BASE, *overrides, TIME_LIMIT, f"paths.output_root={root / 'outputs'}", cwd=root, timeout=300)
    check_ends_cleanly(result, before, root)


# The failures the fuzzer found, each kept as an example: the override family it stands for.
FOUND_OVERRIDES = [
    ["trainer.limit_test_batches=1.0"],  # a Lightning argument checked against its annotation, not the preset's value
    ["optimizer.lr=nan"],  # a number that cannot be NaN or infinite
    ["+note=${oc.env:HOME}"],  # an interpolation compared as typed when the run directory is claimed
    ["-m", "callbacks.checkpoint.auto_insert_metric_name=true"],  # a Hydra flag after an override: Hydra's usage
    ["ckpt_path=1"],  # YAML reads a number where a checkpoint's path goes: os.path's TypeError
]


def with_examples(name: str, found: list):
    """Each failure the fuzzer found, run as an explicit example before the drawn ones."""

    def decorate(test):
        for case in found:
            test = example(**{name: case})(test)
        return test

    return decorate


@FEW
@given(overrides=command_lines())
@with_examples("overrides", FOUND_OVERRIDES)
def test_overrides_end_cleanly(fuzz_root, overrides):
    run_overrides(fuzz_root, overrides)


@pytest.mark.slow
@MANY
@given(overrides=command_lines())
def test_many_overrides_end_cleanly(fuzz_root, overrides):
    run_overrides(fuzz_root, overrides)


# --- damage to a finished sweep -----------------------------------------------------------------------------------

TARGETS = [files.RECORD, f"{files.HYDRA_DIR}/config.yaml", f"{files.HYDRA_DIR}/overrides.yaml",
           f"{files.HYDRA_DIR}/hydra.yaml", "wandb", "wandb dir", "csv", "checkpoint", "job"]  # fmt: skip
SWEEP_TARGETS = [files.MULTIRUN, files.SWEEP_SUMMARY]
DAMAGE = ["truncate", "garbage", "empty", "wrong shape", "wrong value", "delete", "directory", "link loop"]
COMMANDS = ["report", "report wandb", "dashboard", "test"]
SHAPES = [[], [1, "x"], 7, "text", None, True, {"status": 3}, {"status": "finished", "task": []}]
VALUES = [None, -1, 1.5, math.nan, "x", [], {}, True, [None], {"a": []}]


def target_path(sweep: Path, job: str, target: str) -> Path | None:
    """The file (or folder) a target names in a copied sweep; None where the job has none."""
    if target in SWEEP_TARGETS:
        return sweep / target
    job_dir = sweep / job
    found = {
        "wandb": sorted(job_dir.glob("wandb/*/run-*.wandb")),
        "wandb dir": [job_dir / "wandb"],
        "csv": sorted(job_dir.rglob("*.csv")),
        "checkpoint": sorted((job_dir / files.CHECKPOINTS).glob("*.ckpt")),
        "job": [job_dir],
    }.get(target, [job_dir / target])
    return found[0] if found else None


def reshape(data, steps: list[int], value) -> object:
    """`data` (parsed JSON or YAML) with one value replaced by `value`: the one `steps` lead to (each step picks a key
    or an item, modulo how many there are), as deep as they go."""
    if not steps or not isinstance(data, (dict, list)) or not data:
        return value
    if isinstance(data, dict):
        key = sorted(data, key=str)[steps[0] % len(data)]
        return {**data, key: reshape(data[key], steps[1:], value)}
    index = steps[0] % len(data)
    return [*data[:index], reshape(data[index], steps[1:], value), *data[index + 1 :]]


REPORT_OPTIONS = ["--threshold", "--margin", "--ratio-margin", "--alpha", "--metric", "--baseline", "--source"]


@st.composite
def report_arguments(draw) -> list[str]:
    """A report option with a value of any kind (or none, or one the report lacks)."""
    option = draw(st.sampled_from([*REPORT_OPTIONS, "--bogus"]))
    value = draw(st.sampled_from(NUMBERS).map(text) | st.sampled_from(WORDS + ["dropout=off", "val/top1_err"]))
    return [option] if option == "--bogus" else [option, value]


@st.composite
def plans(draw) -> dict:
    """What to damage, how, and which command then reads the sweep."""
    target = draw(st.sampled_from(TARGETS + SWEEP_TARGETS))
    return {
        "target": target,
        "job": draw(st.sampled_from(["0", "1", "2", "3"])),
        "every job": draw(st.integers(0, 3)) == 0,  # the same damage to each job: a sweep with no readable run
        "damage": draw(st.sampled_from(DAMAGE)),
        "at": draw(st.integers(0, 10**6)),  # where a cut or garbage starts (modulo the file's length)
        "bytes": draw(st.binary(min_size=1, max_size=64)),
        "shape": draw(st.sampled_from(SHAPES)),
        "steps": draw(st.lists(st.integers(0, 50), min_size=1, max_size=3)),
        "value": draw(st.sampled_from(VALUES)),
        "command": draw(st.sampled_from(["test"] if target == "checkpoint" else COMMANDS)),
        "options": draw(st.lists(report_arguments(), max_size=2).map(lambda pairs: sum(pairs, []))),  # for report
    }


def damage(path: Path, plan: dict) -> None:
    """Damage `path` (a file or a folder) in place, as the plan says."""
    how, folder = plan["damage"], path.is_dir() and not path.is_symlink()
    old = b"" if folder else path.read_bytes()
    if how in ("delete", "directory", "link loop") or folder:
        shutil.rmtree(path) if folder else path.unlink()
        if how == "directory":
            path.mkdir()
        elif how == "link loop":
            path.symlink_to(path.name)
        elif how != "delete":
            path.write_bytes(plan["bytes"])  # a folder replaced by a file
        return
    at = plan["at"] % max(len(old), 1)
    if how == "truncate":
        path.write_bytes(old[:at])
    elif how == "garbage":
        path.write_bytes(old[:at] + plan["bytes"] + old[at + len(plan["bytes"]) :])
    elif how == "empty":
        path.write_bytes(b"")
    else:
        as_json = path.suffix == ".json"
        try:
            data = json.loads(old) if as_json else yaml.safe_load(old)
        except (ValueError, yaml.YAMLError):
            data = None
        data = plan["shape"] if how == "wrong shape" else reshape(data, plan["steps"], plan["value"])
        path.write_text(json.dumps(data) if as_json else yaml.safe_dump(data))


@pytest.fixture(scope="module")
def pristine_sweep(seed_grid, tmp_path_factory) -> Path:
    """A copy of the finished seed_grid, never written to: each example damages a copy of it."""
    copy = tmp_path_factory.mktemp("fuzz_damage") / "pristine"
    shutil.copytree(seed_grid, copy, symlinks=True)
    return copy


def run_damaged(pristine: Path, plan: dict) -> None:
    with tempfile.TemporaryDirectory() as work:
        root = Path(work)
        sweep = root / "sweep"
        shutil.copytree(pristine, sweep, symlinks=True)
        jobs = ["0", "1", "2", "3"] if plan["every job"] and plan["target"] not in SWEEP_TARGETS else [plan["job"]]
        paths = [target_path(sweep, job, plan["target"]) for job in jobs]
        paths = [path for path in paths if path is not None and (path.exists() or path.is_symlink())]
        if not paths:
            event("nothing to damage")
            return
        for path in paths:
            damage(path, plan)
        event(f"{plan['target']}: {plan['damage']}" + " (every job)" * (len(paths) > 1))
        before = tree_digest(root)
        checkpoint = target_path(sweep, plan["job"], "checkpoint") or sweep / plan["job"] / files.CHECKPOINTS
        args = {
            "report": ["report", str(sweep), *plan["options"]],
            "report wandb": ["report", str(sweep), "--source", "wandb", *plan["options"]],
            "dashboard": ["dashboard", str(sweep), "--offline"],
            "test": ["test", *BASE, f"ckpt_path={checkpoint}", f"paths.output_root={root / 'outputs'}"],
        }[plan["command"]]
        check_ends_cleanly(run_alexlab(*args, cwd=root, timeout=300), before, root)


def found(**plan) -> dict:
    """A plan the fuzzer found mishandled, kept as an example: what it does not say is harmless."""
    harmless = {"job": "0", "every job": False, "at": 0, "bytes": b"x", "shape": None, "steps": [0], "value": None}
    harmless["options"] = []
    return harmless | {"command": "report"} | plan


# The damage the fuzzer found mishandled, each kept as an example of its family.
FOUND_DAMAGE = [
    found(target=files.MULTIRUN, damage="wrong shape", shape=[1, "x"]),  # a multirun.yaml holding a list
    # the examples: records cut short, a JSON list, values of the wrong type, a directory, in every job (no
    # readable run: an IndexError in choosing the baseline)
    found(target=files.RECORD, damage="truncate", at=40, **{"every job": True}),
    found(target=files.RECORD, damage="wrong shape", shape=[1, "x"], **{"every job": True}),
    found(target=files.RECORD, damage="wrong value", steps=[3, 0], value="x", **{"every job": True}),
    found(target=files.RECORD, damage="directory", **{"every job": True}, command="dashboard"),
    found(target="wandb", damage="truncate", at=5000, command="report wandb"),  # read up to there, said so
    found(target=files.SWEEP_SUMMARY, damage="empty", options=["--metric", "foo"]),  # argparse's usage block
]


@FEW
@given(plan=plans())
@with_examples("plan", FOUND_DAMAGE)
def test_damaged_sweeps_end_cleanly(pristine_sweep, plan):
    run_damaged(pristine_sweep, plan)


@pytest.mark.slow
@MANY
@given(plan=plans())
def test_many_damaged_sweeps_end_cleanly(pristine_sweep, plan):
    run_damaged(pristine_sweep, plan)
