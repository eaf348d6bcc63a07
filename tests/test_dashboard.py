"""`alexlab dashboard`: pages from hand-built sweeps (W&B runs beside metrics.json), the W&B report object, and a real
smoke sweep's page rendered by headless Chromium."""

import base64
import re
import shutil
import statistics
import subprocess
import sys

import matplotlib.image
import optuna
import pytest
from helpers.commands import read_metrics, run_dirs
from helpers.sweeps import PNG_MAGIC, ablation_sweep, write_run, write_study

from alexlab.dashboard import (
    METRICS_SOURCE,
    WANDB_SOURCE,
    build_wandb_report,
    collect_runs,
    curves_by_value,
    main,
    wants_online,
    write_offline_page,
)
from alexlab.report import build_report
from alexlab.wandb_runs import WandbRun

CHROMIUM = next(filter(None, map(shutil.which, ("chromium", "chromium-browser", "google-chrome"))), None)


def wandb_run(sweep, job, val, test, status="finished"):
    """Job `job`'s W&B run as alexlab.wandb_runs reads it: val top-1 per epoch, then the test row; summary as W&B keeps
    it (the minimum of val/*, train.py's status)."""
    history = [{"epoch": e, "val/top1_err": v, "_step": e} for e, v in enumerate(val)]
    history += [] if test is None else [{"epoch": len(val), "test/top1_err": test}]
    summary = {"val/top1_err": {"min": min(val)}, "status": status} | ({} if test is None else {"test/top1_err": test})
    path = sweep / str(job) / "wandb" / f"offline-run-20260101_000000-run{job}" / f"run-run{job}.wandb"
    state = "finished" if status == "finished" else "failed"
    return WandbRun(path=path, id=f"run{job}", group=sweep.name, history=history, summary=summary, state=state)


@pytest.fixture
def grid(tmp_path):
    """dropout x lrn: jobs 0-2 and 4 have W&B runs whose numbers differ from their metrics.json; job 3 has none."""
    sweep = tmp_path / "grid_sweep"
    write_run(sweep, 0, seed=0, dropout="on", lrn="on")
    write_run(sweep, 1, seed=1, dropout="on", lrn="on")
    write_run(sweep, 2, seed=0, dropout="off", lrn="on")
    write_run(sweep, 3, seed=0, val=(0.3, 0.1), test=(0.2, 0.1), dropout="off", lrn="off")  # history 50, 40, 30 %
    write_run(sweep, 4, seed=0, status="failed", error="diverged", dropout="on", lrn="off")
    wandb_runs = [
        wandb_run(sweep, 0, [0.5, 0.4], 0.40),
        wandb_run(sweep, 1, [0.7, 0.6], 0.50),
        wandb_run(sweep, 2, [0.9, 0.8], 0.60),
        wandb_run(sweep, 4, [0.1], None, status="failed"),
    ]
    return sweep, wandb_runs


def panels_of(page: str) -> dict[str, str]:
    """data-panel -> the panel's opening tag."""
    return {m.group(1): m.group(0) for m in re.finditer(r'<section class="panel" data-panel="([^"]+)"[^>]*>', page)}


