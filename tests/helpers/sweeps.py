"""Sweep directories built by hand, with the numbers a test needs: each job's run record written through its owner
(alexlab.record) and, where a test needs what the run's config says (its data, schedule, network), the config Hydra
would have saved (.hydra/config.yaml). The defaults make every claim of the paper readable: RGB images of 100
classes at the paper's raw scale, a constant learning rate, a clean training curve, an LRN that acts."""

from pathlib import Path

import optuna
import yaml
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend

from alexlab import record

BASE = {
    "model": "small",
    "depth": "5",
    "dropout": "on",
    "lrn": "on",
    "pooling": "overlap",
    "activation": "relu",
    "split": "grouped",
    "init": "paper",
    "augment": "flip_crop",
    "test_views": "centre",
    "data": "synthetic",
    "optimizer": "sgd",
    "schedule": "paper",
    "trainer": "smoke",
    "experiment": "smoke",
}
CONFIG = {"data": {"channels": 3, "num_classes": 100, "scale": "raw"}, "schedule": {"name": "constant"}}
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def write_run(
    sweep: Path,
    job,
    seed=0,
    val=(0.3, 0.1),
    test=(0.32, 0.12),
    status="finished",
    error=None,
    train_eval=None,
    curve=None,
    views=None,
    lrn_strength=0.5,
    size=(1000, 5000),
    config=None,
    clean=True,
    **changes,
) -> Path:
    """A job dir with a run record: `changes` are switches (or, with a double underscore in the key, plain overrides:
    optimizer__lr). val: (best val top-1, top-5); test: the test top-1 and top-5 in the view test_views names; views:
    (centre, ten-crop) test top-1, both views as every run now records them; train_eval: the final train_eval top-1
    error; curve: [(step, training top-1 error)] every 10 steps, as trained and (unless clean=False) clean;
    lrn_strength: of a network
    with LRN; size: (parameters, MACs); config: the saved .hydra/config.yaml (CONFIG by default, None for none)."""
    switches = BASE | {k: v for k, v in changes.items() if "__" not in k}
    settings = [f"{k.replace('__', '.')}={v}" for k, v in changes.items() if "__" in k]
    job_dir = Path(sweep) / str(job)
    job_dir.mkdir(parents=True)
    history = [{"epoch": e, "val/top1_err": val[0] + 0.1 * (2 - e), "val/top5_err": val[1]} for e in range(3)]
    final = {"val/top1_err": val[0], "val/top5_err": 0.99, "test/top1_err": test[0], "test/top5_err": test[1]}
    final |= {} if train_eval is None else {"train_eval/top1_err": train_eval}
    final |= {} if views is None else {"test_centre/top1_err": views[0], "test_ten_crop/top1_err": views[1]}
    final |= {"lrn/conv1_strength": lrn_strength} if switches["lrn"] != "off" and lrn_strength is not None else {}
    rows = [{"step": step, "train/top1_err": error, "train/loss": 1.0} for step, error in curve or []]
    # the clean error at the weights the as-trained bins measured on average (report.bin_centres: s - 5.5 for rows every
    # 10 steps), so that both curves give a run the same steps
    clean_rows = [{"step": step - 5.5, "train_clean/top1_err": error} for step, error in curve or []] if clean else []
    overrides = ["logger=none", *(f"{k}={v}" for k, v in changes.items() if "__" not in k), *settings, f"seed={seed}"]
    record.write(job_dir, record.Record(
        status=record.Status(status), error=error, overrides=overrides, seed=seed, switches=switches,
        objective="val/top1_err", final=final, best={"val/top1_err": val[0], "val/top5_err": val[1], "epoch": 2},
        history=history, curve=rows, clean_curve=clean_rows, parameters=size[0], macs=size[1],
    ))  # fmt: skip
    config = CONFIG if config is None else config
    if config:
        (job_dir / ".hydra").mkdir()
        (job_dir / ".hydra" / "config.yaml").write_text(yaml.safe_dump(config))
    return job_dir


def write_multirun_yaml(sweep: Path, **choices) -> None:
    config = {"seed": 0, "optimizer": {"lr": 0.01}, "hydra": {"runtime": {"choices": BASE | choices}}}
    (Path(sweep) / "multirun.yaml").write_text(yaml.safe_dump(config))


