"""`alexlab [train|test|info] [overrides]`: a thin dispatcher in front of Hydra, which owns argv.

Any first word that is not a subcommand (an override, -m, a Hydra flag) means `train`, so
`alexlab -m dropout=on,off depth=5,3` is a training grid. Errors a user can cause end in one line and exit 2.
"""

from __future__ import annotations

import contextlib
import difflib
import io
import os
import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf

from alexlab.config_groups import CONFIG_PACKAGE
from alexlab.errors import EXIT_INTERRUPTED, BadValue, UserError
from alexlab.messages import COMMAND_HELP, COMMANDS, command_help, usage, user_error
from alexlab.overrides import (
    PRINTS_CONFIG,
    asks_to_resume,
    check_overrides,
    check_run_dir,
    check_sweep_dir,
    check_writable,
    flags_first,
    quote_numeric_options,
    resume_argv,
)
from alexlab.record import configs_subdir, job_log

# conf/config.yaml's hydra.output_subdir and job log file; registered where the task functions are, so that a
# launcher's worker process (joblib, submitit, SLURM), which imports them, has them too
OmegaConf.register_new_resolver("alexlab.configs_subdir", configs_subdir, replace=True)
OmegaConf.register_new_resolver("alexlab.job_log", job_log, replace=True)

# Lightning's DDP launcher restarts this program with argv[1:] minus our subcommand; the children read it here.
COMMAND_ENV = "ALEXLAB_COMMAND"


# The user's own HYDRA_FULL_ERROR=1 asks for tracebacks instead of our one-line errors.
SHOW_TRACEBACKS = bool(os.environ.get("HYDRA_FULL_ERROR"))


@hydra.main(version_base="1.3", config_path=f"pkg://{CONFIG_PACKAGE}", config_name="config")
def _train(cfg: DictConfig) -> float:
    return run_task("train", cfg)


@hydra.main(version_base="1.3", config_path=f"pkg://{CONFIG_PACKAGE}", config_name="config")
def _test(cfg: DictConfig) -> float:
    return run_task("test", cfg)


def run_task(name: str, cfg: DictConfig) -> float:
    """One job of alexlab.train, with its SIGTERM handler installed before the seconds of importing torch and
    Lightning (a signal then ends the job as interrupted, not silently), and its user errors in one line (inside
    the job, so that Hydra does not add its own "Error executing job" line)."""
    from alexlab.signals import Interrupted, job_signals

    try:
        with job_signals() as signals:
            from alexlab import train

            return exit_on_user_error(lambda: getattr(train, name)(cfg, signals))
    except Interrupted as exc:  # before the job began (its record is written once alexlab.train is imported)
        print(f"alexlab: interrupted ({exc}) before the run began; nothing was trained", file=sys.stderr)
        sys.exit(EXIT_INTERRUPTED)


def _info(overrides: list[str]) -> None:
    from hydra import compose, initialize_config_module
    from hydra.utils import instantiate

    from alexlab.info import layer_table, print_table

    check_overrides(overrides)  # the same checks as a run's (info composes the config the run would compose)
    with initialize_config_module(CONFIG_PACKAGE, version_base="1.3"):
        cfg = compose("config", overrides=overrides)
    note = ""
    if cfg.model.split == "two_gpu":  # the same layers, parameters and MACs, counted on one device
        cfg.model.split, note = "grouped", " (split=two_gpu counted as its one-device twin, split=grouped)"
    model = instantiate(cfg.model)
    rows = layer_table(model, cfg.model.in_channels, cfg.model.input_size)
    size = cfg.model.input_size
    print_table(rows, f"AlexNet, {cfg.model.in_channels}x{size}x{size} input, {cfg.model.num_classes} classes{note}")


def main(argv: list[str] | None = None) -> None:
    from alexlab.cpu import configure

    configure()  # before torch is imported: how threads wait and memory is reused (alexlab/cpu.py)
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] in (["-h"], ["--help"], ["help"]):
        print(usage())
        return
    command = "train"
    if argv and argv[0] in COMMANDS:
        command = argv.pop(0)
    elif os.environ.get("LOCAL_RANK") and os.environ.get(COMMAND_ENV):
        command = os.environ[COMMAND_ENV]
    else:
        exit_on_user_error(lambda: check_command(argv[:1]))
    if command in COMMAND_HELP and {"-h", "--help"} & set(argv):
        print(command_help(command))
        return
    os.environ[COMMAND_ENV] = command
    if command in ("train", "test", "sweep"):  # Hydra's flags anywhere; the sweep's name stays first
        head = argv[:1] if command == "sweep" else []
        argv = head + exit_on_user_error(lambda: flags_first(argv[len(head) :]))
    argv = quote_numeric_options(argv)
    if command == "train" and not {"-m", "--multirun"} & set(argv) and asks_to_resume(argv):
        argv = exit_on_user_error(lambda: resume_argv(argv))
    sys.argv = [sys.argv[0], *argv]

    os.environ["HYDRA_FULL_ERROR"] = "1"  # Hydra raises instead of printing its own report; we print one line
    if PRINTS_CONFIG & set(argv):  # Hydra prints the config instead of running: secrets masked, as in every file
        with masked_stdout():
            return dispatch(command, argv)
    dispatch(command, argv)


