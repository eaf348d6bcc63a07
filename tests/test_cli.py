"""The real `alexlab` command in a subprocess: help, info, bad input, smoke trainings, test, multirun."""

import re
import sys

import pytest
from helpers.commands import FASHION_MNIST, FEW_BATCHES, read_metrics, run_alexlab, run_alexlab_here, run_dirs

SMOKE = ("experiment=smoke", "logger=csv")


def test_help_lists_subcommands_groups_and_options(tmp_path):
    result = run_alexlab("--help", cwd=tmp_path)
    assert result.returncode == 0
    for word in ("train", "test", "info", "depth", "3, 4, 5*, 6", "dropout", "off, on*", "two_gpu", "ten_crop"):
        assert word in result.stdout


def test_info_prints_the_papers_network(tmp_path):
    result = run_alexlab("info", "model=paper", "data.num_classes=1000", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "60,965,224" in result.stdout and "96x55x55" in result.stdout and "256x6x6" in result.stdout
    half = run_alexlab("info", "model=paper", "split=half", "data.num_classes=1000", cwd=tmp_path)
    assert "59,798,312" in half.stdout
    tv = run_alexlab("info", "model=torchvision", "data.num_classes=1000", cwd=tmp_path)
    assert "61,100,840" in tv.stdout and "lrn" not in tv.stdout


def test_hydra_flags_go_anywhere_among_the_overrides(tmp_path):
    """Hydra's parser takes its flags before the overrides only: alexlab puts them there (the fuzzer found
    `alexlab dropout=on,off -m depth=5,3` ending in Hydra's usage and "unrecognized arguments")."""
    result = run_alexlab_here("model=paper", "--cfg", "job", "dropout=off", "--resolve", "depth=4", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "dropout: 0.0" in result.stdout and "depth: 4" in result.stdout
    result = run_alexlab_here("dropout=on,off", "-m", "--info", "defaults", "depth=5,3", cwd=tmp_path)
    assert result.returncode == 2 and "Only one of --run, --multirun" in result.stderr  # Hydra's own rule, one line


def test_hydra_cfg_flag_prints_the_composed_config(tmp_path):
    result = run_alexlab("--cfg", "job", "model=paper", "dropout=off", "depth=4", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "dropout: 0.0" in result.stdout and "depth: 4" in result.stdout and "widths:" in result.stdout
    assert not (tmp_path / "outputs").exists()


@pytest.mark.parametrize(
    "args, expected",
    [
        (("dropout=maybe",), "dropout=maybe is not an option of 'dropout'; choose one of: off, on"),
        (("depth=9",), "choose one of: 3, 4, 5, 6"),
        (("nonsense=1",), "nonsense"),
        (("data=fashion_mnist", "data.source.root=/nowhere", "data.source.download_root=/nowhere2"), "/nowhere"),
        (("data=imagefolder", "data.source.root=/no/such/folder", "data.num_classes=3"), "/no/such/folder"),
        (("split=two_gpu",), "split=grouped"),
        (("data.batch_size=-1",), "batch_size"),
        # Hydra's flags: one it lacks, one without its value or with a value it does not take
        (("--foo",), "unknown flag --foo; Hydra's flags: --cfg"),
        (("--cfg",), "--cfg needs a value: one of job, hydra, all"),  # (an override follows it here)
        (("--cfg", "jobs"), "--cfg jobs: --cfg takes one of job, hydra, all"),
        (("-cn",), "-cn needs a value"),
    ],
)
def test_bad_input_gives_one_clear_line(tmp_path, args, expected):
    # the first case as a command of its own; the others call the same entry point in this process (no imports)
    run = run_alexlab if args == ("dropout=maybe",) else run_alexlab_here
    result = run(*SMOKE, *args, f"paths.output_root={tmp_path / 'outputs'}", cwd=tmp_path)
    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("alexlab: error:") and expected in lines[0]
    assert "Traceback" not in result.stdout + result.stderr


def test_log_lines_go_to_the_stdout_of_the_moment(monkeypatch):
    """Rich's live progress bar redirects sys.stdout while it runs: the log's lines must follow it there (printed
    above the bar) instead of writing to the stream that was current when logging was set up (onto the bar)."""
    import io
    import logging

    from alexlab.terminal import TerminalHandler

    handler = TerminalHandler(sys.stdout)
    handler.setFormatter(logging.Formatter("%(message)s"))
    redirected = io.StringIO()
    monkeypatch.setattr(sys, "stdout", redirected)
    handler.emit(logging.LogRecord("alexlab", logging.INFO, __file__, 1, "epoch 0  val/top1_err=50.00%", None, None))
    assert redirected.getvalue() == "epoch 0  val/top1_err=50.00%\n"


@pytest.mark.parametrize(
    ("word", "hint"), [("trian", "did you mean 'train'?"), ("raport", "did you mean 'report'?"), ("xyz", "")]
)
def test_a_mistyped_command_is_named_with_the_nearest_one(tmp_path, word, hint):
    result = run_alexlab_here(word, cwd=tmp_path)
    assert result.returncode == 2
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith(f"alexlab: error: '{word}' is not a command: {hint}") and "the commands: train" in line


@pytest.mark.parametrize("command", ["train", "test", "info", "sweep", "report", "dashboard", "bench"])
def test_every_command_answers_help(tmp_path, command):
    result = run_alexlab_here(command, "--help", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "usage" in result.stdout.lower() or "== Config groups ==" in result.stdout, result.stdout
    assert not list(tmp_path.rglob("*.yaml"))  # nothing ran


def test_smoke_training_writes_a_complete_run_dir(alexlab, tmp_path):
    # no TTY here: progress lines (progress_every_s=0: one after every step) instead of a bar
    # in a fresh process: a warning printed while a library is imported must show here too
    result = alexlab(
        "experiment=smoke", "logger=wandb", "seed=3", "progress_every_s=0", env={"WANDB_SILENT": "false"}, fresh=True
    )
    output = result.stdout + result.stderr
    assert "litlogger" not in output and "set_vital" not in output  # libraries' adverts and internal deprecations
    for chatter in ("GPU available", "TPU available", "stepping batches", "was configured so", "Trainer.fit"):
        assert chatter not in output, output  # Lightning's lines that say nothing here (terminal.LIGHTNING_CHATTER)
    assert not [line for line in output.splitlines() if "warn" in line.lower()], output  # no warning line at all
    # one unit, percent, for every error in the terminal; the headline last: what the run measured, and where
    assert re.search(r"^epoch 1  .*val/top1_err=\d+\.\d\d%", result.stdout, re.M), result.stdout
    assert re.search(r"^epoch 0  step 5/30  \d+ images/s  left: epoch \d+ s, run \d+ s$", result.stdout, re.M)
    *_, measured, where = result.stdout.strip().splitlines()
    assert re.fullmatch(
        r"finished in \d+ s: test top-1 error \d+\.\d\d% \(accuracy \d+\.\d\d%\), top-5 error \d+\.\d\d%; "
        r"best val/top1_err \d+\.\d\d% at epoch [01]",
        measured,
    ), measured
    (run_dir,) = run_dirs(tmp_path / "outputs")
    metrics = read_metrics(run_dir)
    assert metrics["status"] == "finished"
    assert metrics["switches"]["depth"] == "5" and metrics["switches"]["data"] == "synthetic"
    assert metrics["seed"] == 3
    assert 0.0 <= metrics["final"]["test/top1_err"] <= 1.0 and 0.0 <= metrics["final"]["test/top5_err"] <= 1.0
    assert len(metrics["history"]) == 2 and "val/top1_err" in metrics["history"][0]
    assert metrics["best"]["val/top1_err"] == min(row["val/top1_err"] for row in metrics["history"])
    assert (run_dir / ".hydra" / "config.yaml").is_file()
    assert (run_dir / "checkpoints" / "last.ckpt").is_file()
    assert metrics["checkpoints"]["best"] and (run_dir / "checkpoints").glob("epoch*.ckpt")
    offline_runs = list((run_dir / "wandb").glob("offline-run-*/run-*.wandb"))
    assert len(offline_runs) == 1 and offline_runs[0].stat().st_size > 0
    assert where == f"run dir: {run_dir}"
    rows = (run_dir / "csv" / "metrics.csv").read_text().splitlines()  # a row per epoch, the test's in the last
    assert [row.split(",")[0] for row in rows[1:]] == ["0", "1"] and "test/top1_err" in rows[0]


def test_logger_tensorboard_works_from_the_readmes_install(alexlab, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    alexlab(*SMOKE[:1], "logger=tensorboard", "trainer.limit_train_batches=4", "trainer.limit_val_batches=1")
    (run_dir,) = run_dirs(tmp_path / "outputs")
    assert list((run_dir / "tensorboard").glob("events.out.tfevents.*"))
    accumulator = EventAccumulator(str(run_dir / "tensorboard"))  # every event file of the run
    accumulator.Reload()
    assert [event.step for event in accumulator.Scalars("val/top1_err")] == [3, 7]  # one per epoch, at its step
    assert (run_dir / "csv" / "metrics.csv").is_file()  # with the CSV log beside it


def test_a_run_logging_to_csv_needs_neither_wandb_nor_optuna(tmp_path):
    """wandb (most of a second of protobufs) and Optuna are imported where a W&B logger, a W&B file or a study is
    used, not by every run: a CSV run trains where neither is installed (e.g. a GPU machine's own image)."""
    import subprocess

    code = (
        "import sys; sys.modules['wandb'] = sys.modules['optuna'] = None\n"  # `import wandb` now raises ImportError
        "from alexlab.cli import main\n"
        "main(sys.argv[1:])"
    )
    args = ["experiment=smoke", "logger=csv", "trainer.max_epochs=1", "trainer.limit_train_batches=2"]
    command = [sys.executable, "-c", code, *args]
    done = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    (run_dir,) = run_dirs(tmp_path / "outputs")
    assert read_metrics(run_dir)["status"] == "finished" and not (run_dir / "wandb").exists()


def test_test_command_evaluates_a_checkpoint(alexlab, tmp_path):
    alexlab(*SMOKE, "trainer.max_epochs=1", *FEW_BATCHES)
    (run_dir,) = run_dirs(tmp_path / "outputs")
    ckpt = run_dir / "checkpoints" / "last.ckpt"
    alexlab("test", *SMOKE, f"ckpt_path={ckpt}", "test_views=ten_crop")
    test_dir = [d for d in run_dirs(tmp_path / "outputs") if d != run_dir][0]
    metrics = read_metrics(test_dir)
    assert metrics["task"] == "test" and 0.0 <= metrics["final"]["test/top1_err"] <= 1.0
    # a checkpoint of another architecture is refused in one line that names the layers (the entry point called in
    # this process: the same code as the command, without a fresh process's imports)
    outputs = f"paths.output_root={tmp_path / 'outputs'}"
    bad = run_alexlab_here("test", *SMOKE, f"ckpt_path={ckpt}", "depth=3", outputs, cwd=tmp_path)
    assert bad.returncode == 2 and "conv" in bad.stderr and len(bad.stderr.strip().splitlines()) == 1
    corrupt = tmp_path / "corrupt.ckpt"
    corrupt.write_bytes(ckpt.read_bytes()[:1000])
    bad = run_alexlab_here("test", *SMOKE, f"ckpt_path={corrupt}", outputs, cwd=tmp_path)
    assert bad.returncode == 2 and "corrupt.ckpt" in bad.stderr and len(bad.stderr.strip().splitlines()) == 1


def test_the_torchvision_layout_trains(alexlab, tmp_path):
    # model=small trains in every smoke test; model=paper is too heavy to train here (tests/test_model.py checks it)
    alexlab(*SMOKE, "model=torchvision", "data.batch_size=4", "trainer.limit_train_batches=2", "trainer.max_epochs=1")
    (run_dir,) = run_dirs(tmp_path / "outputs")
    assert read_metrics(run_dir)["switches"]["model"] == "torchvision"


@pytest.mark.skipif(not FASHION_MNIST.is_dir(), reason="apt-get install dataset-fashion-mnist")
def test_fashion_mnist_smoke(alexlab, tmp_path):
    alexlab(*SMOKE, "trainer.max_epochs=1", *FEW_BATCHES, "data=fashion_mnist", "augment=paper", "test_views=ten_crop")
    (run_dir,) = run_dirs(tmp_path / "outputs")
    metrics = read_metrics(run_dir)
    assert metrics["switches"]["data"] == "fashion_mnist" and metrics["final"]["test/top1_err"] <= 1.0


def write_image_tree(root, classes=3, per_class=6, size=40):
    import torch
    from torchvision.io import write_png

    for c in range(classes):
        folder = root / f"class_{c}"
        folder.mkdir(parents=True)
        for i in range(per_class):
            image = torch.zeros(3, size, size, dtype=torch.uint8)
            image[c] = 200 + i
            write_png(image, str(folder / f"{i}.png"))


def test_imagefolder_and_imagenet_layouts_smoke(alexlab, tmp_path):
    write_image_tree(tmp_path / "folder")
    alexlab(
        *SMOKE,
        "data=imagefolder",
        f"data.source.root={tmp_path / 'folder'}",
        "data.num_classes=3",
        "data.image_size=32",
        "data.resize_size=36",
        "model.input_size=32",
        "data.num_workers=0",
        "data.batch_size=4",
    )
    for split in ("train", "val"):
        write_image_tree(tmp_path / "imagenet" / split)
    alexlab(  # both places to decode: the workers, and the training device (here the CPU) through Lightning's hook
        "-m",
        *SMOKE,
        "data=imagenet",
        "data.decode=loader,device",
        f"data.source.root={tmp_path / 'imagenet'}",
        "data.num_classes=3",
        "data.val_size=3",
        "data.resize_size=36",
        "model.input_size=32",
        "data.num_workers=0",
        "data.pca=data",
        "data.batch_size=4",
        "augment=paper",
    )
    runs = [read_metrics(d) for d in run_dirs(tmp_path / "outputs")]
    assert sorted(m["switches"]["data"] for m in runs) == ["imagefolder", "imagenet", "imagenet"]
    assert all(0.0 <= m["final"]["test/top1_err"] <= 1.0 for m in runs)

    def learning(run: dict) -> list[dict]:  # every epoch's and the test's metrics, but not the images/s
        return [{k: v for k, v in row.items() if not k.startswith("perf/")} for row in [*run["history"], run["final"]]]

    by_decode = {o.split("=")[1]: m for m in runs for o in m["overrides"] if o.startswith("data.decode=")}
    assert learning(by_decode["loader"]) == learning(by_decode["device"])
