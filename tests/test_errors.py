"""Bad input and faults through `alexlab`'s entry point: one line `alexlab: error: <what and how to fix>` on stderr,
a non-zero exit and no traceback. Most cases call it in this process (run_alexlab_here); the malicious checkpoint
for `train`, the out-of-memory run and the sweep files run the real command. (An unknown option, `depth=9`, an
unknown key and `data.batch_size=-1` are in test_cli.py's test_bad_input_gives_one_clear_line.)"""

import os
import textwrap
from pathlib import Path

import pytest
import torch
from helpers.commands import read_metrics, run_alexlab, run_alexlab_here

SMOKE = ("experiment=smoke", "logger=none")
TINY = (*SMOKE, "trainer.max_epochs=1", "trainer.limit_train_batches=1", "trainer.limit_val_batches=1")
TINY += ("test_after_fit=false",)


def alexlab_with(tmp_path: Path, files: dict[str, Path], *args: str, here: bool = True):
    """`alexlab [train|test] TINY ARGS` with outputs under tmp_path, unless ARGS say otherwise ({name}: files[name]);
    called in this process, or with here=False as a command of its own."""
    command = [args[0]] if args[0] in ("train", "test", "-m") else []
    args = [arg.format(**files) for arg in args[len(command) :]]
    run = run_alexlab_here if here else run_alexlab
    return run(*command, f"paths.output_root={tmp_path / 'outputs'}", *TINY, *args, cwd=tmp_path)


def assert_one_clear_line(result, *expected: str) -> None:
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, output  # the error line alone: no warning before it
    last = lines[0]
    assert last.startswith("alexlab: error:"), output
    for text in expected:
        assert text in last, last
    assert "Traceback" not in output, output


