"""An Optuna sweep's study in the report: its trials (trials.md) and the parameters' importances."""

from __future__ import annotations

import warnings
from pathlib import Path

from alexlab import record
from alexlab.report.model import StudySummary, shown


def read_study(sweep_dir: Path) -> StudySummary:
    import optuna

    from alexlab.optuna_storage import open_storage

    spec = record.read_mapping(sweep_dir / "optuna_study.yaml")
    storage = str(spec.get("storage", ""))
    if "://" not in storage and not Path(storage).expanduser().is_absolute() and (sweep_dir / storage).exists():
        storage = str(sweep_dir / storage)
    summary = StudySummary(str(spec.get("study_name")), storage, str(spec.get("objective") or "value"))
    if "://" not in storage and not Path(storage).expanduser().exists():
        summary.error = f"its storage {storage} does not exist"
        return summary
    try:
        summary.study = optuna.load_study(study_name=summary.name, storage=open_storage(storage))
    except Exception as exc:  # the report on the runs is still worth writing
        summary.error = f"{type(exc).__name__}: {exc}"
        return summary
    summary.trials = summary.study.get_trials(deepcopy=False)
    complete = [t for t in summary.trials if t.state == optuna.trial.TrialState.COMPLETE]
    if complete:
        summary.best = summary.study.best_trial
    varying = {name for t in complete for name in t.params if len({str(u.params.get(name)) for u in complete}) > 1}
    if len(complete) < 2 or not varying:
        summary.importance_skipped = f"{len(complete)} completed trial(s), {len(varying)} varying parameter(s)"
    return summary


def shown_params(trial) -> str:
    return ", ".join(f"{name}={shown(value)}" for name, value in trial.params.items())


def study_lines(study: StudySummary, where: str = "; see trials.md") -> list[str]:
    lines = [f"Study `{study.name}`: {len(study.trials)} trials, storage {study.storage}{where}."]
    if study.error:
        return [*lines, f"The study could not be loaded: {study.error}"]
    if study.best is None:
        lines.append("Best trial: none completed yet.")
    else:
        best = study.best
        lines.append(f"Best trial: number {best.number}, {study.objective} {best.value:.6g}, {shown_params(best)}.")
    if study.importance_skipped:
        lines.append(f"param_importances.png skipped: {study.importance_skipped} (needs 2 and 1).")
    return lines


def write_study(study: StudySummary, out: Path) -> list[Path]:
    written = [out / "trials.md"]
    if study.study is not None and not study.importance_skipped:
        import matplotlib.pyplot as plt
        import optuna

        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                axes = optuna.visualization.matplotlib.plot_param_importances(study.study)
            if axes.get_legend() is not None:  # Optuna puts it over the longest bar: beside the plot instead
                axes.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize="small")
            axes.figure.savefig(out / "param_importances.png", dpi=120, bbox_inches="tight")
            plt.close(axes.figure)
            written.append(out / "param_importances.png")
        except Exception as exc:  # e.g. an importance evaluator that cannot fit these trials
            study.importance_skipped = f"{type(exc).__name__}: {exc}"
    lines = [f"# Trials of `{study.name}`", "", *study_lines(study, where=""), ""]
    lines += ["| number | state | value | params | error | duration s |", "|---|---|---|---|---|---|"]
    for trial in study.trials:
        duration = "" if trial.duration is None else f"{trial.duration.total_seconds():.1f}"
        value = "" if trial.value is None else f"{trial.value:.6g}"
        error = str(trial.user_attrs.get("error") or "").replace("|", "\\|").replace("\n", " ")
        params = shown_params(trial)
        lines.append(f"| {trial.number} | {trial.state.name} | {value} | {params} | {error} | {duration} |")
    (out / "trials.md").write_text("\n".join(lines) + "\n")
    return written
