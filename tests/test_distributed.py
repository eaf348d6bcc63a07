"""DDP on the CPU (gloo, 2 processes) through the real `alexlab` command, alone and inside a multirun; the paper's
two-tower split trained through Lightning with both towers on CPU devices, its checkpoint tested as split=grouped."""

import torch
from helpers.commands import read_metrics, run_dirs

from alexlab.distributed import is_rank_zero

TEST_IMAGES = 101  # odd: 2 ranks get 51 + 50 images; a padding sampler would count 102
TINY_DDP = (
    "experiment=smoke",
    "trainer=ddp_cpu",
    "logger=none",
    "trainer.max_epochs=1",
    "trainer.limit_train_batches=2",
    "trainer.limit_val_batches=2",
    "trainer.limit_test_batches=null",
    f"data.source.test_size={TEST_IMAGES}",
)


def test_ddp_run_writes_one_run_dir_and_syncs_the_test_error_over_every_image(alexlab, tmp_path):
    alexlab("train", *TINY_DDP)
    (run_dir,) = run_dirs(tmp_path / "outputs")
    metrics = read_metrics(run_dir)
    assert metrics["status"] == "finished"
    # rank 1 wrote nothing of its own: no log file, no .hydra, no second run directory
    assert sorted(p.name for p in run_dir.iterdir() if p.name.endswith(".log")) == ["alexlab.log"]
    assert len(list((tmp_path / "outputs" / "runs").iterdir())) == 1

    ddp_error = metrics["final"]["test/top1_err"]
    wrong = round(ddp_error * TEST_IMAGES)
    assert abs(ddp_error - wrong / TEST_IMAGES) < 1e-6, "the error is not a count out of the 101 test images"
    # the same checkpoint tested in one process gives the same error: the ranks' shards were summed, not one shard
    best = metrics["checkpoints"]["best"]
    alexlab("test", *TINY_DDP[:1], "logger=none", f"ckpt_path={best}", *TINY_DDP[-2:])
    single = [read_metrics(d) for d in run_dirs(tmp_path / "outputs") if d != run_dir]
    assert len(single) == 1 and single[0]["status"] == "finished"
    assert single[0]["final"]["test/top1_err"] == ddp_error
    assert abs(single[0]["final"]["test/loss"] - metrics["final"]["test/loss"]) < 1e-5


def test_ddp_inside_a_multirun_runs_each_job_once(alexlab, tmp_path):
    sweep = tmp_path / "sweep"
    alexlab("-m", *TINY_DDP, "test_views=centre,ten_crop", f"hydra.sweep.dir={sweep}")
    # exactly the two jobs' directories: the processes DDP started ran their job, not the sweep again
    assert sorted(p.name for p in sweep.iterdir() if p.is_dir()) == ["0", "1"]
    assert not (tmp_path / "outputs").exists() or not list((tmp_path / "outputs").rglob("metrics.json"))
    for job, seed, trained_in in (("0", 0, None), ("1", 0, "0")):
        metrics = read_metrics(sweep / job)
        assert metrics["status"] == "finished" and metrics["seed"] == seed
        assert len(metrics["history"]) == 1
        assert sorted(p.name for p in (sweep / job).iterdir() if p.name.endswith(".log")) == ["alexlab.log"]
        # a job that only tests another's training (alexlab.twins): its DDP processes test that checkpoint too
        assert metrics["trained_in"] == (str(sweep / trained_in) if trained_in else None)
        assert "test/top1_err" in metrics["final"]


def test_rank_zero_is_known_before_the_trainer(monkeypatch):
    for key in ("RANK", "LOCAL_RANK", "SLURM_PROCID", "JSM_NAMESPACE_RANK", "NODE_RANK", "GROUP_RANK"):
        monkeypatch.delenv(key, raising=False)
    assert is_rank_zero()
    monkeypatch.setenv("LOCAL_RANK", "1")  # a process Lightning started
    assert not is_rank_zero()
    monkeypatch.setenv("LOCAL_RANK", "0")
    monkeypatch.setenv("NODE_RANK", "1")  # local rank 0 of the second node
    assert not is_rank_zero()
    monkeypatch.setenv("SLURM_PROCID", "0")  # srun's global rank wins
    monkeypatch.delenv("LOCAL_RANK")
    assert is_rank_zero()


def test_two_tower_split_trains_through_lightning_and_its_checkpoint_tests_as_grouped(alexlab, tmp_path):
    """split=two_gpu with both towers on CPU devices: the same code path as two GPUs (activations cross with
    .to(device) into conv3 and the FC layers); the checkpoint it saves tests as split=grouped with the same error."""
    tiny = ("experiment=smoke", "logger=none", "trainer.max_epochs=1", "trainer.limit_train_batches=2",
            "trainer.limit_val_batches=1", "trainer.limit_test_batches=2")  # fmt: skip
    alexlab("train", *tiny, "split=two_gpu", "model.devices=[cpu,cpu]")
    (run_dir,) = run_dirs(tmp_path / "outputs")
    towers = read_metrics(run_dir)
    assert towers["status"] == "finished" and towers["switches"]["split"] == "two_gpu"
    state = torch.load(towers["checkpoints"]["last"], map_location="cpu", weights_only=True)["state_dict"]
    assert "model.features.conv2.weight" in state and not any(k.endswith("weight_a") for k in state)
    errors = {}
    for split in (("split=grouped",), ("split=two_gpu", "model.devices=[cpu,cpu]")):
        before = set(run_dirs(tmp_path / "outputs"))
        alexlab("test", *tiny, *split, f"ckpt_path={towers['checkpoints']['last']}")
        (new,) = set(run_dirs(tmp_path / "outputs")) - before
        metrics = read_metrics(new)
        assert metrics["status"] == "finished"
        errors[split[0]] = (metrics["final"]["test/top1_err"], metrics["final"]["test/loss"])
    assert errors["split=grouped"][0] == errors["split=two_gpu"][0]
    assert abs(errors["split=grouped"][1] - errors["split=two_gpu"][1]) < 1e-4
