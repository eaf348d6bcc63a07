"""`alexlab bench`: the six sections (seven with bench.load) are measured, consistent with each other, and
written to bench.json.

Never asserts a speed: only that figures are positive, finite and agree with each other and with `alexlab info`."""

import json
import math
import statistics
import subprocess

import pytest
import torch
from hydra.utils import instantiate
from torchvision.io import write_jpeg

from alexlab import bench
from alexlab.bench import common, run, table
from alexlab.bench import data as data_bench
from alexlab.bench import layers as layer_bench
from alexlab.bench import training as training_bench
from alexlab.errors import BadValue
from alexlab.info import layer_table
from alexlab.model import cpu_kernels

TINY = [
    "data.batch_size=8",
    "data.num_workers=0",
    "bench.steps=2",
    "bench.warmup=1",
    "bench.reps=3",
    "bench.loader_batches=2",
    "bench.loader_warmup=1",
    "+bench.sweep_jobs=1",
    "bench.matmul_size=128",
]


@pytest.fixture(scope="module")
def results(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("bench")
    assert bench.main([*TINY, f"paths.output_root={root}"]) == 0
    (path,) = (root / "bench").glob("*/bench.json")
    return json.loads(path.read_text()) | {"_path": str(path)}


def all_stats(node, where=""):
    """Every {median, min, max, values} node of the results."""
    if isinstance(node, dict):
        if {"median", "min", "max", "values"} <= node.keys():
            yield where, node
        for key, value in node.items():
            yield from all_stats(value, f"{where}.{key}")


def test_bench_json_has_the_six_sections(results):
    for section in ("training", "layers", "data", "arithmetic", "sweep", "memory"):
        assert section in results, section
    assert results["knobs"]["steps"] == 2 and results["knobs"]["sweep_jobs"] == 1
    assert results["batch_shape"] == [8, 3, 32, 32]
    assert results["_path"].endswith("bench.json") and "/bench/" in results["_path"]


def test_every_timing_is_a_median_within_its_range(results):
    found = dict(all_stats(results))
    assert len(found) >= 7
    for where, s in found.items():
        assert len(s["values"]) >= 1, where
        assert s["min"] <= s["median"] <= s["max"], where
        assert all(math.isfinite(v) for v in s["values"]), where
    assert len(results["training"]["trainer"]["images_per_s"]["values"]) == 3


def test_ratios_are_positive_and_finite(results):
    t, d, a = results["training"], results["data"], results["arithmetic"]
    for value in (t["ratio_trainer_over_plain"], d["ratio_loader_over_model"], a["share_of_peak"]["median"]):
        assert math.isfinite(value) and value > 0
    # paired windows: each Trainer window's rate over the plain window that followed it; the ratio is their median
    pairs = zip(t["trainer"]["images_per_s"]["values"], t["plain"]["images_per_s"]["values"], strict=True)
    assert t["paired_ratios"]["values"] == pytest.approx([trainer / plain for trainer, plain in pairs])
    assert t["ratio_trainer_over_plain"] == pytest.approx(statistics.median(t["paired_ratios"]["values"]))
    assert len(t["paired_ratios"]["values"]) == results["knobs"]["reps"]
    assert d["model_images_per_s"] == t["trainer"]["images_per_s"]["median"]
    for s in (t["trainer"]["images_per_s"], t["plain"]["images_per_s"], d["loader_images_per_s"]):
        assert s["min"] > 0


def test_the_layers_section_pairs_lrn_against_no_lrn_and_stock_pooling_against_ours(results):
    layers = results["layers"]
    assert layers["lrn"] == "paper"  # the default config's LRN
    steps = layers["step_s"]
    # the LRN's tensor passes beside its fused kernel where the kernel runs (a CPU with a C compiler: this one)
    assert layers["lrn_path"] == "fused kernel"
    assert set(steps) == {"lrn", "no_lrn", "stock_pooling", "lrn_tensor_passes"}
    pairs = [("lrn", "no_lrn", "lrn_over_no_lrn"), ("stock_pooling", "lrn", "stock_pooling_over_ours")]
    for a, b, key in [*pairs, ("lrn_tensor_passes", "lrn", "tensor_passes_over_kernel")]:
        assert len(steps[a]["values"]) == results["knobs"]["reps"]  # one window of each copy per round
        paired = [x / y for x, y in zip(steps[a]["values"], steps[b]["values"], strict=True)]
        assert layers[key]["values"] == pytest.approx(paired)
        assert layers[key]["median"] == pytest.approx(statistics.median(paired)) and layers[key]["median"] > 0


def test_the_layers_section_measures_lrn_even_when_the_config_turns_it_off():
    cfg = run.compose_config(["lrn=off", "data.batch_size=4"])
    knobs = {"steps": 1, "warmup": 1, "reps": 2}
    layers = layer_bench.bench_layers(cfg, torch.device("cpu"), knobs)
    assert layers["lrn"] == "paper" and len(layers["lrn_over_no_lrn"]["values"]) == 2


def test_the_layers_section_without_the_cpu_kernels_measures_the_tensor_passes_alone(monkeypatch):
    """Where the kernel cannot build, the LRN's step is the tensor passes' and no fourth loop runs."""
    monkeypatch.setattr(cpu_kernels, "library", lambda: None)
    cfg = run.compose_config(["data.batch_size=4"])
    layers = layer_bench.bench_layers(cfg, torch.device("cpu"), {"steps": 1, "warmup": 1, "reps": 2})
    assert layers["lrn_path"] == "tensor passes" and layers["tensor_passes_over_kernel"] is None
    assert set(layers["step_s"]) == {"lrn", "no_lrn", "stock_pooling"}


def test_flops_follow_the_macs_of_alexlab_info(results):
    cfg = run.compose_config(["data.batch_size=8"])
    macs = sum(row.macs for row in layer_table(instantiate(cfg.model), cfg.model.in_channels, cfg.model.input_size))
    a = results["arithmetic"]
    assert common.TRAIN_FLOPS_PER_MAC == 6
    assert a["macs_per_image"] == macs
    assert a["flops_per_image"] == macs * common.TRAIN_FLOPS_PER_MAC
    # paired rounds: each round's step FLOP/s over the matmul's that followed it; the share is their median
    rounds = results["knobs"]["reps"]
    achieved, peak = a["achieved_flops_per_s"]["values"], a["peak_flops_per_s"]["values"]
    assert len(achieved) == len(peak) == len(a["share_of_peak"]["values"]) == rounds
    assert a["share_of_peak"]["values"] == pytest.approx([x / p for x, p in zip(achieved, peak, strict=True)])
    assert a["share_of_peak"]["median"] == pytest.approx(statistics.median(a["share_of_peak"]["values"]))
    assert all(x > 0 for x in achieved) and all(p > 0 for p in peak)  # (two timings are never set against each other)


def test_sweep_and_memory(results):
    s, m = results["sweep"], results["memory"]
    assert s["jobs"] == 1
    assert s["per_job_s"]["median"] == pytest.approx(s["wall_s"]["median"] - s["startup_s"]["median"])
    assert s["per_job_s"]["median"] > 0
    assert m["host_peak_rss_bytes"] > 0 and m["children_peak_rss_bytes"] > 0 and m["sweep_peak_rss_bytes"] > 0
    assert m["gpu_max_memory_allocated_bytes"] is None or m["gpu_max_memory_allocated_bytes"] > 0


def test_table_rows_cover_every_section(results):
    sections = {section for section, _, _ in table.table_rows(results)}
    assert sections == {"training", "layers", "data", "arithmetic", "sweep", "memory"}


def test_the_shared_cpu_section_is_left_out_without_a_load(results):
    assert results["knobs"]["load"] == 0 and results["shared_cpu"] is None


def test_the_shared_cpu_section_measures_the_step_alone_and_beside_busy_processes(monkeypatch):
    """With bench.load=2 two busy processes run beside the second set of windows, and are gone afterwards."""
    started = []

    class Recorded(subprocess.Popen):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            started.append(self)

    monkeypatch.setattr(layer_bench.subprocess, "Popen", Recorded)
    cfg = run.compose_config(["data.batch_size=8"])
    shared = layer_bench.bench_shared_cpu(cfg, torch.device("cpu"), {"steps": 2, "warmup": 1, "reps": 3, "load": 2})
    assert len(started) == 2 and all(process.returncode is not None for process in started)  # killed and reaped
    assert shared["load"] == 2 and shared["threads"] == torch.get_num_threads() and shared["cores"] >= 1
    for phase in ("alone", "loaded"):
        for measure in ("wall_s_per_step", "cpu_s_per_step"):
            values = shared[phase][measure]["values"]
            assert len(values) == 3 and all(v > 0 for v in values)
    alone, loaded = shared["alone"], shared["loaded"]
    assert shared["wall_loaded_over_alone"] == pytest.approx(
        loaded["wall_s_per_step"]["median"] / alone["wall_s_per_step"]["median"]
    )
    assert shared["cpu_loaded_over_alone"] == pytest.approx(
        loaded["cpu_s_per_step"]["median"] / alone["cpu_s_per_step"]["median"]
    )
    # T threads and L busy processes on C cores: min(T, C) / (T * C / (T + L)) when they outnumber the cores
    threads, cores = shared["threads"], shared["cores"]
    expected = min(threads, cores) / min(min(threads, cores), threads * cores / (threads + 2))
    assert shared["fair_slowdown"] == pytest.approx(expected) and shared["fair_slowdown"] >= 1
    rows = table.shared_cpu_rows(shared)
    assert [section for section, _, _ in rows] == ["shared CPU"] * 4 and "2 busy processes" in rows[0][2]


def test_bad_knobs_are_one_line_value_errors():
    with pytest.raises(ValueError, match="not a bench knob"):
        run.split_knobs(["bench.nonsense=3"])
    with pytest.raises(ValueError, match="whole number"):
        run.resolve_knobs({"steps": "many"}, heavy=False)
    with pytest.raises(ValueError, match=">= 1"):
        run.resolve_knobs({"reps": "0"}, heavy=False)
    overrides, knobs = run.split_knobs(["model=small", "+bench.steps=4", "bench.reps=2"])
    assert overrides == ["model=small"] and knobs == {"steps": "4", "reps": "2"}


def test_paper_model_gets_the_heavy_defaults():
    assert run.resolve_knobs({}, heavy=True)["steps"] == run.HEAVY_DEFAULTS["steps"]
    cfg = run.compose_config(["model=paper"])
    macs = sum(row.macs for row in layer_table(instantiate(cfg.model), cfg.model.in_channels, cfg.model.input_size))
    assert macs * cfg.data.batch_size > common.HEAVY_STEP_MACS


def test_precision_and_speed_switches_reach_both_loops(tmp_path):
    """bf16-mixed and channels_last reach the Trainer and the plain loop alike; fp16 (needs a GradScaler) is refused."""
    cfg = run.compose_config(
        ["data.batch_size=4", "trainer.precision=bf16-mixed", "channels_last=true", f"paths.output_root={tmp_path}"]
    )
    k = run.resolve_knobs({"steps": "1", "warmup": "1", "reps": "2"}, heavy=False)
    training = training_bench.bench_training(cfg, common.pick_device(cfg), k)
    assert training["precision"] == "bf16-mixed" and training["channels_last"] is True
    assert len(training["plain"]["images_per_s"]["values"]) == 2
    with pytest.raises(ValueError, match="32-true or bf16-mixed"):
        run.run_bench(run.compose_config(["trainer.precision=16-mixed"]), {}, [])


@pytest.mark.parametrize("decode", ["loader", "device"])
def test_data_section_decodes_where_the_config_says(tmp_path, decode):
    """With data.decode=device the loader hands over file bytes; bench counts the images only once they are decoded
    and augmented by the data module's transfer hook, as the Trainer receives them."""
    for label, name in enumerate(("a", "b")):
        (tmp_path / name).mkdir()
        for i in range(6):
            image = torch.full((3, 40 + i, 36), 40 * label + i, dtype=torch.uint8)
            write_jpeg(image, str(tmp_path / name / f"{i}.jpg"))
    cfg = run.compose_config(
        [
            "data=imagefolder",
            f"data.source.root={tmp_path}",
            "data.num_classes=2",
            f"data.decode={decode}",
            "data.num_workers=0",
            "data.batch_size=4",
            "data.val_size=0",
            "model.input_size=32",
            f"paths.output_root={tmp_path}",
        ]
    )
    k = run.resolve_knobs({"reps": "2", "loader_batches": "3", "loader_warmup": "1"}, heavy=False)
    data = data_bench.bench_data(cfg, torch.device("cpu"), k, consumed=100.0)
    assert data["decode"] == decode
    assert len(data["loader_images_per_s"]["values"]) == 2 and data["loader_images_per_s"]["min"] > 0
    assert data["ratio_loader_over_model"] == data["loader_images_per_s"]["median"] / 100.0


def test_a_paper_sized_network_is_set_against_the_published_speeds(results):
    assert not any("Titan X" in name for _, name, _ in table.table_rows(results))  # 32 px: not comparable
    paper_sized = {**results, "batch_shape": [128, 3, 224, 224]}
    rows = {name: value for _, name, value in table.table_rows(paper_sized)}
    trainer = results["training"]["trainer"]["images_per_s"]["median"]
    for name, rate in common.PUBLISHED_IMAGES_PER_S.items():
        assert rows[f"Trainer / {name}"].startswith(f"{trainer / rate:.3f} ")


def test_the_study_section_sums_the_runs_phases(tmp_path):
    """bench.study=DIR: the phases of the finished runs (an unfinished one and a damaged record left out), their
    shares of the summed wall time, and the train phase per step against the bench's step."""
    from alexlab import record
    from alexlab.bench.study import study_cost, study_rows

    phases = {"setup": 1.0, "train": 6.0, "validate": 2.0, "test": 0.5}
    for job, status in enumerate([record.Status.FINISHED, record.Status.FINISHED, record.Status.INTERRUPTED]):
        ended = record.Record(status=status, overrides=[f"seed={job}"], phases=phases, wall_time_s=10.0)
        ended.curve = [{"step": 10, "train/top1_err": 0.5}, {"step": 60, "train/top1_err": 0.2}]
        (tmp_path / str(job)).mkdir()
        record.write(tmp_path / str(job), ended)
    (tmp_path / "3").mkdir()
    (tmp_path / "3" / record.RECORD).write_text("[1")
    study = study_cost(tmp_path, step_s=0.05)
    assert study["runs"] == 2 and study["wall_s"] == 20.0 and study["steps"] == 120
    assert study["phases_s"] == {"setup": 2.0, "train": 12.0, "validate": 4.0, "test": 1.0, "other": 1.0}
    assert math.isclose(sum(study["shares"].values()), 1.0)
    assert math.isclose(study["train_step_over_bench"], 12.0 / 120 / 0.05)  # 100 ms a step against 50 ms
    assert ("study", "  validate", "20.0%  (2.0 s a run)") in study_rows(study)


@pytest.mark.parametrize("folder", ["/no/such", ""])
def test_bench_study_refuses_a_folder_that_is_not_there(tmp_path, folder):
    with pytest.raises(BadValue, match=f"bench.study={folder}: not a directory"):
        run.main(["experiment=smoke", f"paths.output_root={tmp_path}", f"bench.study={folder}"])
    assert not (tmp_path / "bench").exists()


def test_the_bench_says_which_cpu_it_measured(results):
    from alexlab.cpu import VECTOR_FLAGS, cpu_line

    cpu = results["cpu"]
    assert cpu["model"] and cpu["cores"] >= 1 and set(cpu["flags"]) <= set(VECTOR_FLAGS)
    assert cpu["torch_kernels"]  # torch is imported by then: the kernels it picks (AVX2, AVX512, ...)
    assert results["device_name"] == cpu_line(cpu)