def test_curves_and_bars_come_from_wandb_runs_and_metrics_json_for_the_rest(grid):
    sweep, wandb_runs = grid
    report = build_report(sweep)
    runs = collect_runs(report, wandb_runs)
    assert [(r.job, r.source, r.state) for r in runs] == [
        ("0", WANDB_SOURCE, "finished"),
        ("1", WANDB_SOURCE, "finished"),
        ("2", WANDB_SOURCE, "finished"),
        ("3", METRICS_SOURCE, "finished"),
        ("4", WANDB_SOURCE, "failed"),
    ]
    curves = curves_by_value(runs, "dropout")  # the failed run (job 4, 10% at epoch 0) is not averaged in
    assert curves["on"][0] == [0, 1] and curves["on"][1] == pytest.approx([60, 50]) and curves["on"][2] == 2
    assert curves["off"][0] == [0, 1, 2] and curves["off"][1] == pytest.approx([70, 60, 30]) and curves["off"][2] == 2

    page = write_offline_page(report, runs).read_text()
    panels = panels_of(page)
    # the verdicts on the paper's dropout and LRN claims, then one panel per varying switch; no Optuna
    assert list(panels) == ["verdicts", "curves-dropout", "curves-lrn", "test-error"]
    assert 'data-source="metrics.json+wandb"' in panels["curves-dropout"] and 'data-lines="2"' in panels["curves-lrn"]
    assert 'data-bars="3"' in panels["test-error"] and 'data-configurations="4"' in panels["test-error"]
    cells = re.findall(r"<tr><td>([^<]*)</td><td>(\d+)</td><td>([^<]*)</td></tr>", page)
    assert cells == [  # test top-1 from W&B for jobs 0-2 (their metrics.json says 32%), from metrics.json for job 3
        ("dropout=on, lrn=on (baseline)", "2", "45.00 ± 7.07"),
        ("dropout=off, lrn=on", "1", "60.00"),
        ("dropout=off, lrn=off", "1", "20.00"),
        ("dropout=on, lrn=off", "0", "no finished run"),
    ]
    assert "5 runs: 4 finished, 1 failed" in page and "job 4: failed" in page
    assert f"wandb sync {sweep}/*/wandb/offline-run-*" in page


def test_page_is_self_contained(grid):
    sweep, wandb_runs = grid
    report = build_report(sweep)
    page = write_offline_page(report, collect_runs(report, wandb_runs)).read_text()
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:|//)""", page, re.IGNORECASE)
    assert "<link" not in page and "<script src" not in page and "@import" not in page
    images = re.findall(r'<img alt="[^"]*" src="([^"]+)"', page)
    assert len(images) == page.count('class="panel"') == 4
    for src in images:
        assert src.startswith("data:image/png;base64,")
        assert base64.b64decode(src.removeprefix("data:image/png;base64,"))[:8] == PNG_MAGIC


def test_main_writes_the_page_from_metrics_json_without_wandb_files(grid, monkeypatch, capsys):
    sweep, _ = grid
    monkeypatch.setenv("WANDB_MODE", "offline")
    assert main([str(sweep)]) == 0
    assert capsys.readouterr().out.strip() == str(sweep / "dashboard" / "index.html")
    panels = panels_of((sweep / "dashboard" / "index.html").read_text())
    assert 'data-source="metrics.json"' in panels["test-error"]
    assert 'data-bars="3"' in panels["test-error"]  # job 4 failed


def test_optuna_sweep_gets_parallel_coordinates(tmp_path):
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    sweep = tmp_path / "search"
    write_study(sweep, [0.4, 0.25, None, 0.3])
    assert main([str(sweep), "--offline"]) == 0
    panels = panels_of((sweep / "dashboard" / "index.html").read_text())
    assert list(panels) == ["curves-optimizer.lr", "test-error", "optuna-parallel-coordinates"]
    assert 'data-source="optuna"' in panels["optuna-parallel-coordinates"]


def test_a_column_with_many_values_gets_no_curve_panel(tmp_path):
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    sweep = tmp_path / "search"
    write_study(sweep, [0.5 - 0.01 * i for i in range(11)])  # 11 learning rates: 11 lines would be unreadable
    assert main([str(sweep), "--offline"]) == 0
    page = (sweep / "dashboard" / "index.html").read_text()
    assert list(panels_of(page)) == ["test-error", "optuna-parallel-coordinates"]
    assert "Too many values to group curves by: optimizer.lr." in page