def check_command(first: list[str]) -> None:
    """A first word that is neither a command nor an override (key=value, ~key, a flag) is a mistyped command."""

    if not first or "=" in first[0] or first[0].startswith(("-", "~", "+")):
        return
    word = first[0]
    close = difflib.get_close_matches(word, COMMANDS, n=1, cutoff=0.6)
    hint = f"did you mean '{close[0]}'? " if close else ""
    raise BadValue(f"'{word}' is not a command: {hint}the commands: {', '.join(COMMANDS)} (alexlab --help)")


@contextlib.contextmanager
def masked_stdout():
    """What is printed inside goes to stdout line by line with its secrets masked (alexlab.masking)."""
    from alexlab.masking import mask_text

    buffer = io.StringIO()
    try:
        with contextlib.redirect_stdout(buffer):
            yield
    finally:
        sys.stdout.write(mask_text(buffer.getvalue()))
        sys.stdout.flush()


def dispatch(command: str, argv: list[str]) -> None:
    if command == "info":
        exit_on_user_error(lambda: _info(argv))
    elif command == "report":
        from alexlab.report import main as report

        sys.exit(exit_on_user_error(lambda: report(argv)))
    elif command == "dashboard":
        from alexlab.dashboard import main as dashboard

        sys.exit(exit_on_user_error(lambda: dashboard(argv)))
    elif command == "bench":
        from alexlab.bench import main as bench

        sys.exit(exit_on_user_error(lambda: bench(argv)))
    elif command == "sweep" or (command == "train" and ("-m" in argv or "--multirun" in argv)):
        from alexlab.sweep import raise_if_all_failed

        if command == "sweep":
            argv = exit_on_user_error(lambda: sweep_argv(argv))
            sys.argv = [sys.argv[0], *argv]
        master = exit_on_user_error(lambda: check_overrides(argv))
        if master is not None:
            exit_on_user_error(lambda: check_writable(Path(master.hydra.sweep.dir).expanduser().absolute()))
        config_name = argv[argv.index("--config-name") + 1] if "--config-name" in argv else "config"
        resumed = exit_on_user_error(lambda: check_sweep_dir(argv, config_name, master))
        if resumed:
            print(
                f"alexlab: continuing the sweep in {resumed} (resuming it, or joining the workers of its study): "
                "finished runs are not run again",
                file=sys.stderr,
            )
        exit_on_user_error(_train)
        exit_on_user_error(raise_if_all_failed)
    else:
        master = exit_on_user_error(lambda: check_overrides(argv))
        if master is not None:
            exit_on_user_error(lambda: check_run_dir(master, command))
        exit_on_user_error({"train": _train, "test": _test}[command])


def sweep_argv(argv: list[str]) -> list[str]:
    """`alexlab sweep NAME [overrides]` -> Hydra's argv: the sweep file is the primary config, run as a multirun."""
    from alexlab.sweep import named_sweeps, sweep_file

    if not argv or argv[0].startswith("-") or "=" in argv[0]:
        raise BadValue(f"alexlab sweep needs a sweep name or file first; the sweeps: {', '.join(named_sweeps())}")
    path = sweep_file(argv[0])
    return ["-m", "--config-path", str(path.parent), "--config-name", path.stem, *argv[1:]]


def exit_on_user_error(task):
    """Run `task`; an error the user caused ends the program with one line on stderr and its exit code (2: the
    command was wrong; 1: its runs did not finish)."""
    try:
        return task()
    except Exception as exc:
        message = None if SHOW_TRACEBACKS else user_error(exc)
        if message is None:
            raise
        from alexlab.masking import mask_text

        print(f"alexlab: error: {mask_text(message)}", file=sys.stderr)
        sys.exit(exc.exit_code if isinstance(exc, UserError) else 2)