class RunsCode:
    """A pickled object that would run code when unpickled: touches `marker`."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    """A real checkpoint of the smoke net (depth 5) from a one-batch training, a truncated copy, a checkpoint that
    would run code when unpickled, an empty folder and a plain file (no directory can be made under it)."""
    root = tmp_path_factory.mktemp("files")
    result = run_alexlab("train", *TINY, f"hydra.run.dir={root / 'run'}", cwd=root)
    assert result.returncode == 0, result.stderr
    files = {"ckpt": root / "run" / "checkpoints" / "last.ckpt", "truncated": root / "truncated.ckpt"}
    files["truncated"].write_bytes(files["ckpt"].read_bytes()[:20000])
    files["marker"], files["evil"] = root / "marker", root / "evil.ckpt"
    torch.save({"state_dict": {}, "hyper_parameters": RunsCode(files["marker"])}, files["evil"])
    files["empty"], files["file"] = root / "empty", root / "afile"
    files["empty"].mkdir()
    files["file"].write_text("a file, not a directory\n")
    return files


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        # config: unknown key (with the nearest name), a word for a number
        (("dropuot=off",), ["unknown key 'dropuot'", "did you mean dropout?"]),
        (("data.batch_size=abc",), ["data.batch_size=abc", "takes an integer"]),
        (("optimizer.lr=fast",), ["optimizer.lr=fast", "takes a number"]),
        # a value of the wrong shape or kind, refused before Hydra writes: a list for a group or for one value, a
        # fraction for an integer, an empty path (which would write under /), a key the class does not take
        (("depth=[5]",), ["depth=[5]: 'depth' takes one of its options (3, 4, 5, 6), not a list"]),
        (("lrn={{a:1}}",), ["'lrn' takes one of its options", "not a mapping"]),
        (("data.batch_size=[1,2]",), ["data.batch_size takes an integer, not a list"]),
        (("seed=1.5",), ["seed=1.5: seed takes an integer"]),
        (("paths.output_root=",), ["paths.output_root is empty; give a directory"]),
        (("+trainer.max_epoch=3",), ["Trainer takes no argument 'max_epoch'; did you mean max_epochs"]),
        # a key of a _target_ is checked against that argument's annotation: Lightning's precision takes one of its
        # words or numbers, gradient_clip_val (null in the config) a number
        (("trainer.precision=33",), ["trainer.precision=33: trainer.precision takes one of 64, 32, 16,", "or null"]),
        (("trainer.gradient_clip_val=abc",), ["gradient_clip_val takes an integer, a number or null"]),
        (("trainer.max_epochs=1.5",), ["trainer.max_epochs takes an integer or null"]),
        # no NaN or infinity where a number goes, in a list either
        (("optimizer.lr=nan",), ["optimizer.lr=nan: optimizer.lr takes a finite number, not NaN or infinity"]),
        (("optimizer.momentum=-inf",), ["optimizer.momentum=-inf", "takes a finite number"]),
        (("model.widths=[16,nan,48,48,32]",), ["model.widths=[16,nan,48,48,32]", "takes a finite number"]),
        # an interpolation is resolved as the job would, before anything is written
        (("seed=${{no.such.key}}",), ["seed=${no.such.key}: Interpolation key 'no.such.key' not found"]),
        (("data.batch_size=${{oc.env:ALEXLAB_UNSET}}",), ["Environment variable 'ALEXLAB_UNSET' not found"]),
        (("data.batch_size=${{oc.env:HOME}}",), ["data.batch_size takes an integer", "resolves to '/"]),
        # data sets: no path given, an empty folder
        (("data=imagefolder", "data.num_classes=2"), ["data.source.root has no value", "data.source.root="]),
        (("data=imagefolder", "data.num_classes=2", "data.source.root={empty}"), ["no class folders in", "empty"]),
        # checkpoints: missing, truncated, of another architecture (naming the layers), for test and for resuming
        (("train", "ckpt_path={empty}/nope.ckpt"), ["checkpoint not found", "nope.ckpt"]),
        (("train", "ckpt_path={truncated}"), ["truncated.ckpt cannot be read", "truncated or not a checkpoint"]),
        (("train", "ckpt_path={ckpt}", "depth=4"), ["does not fit", "unexpected model.features.conv4.bias"]),
        (
            ("test", "ckpt_path={ckpt}", "model.widths=[16,32,48,48,32]"),
            ["does not fit", "model.features.conv1.weight (32, 3, 3, 3) vs (16, 3, 3, 3)"],
        ),
        # an output directory that cannot be made: under a plain file (root may write anywhere else)
        (("paths.output_root={file}/out",), ["cannot write into", "afile (not a directory)", "paths.output_root"]),
        (("-m", "hydra.sweep.dir={file}/sweep"), ["cannot write into", "afile (not a directory)", "hydra.sweep.dir"]),
    ],
)
def test_bad_input_ends_in_one_line(tmp_path, files, args, expected):
    assert_one_clear_line(alexlab_with(tmp_path, files, *args), *expected)


@pytest.mark.parametrize(
    "args",
    [("trainer.precision=33",), ("optimizer.lr=inf",), ("seed=${no.such.key}",), ("data.batch_size=${oc.env:NOPE}",)],
)
def test_a_refused_value_leaves_no_run_directory(tmp_path, args):
    assert_one_clear_line(run_alexlab_here(*TINY, *args, f"paths.output_root={tmp_path / 'out'}", cwd=tmp_path))
    assert not (tmp_path / "out").exists()


def test_what_lightning_and_interpolations_take_runs(tmp_path):
    """A fraction where the preset sets a count (every limit_*_batches takes both), and an interpolation in an
    override: the run finishes, its record keeps the override as typed, and the same command in its directory
    finds it finished (the claim compares the command as typed, not as resolved)."""
    run_dir = tmp_path / "run"
    args = (*TINY, "trainer.limit_test_batches=1.0", "trainer.limit_val_batches=0.5", "+note=${oc.env:ALEXLAB_NOTE}")
    env = {"ALEXLAB_NOTE": "hello"}
    first = run_alexlab(*args, f"hydra.run.dir={run_dir}", cwd=tmp_path, env=env)
    assert first.returncode == 0, first.stderr
    record = read_metrics(run_dir)
    assert record["status"] == "finished" and "+note=${oc.env:ALEXLAB_NOTE}" in record["overrides"]
    again = run_alexlab(*args, f"hydra.run.dir={run_dir}", cwd=tmp_path, env=env)
    assert again.returncode == 0 and "already finished" in again.stdout + again.stderr, again.stderr


@pytest.mark.parametrize("args", [("test", "ckpt_path={evil}"), ("train", "ckpt_path={evil}")])
def test_a_checkpoint_that_would_run_code_is_refused(tmp_path, files, args):
    result = alexlab_with(tmp_path, files, *args, here=args[0] == "test")  # `train` as a command of its own
    assert_one_clear_line(result, "evil.ckpt holds a Python object (posix.system)", "refused", "weights_only=True")
    assert not files["marker"].exists()


def test_weights_are_read_with_the_same_care(files):
    from alexlab.checkpoints import load_weights

    with pytest.raises(ValueError, match="holds a Python object .posix.system.*refused"):
        load_weights(str(files["evil"]))
    assert not files["marker"].exists()
    with pytest.raises(ValueError, match="weights file .*truncated.ckpt cannot be read"):
        load_weights(str(files["truncated"]))
    with pytest.raises(FileNotFoundError, match="weights file not found"):
        load_weights(str(files["empty"] / "nope.pt"))
    assert "features.conv1.weight" in load_weights(str(files["ckpt"]))


@pytest.mark.parametrize(
    ("axis", "expected"),
    [
        ("dropuot: on,off", ["unknown key 'dropuot'", "did you mean dropout?"]),
        ("lrn: maybe,on", ["lrn=maybe is not an option of 'lrn'", "caffe, off, on"]),
        ("data.batch_size: 32,abc", ["data.batch_size=abc", "takes an integer"]),
    ],
)
def test_a_sweep_file_naming_an_unknown_switch_writes_nothing(tmp_path, axis, expected):
    sweep_file = tmp_path / "bad.yaml"
    sweep_file.write_text(
        textwrap.dedent(
            f"""\
            defaults:
              - config
              - override experiment: smoke
              - _self_
            hydra:
              mode: MULTIRUN
              searchpath: [pkg://alexlab.conf, pkg://alexlab.sweeps]
              sweep:
                dir: {tmp_path / "sweep"}
              sweeper:
                params:
                  {axis}
            """
        )
    )
    result = run_alexlab(
        "sweep", "./bad.yaml", "logger=none", f"paths.output_root={tmp_path / 'outputs'}", cwd=tmp_path
    )
    assert_one_clear_line(result, *expected)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.yaml"]  # no sweep directory, no outputs


def test_out_of_memory_in_a_run_names_the_batch_size(alexlab, tmp_path):
    """A callback that raises CUDA's out-of-memory error at the first training batch, as a too large batch would."""
    (tmp_path / "oom_callback.py").write_text(
        textwrap.dedent(
            """\
            import lightning as L
            import torch

            class OutOfMemoryAtFirstBatch(L.Callback):
                def on_train_batch_start(self, *args):
                    raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 9.00 GiB (GPU 0; 7.79 GiB)")
            """
        )
    )
    callback = "+callbacks.oom._target_=oom_callback.OutOfMemoryAtFirstBatch"
    result = alexlab(*TINY, callback, env={"PYTHONPATH": str(tmp_path)}, expect_ok=False)
    assert_one_clear_line(
        result,
        "out of memory at data.batch_size=32 (CUDA out of memory. Tried to allocate 9.00 GiB",
        "try data.batch_size=16 or trainer.precision=bf16-mixed",
    )


def test_out_of_memory_message():
    from alexlab.errors import OutOfMemory
    from alexlab.errors import out_of_memory_line as oom_message
    from alexlab.messages import user_error

    cuda = oom_message(torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB.\nmore"), 256)
    assert cuda == (
        "out of memory at data.batch_size=256 (CUDA out of memory. Tried to allocate 2.00 GiB.): try "
        "data.batch_size=128 or trainer.precision=bf16-mixed"
    )
    cpu = RuntimeError(
        "[enforce fail at alloc_cpu.cpp:117] data. DefaultCPUAllocator: can't allocate memory: you tried to allocate "
        "8589934592 bytes. Error code 12 (Cannot allocate memory)"
    )
    assert oom_message(cpu, 1).startswith(
        "out of memory at data.batch_size=1 (CPU: DefaultCPUAllocator: can't allocate memory: you tried to allocate "
    )
    assert oom_message(cpu, 1).endswith("try data.batch_size=1 or trainer.precision=bf16-mixed")
    assert oom_message(RuntimeError("mat1 and mat2 shapes cannot be multiplied"), 64) is None
    assert user_error(OutOfMemory(cuda)) == cuda


def test_the_error_line_masks_secrets(capsys):
    from alexlab.cli import exit_on_user_error

    def connect():
        raise ValueError("cannot connect to postgresql://alex:s3cr3t@db.example:5432/studies")

    with pytest.raises(SystemExit):
        exit_on_user_error(connect)
    line = "alexlab: error: cannot connect to postgresql://alex:<masked>@db.example:5432/studies\n"
    assert capsys.readouterr().err == line