def test_wandb_report_has_the_views_filtered_to_the_sweeps_group(grid):
    wr = pytest.importorskip("wandb_workspaces.reports.v2", reason="the W&B report needs wandb-workspaces")
    from wandb_workspaces import expr

    sweep, wandb_runs = grid
    report = build_report(sweep)
    built = build_wandb_report(report, collect_runs(report, wandb_runs), wandb_runs, entity="someone")
    assert (built.project, built.entity) == ("alexlab", "someone")
    header, verdicts, curves, bars = built.blocks
    assert "5 runs: 4 finished, 1 failed" in header.text and "wandb sync" in header.text
    assert "dropout on->off" in verdicts.text and "undecided" in verdicts.text  # one seed a side: no interval
    assert [(p.x, p.y, p.groupby) for p in curves.panels] == [
        ("epoch", ["val/top1_err"], wr.Config("dropout")),
        ("epoch", ["val/top1_err"], wr.Config("lrn")),
    ]
    (bar,) = bars.panels
    assert isinstance(bar, wr.BarPlot) and bar.metrics == ["test/top1_err"]
    assert bars.runsets[0].groupby == ["config.dropout", "config.lrn"]  # one bar per configuration
    for grid_block in (curves, bars):
        (runset,) = grid_block.runsets
        assert (runset.entity, runset.project) == ("someone", "alexlab")
        filters = expr.expr_to_filters(runset.filters)  # as the runset sends them on .save()
        assert filters.op == "AND"  # the sweep's finished runs, as the offline page averages
        terms = [(f.key.section, f.key.name, f.op, f.value) for f in filters.filters]
        assert terms == [("run", "group", "=", "grid_sweep"), ("run", "state", "=", "finished")]


def test_wandb_report_of_an_optuna_sweep_has_parallel_coordinates(tmp_path):
    wr = pytest.importorskip("wandb_workspaces.reports.v2", reason="the W&B report needs wandb-workspaces")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    sweep = tmp_path / "search"
    write_study(sweep, [0.4, 0.25])
    wandb_runs = [wandb_run(sweep, 0, [0.5, 0.4], 0.4), wandb_run(sweep, 1, [0.3, 0.25], 0.3)]
    report = build_report(sweep)
    built = build_wandb_report(report, collect_runs(report, wandb_runs), wandb_runs, entity="someone")
    (plot,) = built.blocks[-1].panels
    assert isinstance(plot, wr.ParallelCoordinatesPlot)  # optimizer.lr is a path in the config W&B keeps
    assert [c.metric for c in plot.columns] == [wr.Config("config.optimizer.lr"), wr.SummaryMetric("val/top1_err.min")]


def test_online_without_wandb_workspaces_says_how_to_install_it(grid, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "wandb_workspaces", None)
    assert main([str(grid[0]), "--online"]) == 2
    assert capsys.readouterr().err.strip().endswith("pip install wandb-workspaces")


def test_online_without_a_login_is_an_error(grid, tmp_path, monkeypatch):
    pytest.importorskip("wandb_workspaces", reason="the W&B report needs wandb-workspaces")
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.netrc
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    with pytest.raises(ValueError, match="--online needs a W&B login"):
        main([str(grid[0]), "--online"])


def test_online_when_logged_in_unless_offline(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.netrc
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    assert not wants_online(online=False, offline=False)
    assert wants_online(online=True, offline=False)
    monkeypatch.setenv("WANDB_API_KEY", "x" * 40)
    assert wants_online(online=False, offline=False)
    assert not wants_online(online=False, offline=True)
    monkeypatch.setenv("WANDB_MODE", "offline")
    assert not wants_online(online=False, offline=False)


def test_missing_or_empty_dir_is_an_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="sweep directory not found"):
        main([str(tmp_path / "nowhere")])
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="holds no runs"):
        main([str(tmp_path / "empty")])


def chromium(*args: str, profile) -> subprocess.CompletedProcess:
    command = [CHROMIUM, "--headless=new", "--no-sandbox", "--disable-gpu", f"--user-data-dir={profile}", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=120, check=True)