def seed_rounds_yaml(sweep: Path, seeds="auto", min_seeds=3, max_seeds=10, **options) -> None:
    """multirun.yaml as the seed rounds sweeper saves it (its keys interpolated from the sweep file's); options:
    its margin, ratio_margin, threshold."""
    sweeper = "hydra_plugins.alexlab_seed_rounds.seed_rounds.SeedRoundsSweeper"
    config = {"seeds": seeds, "max_seeds": max_seeds,
              "hydra": {"sweeper": {"_target_": sweeper, "seeds": "${seeds}", "min_seeds": min_seeds,
                                    "max_seeds": "${max_seeds}", "margin": None, "ratio_margin": None,
                                    "threshold": None} | options, "runtime": {"choices": BASE}}}  # fmt: skip
    (Path(sweep) / "multirun.yaml").write_text(yaml.safe_dump(config))


def curve_reaching(target_step: int, threshold: float = 0.25, start: float = 0.9, end: float = 0.05):
    """A training curve every 10 steps, falling linearly so that it crosses `threshold` at `target_step` exactly
    as the report reads it: each row (logged at step s) at the middle of the weights its bin measured, s - 5.5."""
    steps = list(range(10, 4 * target_step + 1, 10))
    slope = (start - threshold) / target_step
    return [(step, max(end, start - slope * (step - 5.5))) for step in steps]


# The paper's ablations with effects built in: ablation -> (switch changes, test top-1 shift in points per seed,
# gap shift in points, steps factor, size). Every seed moves all rows alike (shared noise, as seeds do).
ABLATIONS = {
    "baseline": ({}, [0.0] * 5, 0.0, 1.0, (1000, 5000)),
    "lrn_off": ({"lrn": "off"}, [1.4, 1.6, 1.5, 1.3, 1.5], 0.0, 1.0, (1000, 5000)),  # +1.46: as claimed (1.4)
    "pooling_plain": ({"pooling": "plain"}, [0.02, -0.03, 0.01, 0.0, -0.01], 0.0, 1.0, (1000, 5000)),  # no effect
    "split_half": ({"split": "half"}, [-0.9, -1.1, -1.0, -0.8, -1.2], 0.0, 1.0, (800, 3000)),  # better: contradicts
    "depth_4": ({"depth": "4"}, [3.0, -2.0, 2.5, -1.5, 0.5], 0.0, 1.0, (900, 4000)),  # noisy: undecided
    "dropout_off": ({"dropout": "off"}, [0.5] * 5, 4.0, 0.5, (1000, 5000)),  # overfits, learns in half the steps
    "activation_tanh": ({"activation": "tanh"}, [0.0] * 5, 0.0, 3.0, (1000, 5000)),  # 3x the steps (paper: 6x)
}


def ablation_sweep(sweep: Path, seeds: int = 5, **replaced) -> Path:
    """The paper's ablations by hand (ABLATIONS, entries replaced by `replaced`), `seeds` seeds each; every run
    records both test views (the ten crops 0.8 points better, with a little noise), one look (a fixed seed count)."""
    job = 0
    for ablation, (changes, shifts, gap, factor, size) in (ABLATIONS | replaced).items():
        for seed in range(seeds):
            noise = 0.01 * seed  # shared by every row of this seed
            test = 0.20 + noise + shifts[seed] / 100
            val = 0.19 + noise + shifts[seed] / 100
            train_eval = val - 0.02 - gap / 100
            curve = curve_reaching(round(100 * factor * (1 + 0.05 * seed)))
            views = (test, test - 0.008 - 0.0005 * (seed % 2))
            write_run(sweep, job, seed, val=(val, 0.05), test=(test, 0.05), train_eval=train_eval, curve=curve,
                      views=views, size=size, ablation=ablation, **changes)  # fmt: skip
            job += 1
    return sweep


def write_study(sweep: Path, values, storage="optuna.journal"):
    """A journal study with one trial per value (None: a failed trial), and a run dir per trial."""
    storage_path = sweep / storage
    sweep.mkdir(parents=True, exist_ok=True)
    study = optuna.create_study(
        study_name="lr_search", storage=JournalStorage(JournalFileBackend(str(storage_path))), direction="minimize"
    )
    space = {"optimizer.lr": optuna.distributions.FloatDistribution(1e-3, 1.0, log=True)}
    for number, value in enumerate(values):
        trial = study.ask(space)
        if value is None:
            trial.set_user_attr("error", "FloatingPointError: diverged")
            study.tell(trial, state=optuna.trial.TrialState.FAIL)
        else:
            study.tell(trial, value)
        lr = trial.params["optimizer.lr"]
        write_run(sweep, number, val=(value or 0.9, 0.1), status="finished" if value else "failed", optimizer__lr=lr)
    spec = {"study_name": "lr_search", "storage": storage, "direction": "minimize", "objective": "val/top1_err"}
    (sweep / "optuna_study.yaml").write_text(yaml.safe_dump(spec | {"n_trials": len(values), "params": {}}))
    return study