@pytest.mark.skipif(CHROMIUM is None, reason="no chromium binary (apt-get install chromium)")
def test_real_sweep_page_renders_in_headless_chromium(seed_grid, tmp_path, monkeypatch, capsys):
    sweep = tmp_path / "smoke_sweep"
    shutil.copytree(seed_grid, sweep)
    monkeypatch.setenv("WANDB_MODE", "offline")
    assert main([str(sweep)]) == 0
    page_path = sweep / "dashboard" / "index.html"
    page = page_path.read_text()
    panels = panels_of(page)
    assert list(panels) == ["verdicts", "curves-dropout", "test-error"]  # the dropout claim decided first
    # the curves and bars are read from the W&B offline run files
    assert all('data-source="wandb"' in panels[name] for name in ("curves-dropout", "test-error"))
    recorded: dict[str, list[float]] = {}  # the W&B test errors are the ones metrics.json recorded
    for run_dir in run_dirs(sweep):
        metrics = read_metrics(run_dir)
        recorded.setdefault(metrics["switches"]["dropout"], []).append(100 * metrics["final"]["test/top1_err"])
    for dropout, errors in recorded.items():
        cell = f"{statistics.fmean(errors):.2f} ± {statistics.stdev(errors):.2f}"
        assert re.search(rf"<td>dropout={dropout}( \(baseline\))?</td><td>2</td><td>{cell}</td>", page)

    wide = "--window-size=1400,1000"
    dom = chromium("--virtual-time-budget=5000", wide, "--dump-dom", page_path.as_uri(), profile=tmp_path / "p1").stdout
    rendered = re.findall(r'<section class="panel" data-panel="([^"]+)"[^>]*data-rendered="(\w+)"', dom)
    assert rendered == [("verdicts", "true"), ("curves-dropout", "true"), ("test-error", "true")]
    tops = [int(top) for top in re.findall(r'<section class="panel"[^>]*data-top="(\d+)"', dom)]
    assert len(tops) == 3 and len(set(tops)) < 3  # side by side on a wide screen, not one narrow column

    broken = tmp_path / "broken.html"  # the check can fail: an image that does not decode stays unrendered
    broken.write_text(page.replace("data:image/png;base64,", "data:image/png;base64,AAAA", 1))
    dom = chromium("--virtual-time-budget=5000", "--dump-dom", broken.as_uri(), profile=tmp_path / "p2").stdout
    assert re.findall(r'data-panel="([^"]+)"[^>]*data-rendered="(\w+)"', dom) == [
        ("verdicts", "false"),
        ("curves-dropout", "true"),
        ("test-error", "true"),
    ]

    screenshot = tmp_path / "dashboard.png"
    size, shot = "--window-size=1400,1000", f"--screenshot={screenshot}"
    chromium("--virtual-time-budget=5000", size, shot, page_path.as_uri(), profile=tmp_path / "p3")
    pixels = matplotlib.image.imread(screenshot)
    assert pixels.shape[:2] == (1000, 1400) and pixels.std() > 0.05  # not a blank page


def test_the_verdicts_lead_the_page_and_the_wandb_report(tmp_path):
    sweep = ablation_sweep(tmp_path / "sweep")
    report = build_report(sweep)
    runs = collect_runs(report, [])
    page = write_offline_page(report, runs).read_text()
    panels = panels_of(page)
    assert list(panels)[0] == "verdicts"
    assert 'data-claims="9"' in panels["verdicts"] and 'data-agrees="5"' in panels["verdicts"]
    assert 'data-agrees-smaller="1"' in panels["verdicts"]
    assert "<td>contradicts</td>" in page and "without dropout, substantial overfitting: a larger gap" in page
    blocks = build_wandb_report(report, runs, [], entity="someone").blocks
    assert any("verdicts" in getattr(block, "text", "") and "contradicts" in block.text for block in blocks)
