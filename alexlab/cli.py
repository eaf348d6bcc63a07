"""`alexlab [train|test|info] [overrides]`: a thin dispatcher in front of Hydra, which owns argv.

Any first word that is not a subcommand (an override, -m, a Hydra flag) means `train`, so
`alexlab -m dropout=on,off depth=5,3` is a training grid. Errors a user can cause end in one line and exit 2.
"""

from __future__ import annotations

import contextlib
import difflib
import errno
import io
import os
import re
import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf

from alexlab.config_groups import CONFIG_PACKAGE, default_choices, group_options
from alexlab.errors import BadValue, CannotWrite, UserError
from alexlab.record import configs_subdir, job_log

# conf/config.yaml's hydra.output_subdir and job log file; registered where the task functions are, so that a
# launcher's worker process (joblib, submitit, SLURM), which imports them, has them too
OmegaConf.register_new_resolver("alexlab.configs_subdir", configs_subdir, replace=True)
OmegaConf.register_new_resolver("alexlab.job_log", job_log, replace=True)

COMMANDS = {
    "train": "train, then test the best checkpoint (the default: any other first word means train)",
    "test": "evaluate a checkpoint on the test split: alexlab test ckpt_path=PATH [overrides]",
    "info": "the composed network as a table: each layer, its output shape, parameters and MACs",
    "sweep": "run a named sweep of sweeps/ (or your own sweep file): alexlab sweep NAME|FILE.yaml [overrides]",
    "report": "the ablation table and plots of a sweep: alexlab report SWEEP_DIR [--baseline KEY=VALUE]",
    "dashboard": "the sweep's W&B view: a W&B report online, a local HTML page offline: alexlab dashboard SWEEP_DIR",
    "bench": "speed side by side: Trainer vs a plain loop, data pipeline, FLOP/s, sweep overhead, memory",
}
# Lightning's DDP launcher restarts this program with argv[1:] minus our subcommand; the children read it here.
COMMAND_ENV = "ALEXLAB_COMMAND"
# Exit status of a run stopped by a signal (sysexits' EX_TEMPFAIL: "try again"); alexlab.train exits with it too.
EXIT_INTERRUPTED = 75


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
    from alexlab.record import Interrupted, job_signals

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
    import difflib

    if not first or "=" in first[0] or first[0].startswith(("-", "~", "+")):
        return
    word = first[0]
    close = difflib.get_close_matches(word, COMMANDS, n=1, cutoff=0.6)
    hint = f"did you mean '{close[0]}'? " if close else ""
    raise BadValue(f"'{word}' is not a command: {hint}the commands: {', '.join(COMMANDS)} (alexlab --help)")


# Help of the commands that Hydra or argparse do not answer `--help` for (train and test: Hydra's; report and
# dashboard: argparse's)
COMMAND_HELP = ("info", "sweep", "bench")


def command_help(command: str) -> str:
    if command == "info":
        lines = [
            "usage: alexlab info [GROUP=OPTION ...] [KEY=VALUE ...]",
            "",
            COMMANDS["info"] + ", for the network the same overrides would train.",
            "",
            "examples:",
            "  alexlab info model=paper",
            "  alexlab info model=paper split=half depth=3",
        ]
    elif command == "sweep":
        lines = ["usage: alexlab sweep NAME|FILE.yaml [overrides]", "", COMMANDS["sweep"], "", "the sweeps:"]
        lines += sweep_lines()
        lines += [
            "",
            "examples:",
            "  alexlab sweep paper_ablations seeds=2",
            "  alexlab sweep search hydra.sweeper.n_trials=50",
        ]
    else:
        from alexlab import bench

        lines = [bench.__doc__.strip()]
    return "\n".join(lines)


def sweep_lines() -> list[str]:
    """The named sweeps of sweeps/, a line each, as `alexlab --help` and `alexlab sweep --help` list them."""
    from alexlab.sweep import named_sweeps

    return [f"  {name:<16} {text}" for name, text in named_sweeps().items()]


# Hydra's flags that print the config (or facts about it) instead of running the job
PRINTS_CONFIG = {"--cfg", "-c", "--info", "-i", "--help", "-h", "--hydra-help"}


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
        from alexlab.sweep import check_sweep_dir, raise_if_all_failed

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


def asks_to_resume(argv: list[str]) -> bool:
    """resume=true (or True, yes: any of YAML's words for true) or ckpt_path=last on the command line."""
    for arg in argv:
        key, _, value = arg.partition("=")
        if key.lstrip("+") == "resume" and value.lower() in ("true", "yes", "on", "1"):
            return True
        if key.lstrip("+") == "ckpt_path" and value == "last":
            return True
    return False


def check_run_dir(master: DictConfig, command: str) -> None:
    """Before Hydra writes into the run directory: it can be written, and it holds no other run (alexlab.record:
    check_claim). `master` is the composed config with Hydra's node (check_overrides)."""

    from alexlab.distributed import is_rank_zero
    from alexlab.record import check_claim, identity

    run_dir = Path(OmegaConf.select(master, "hydra.run.dir")).expanduser().absolute()
    check_writable(run_dir)
    if is_rank_zero():  # a DDP process that Lightning started runs its rank zero's job there and writes nothing
        check_claim(run_dir, identity(master.hydra.overrides.task), command)


def check_writable(path: Path) -> None:
    """`path`, or the nearest of its parents that exists, is a directory this process can write into."""
    existing = next(p for p in (path, *path.parents) if p.exists())
    if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
        reason = "not a directory" if not existing.is_dir() else "read-only or not yours"
        raise CannotWrite(
            errno.EACCES,
            f"cannot write into {existing} ({reason}): set paths.output_root (or hydra.run.dir / hydra.sweep.dir) "
            "to a directory you can write to",
        )


def resume_argv(argv: list[str]) -> list[str]:
    """`alexlab train OVERRIDES resume=true`: run in the directory of the newest unfinished run of these overrides
    (train.py then goes on from its checkpoints/last.ckpt)."""
    from hydra import compose, initialize_config_module

    from alexlab.record import find_resumable

    if any(arg.startswith("hydra.run.dir=") for arg in argv):
        return argv  # the user named the run directory
    overrides = [arg for arg in argv if not arg.startswith(("hydra.", "hydra/", "-"))]
    with initialize_config_module(CONFIG_PACKAGE, version_base="1.3"):
        output_root = Path(compose("config", overrides=overrides).paths.output_root)
    found = find_resumable(output_root, overrides)
    if found is None:
        raise BadValue(
            f"resume=true: no unfinished run with these overrides and a checkpoint under {output_root}/runs; "
            "run the command without resume=true to start one"
        )
    print(f"alexlab: resuming {found}", file=sys.stderr)
    return [*argv, f"hydra.run.dir={found}"]


def sweep_argv(argv: list[str]) -> list[str]:
    """`alexlab sweep NAME [overrides]` -> Hydra's argv: the sweep file is the primary config, run as a multirun."""
    from alexlab.sweep import named_sweeps, sweep_file

    if not argv or argv[0].startswith("-") or "=" in argv[0]:
        raise BadValue(f"alexlab sweep needs a sweep name or file first; the sweeps: {', '.join(named_sweeps())}")
    path = sweep_file(argv[0])
    return ["-m", "--config-path", str(path.parent), "--config-name", path.stem, *argv[1:]]


# The Hydra flags that check_overrides reads (with the number of values each takes); with any other flag (--cfg,
# --info, --config-dir, ...) Hydra alone checks the command.
CHECKED_FLAGS = {"-m": 0, "--multirun": 0, "-cp": 1, "--config-path": 1, "-cn": 1, "--config-name": 1}
# Keys whose value may be a word although the config's is a number: Lightning also takes devices=auto or "0,1".
WORDS_ALLOWED = {"trainer.devices", "seeds"}  # seeds=auto: a seed-rounds sweep (sweeps/paper_ablations.yaml)


def check_overrides(argv: list[str]) -> DictConfig | None:
    """Before Hydra writes anything (a run or sweep directory, multirun.yaml): each override, and each value of each
    axis of a sweep (the sweep file's hydra.sweeper.params and the command line's a,b,c lists), names a key or a
    group option that exists, and no word stands where the config has a number (data.batch_size=abc). A bad one
    raises Hydra's own error (one line through user_error) or BadValue naming it. Returns the composed config
    (with Hydra's node), or None when a flag it does not read leaves the command to Hydra."""
    from hydra import initialize_config_dir, initialize_config_module
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.types import RunMode
    from omegaconf import OmegaConf

    words, flags, args = [], {}, iter(argv)
    for arg in args:
        if not arg.startswith("-"):
            words.append(arg)
        elif arg in CHECKED_FLAGS:
            flags[arg] = next(args, None) if CHECKED_FLAGS[arg] else True
        else:
            return
    multirun = "-m" in flags or "--multirun" in flags
    config_dir = flags.get("-cp") or flags.get("--config-path")
    config_name = flags.get("-cn") or flags.get("--config-name") or "config"
    if config_dir:
        init = initialize_config_dir(str(Path(config_dir).absolute()), version_base="1.3")
    else:
        init = initialize_config_module(CONFIG_PACKAGE, version_base="1.3")
    check_group_values(words)
    with init:
        loader = GlobalHydra.instance().config_loader()
        master = loader.load_configuration(config_name, words, run_mode=RunMode.MULTIRUN if multirun else RunMode.RUN)
        params = master.hydra.sweeper.get("params") if multirun else None
        params = OmegaConf.to_container(params, resolve=True) if params else {}
        lines = [f"{key}={value}" for key, value in params.items()] + list(master.hydra.overrides.task)
        axes = {o.get_key_element(): o for o in OverridesParser.create(loader).parse_overrides(lines)}
        values = {key: axis_values(o) for key, o in axes.items() if not o.is_delete()}
        for key, texts in values.items():
            if not texts:
                raise BadValue(
                    f"{axes[key].input_line}: this sweep gives no values (a range's start must come before its end)"
                )
        first = {key: as_override(key, texts[0][0]) for key, texts in values.items()}
        groups = [key for key in values if loader.get_group_options(axes[key].key_or_group, config_name=config_name)]
        for key in groups:  # each option of a group axis (the first ones compose together below)
            for text, _ in values[key][1:]:
                loader.load_sweep_config(master, [*(first | {key: as_override(key, text)}).values()])
        base = loader.load_sweep_config(master, [first[key] for key in groups])  # the keys' own values
        if multirun:
            loader.load_sweep_config(master, list(first.values()))
    for key, pairs in values.items():
        name = axes[key].key_or_group
        if key in groups:
            continue
        default = OmegaConf.select(base, name, default=None, throw_on_resolution_failure=False)
        for text, value in pairs:
            check_value(key, name, text, value, default)
    return master


def check_group_values(words: list[str]) -> None:
    """An alexlab group takes one option per run (depth=5, or depth=5,3 with -m): a list (depth=[5]) or a mapping
    is refused here, before Hydra, whose defaults list reads a list as several options and fails on a number."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    groups = group_options()
    for override in OverridesParser.create().parse_overrides([w for w in words if "=" in w]):
        name = override.key_or_group
        if name in groups and not override.is_sweep_override() and isinstance(override.value(), (list, dict)):
            text = override.get_value_element_as_str()
            kind = "a list" if isinstance(override.value(), list) else "a mapping"
            raise BadValue(f"{name}={text}: '{name}' takes one of its options ({', '.join(groups[name])}), not {kind}")


def check_value(key: str, name: str, text: str, value, default) -> None:
    """A value of the command line against the config's own value for that key: a number where the config has a
    number (an integer where it has an integer: seed=1.5 is refused), one value where it has one (not a list), and
    something, not nothing, for a path (paths.output_root= would write under the filesystem's root). `key` is the
    override's as typed (+a.b), `name` the config key it sets (a.b)."""
    if isinstance(value, str) and value.startswith("${") or name in WORDS_ALLOWED:
        return
    number = isinstance(default, (int, float)) and not isinstance(default, bool)
    if number and isinstance(value, (str, bool)):
        kind = "an integer" if isinstance(default, int) else "a number"
        raise BadValue(f"{key}={text}: {key} takes {kind} (the config's is {default})")
    if isinstance(default, int) and not isinstance(default, bool) and isinstance(value, float):
        raise BadValue(
            f"{key}={text}: {key} takes an integer (the config's is {default}; a search samples integers from "
            "int(interval(a, b)))"
        )
    if isinstance(default, (int, float, str, bool)) and isinstance(value, (list, dict)):
        kind = "a list" if isinstance(value, list) else "a mapping"
        raise BadValue(f"{key}={text}: {key} takes one value (the config's is {default!r}), not {kind}")
    if name.startswith("paths.") and isinstance(default, str) and value in ("", None):
        raise BadValue(f"{key}={text}: {key} is empty; give a directory (the config's is {default})")


def as_override(key: str, text: str) -> str:
    """key=text, a number quoted (depth='4'): Hydra reads 4 as an int, and a config group option is a string."""
    return f"{key}='{text}'" if text.isdigit() else f"{key}={text}"


def axis_values(override) -> list[tuple[str, object]]:
    """(text, value) of each value an override sets: one, or each of a sweep (an interval: its start)."""
    from hydra.core.override_parser.types import Transformer

    if override.is_interval_sweep():
        start = override.value().start
        return [(str(start), start)]
    if not override.is_sweep_override():
        return [(override.get_value_element_as_str(), override.value())]
    return [(Transformer.str(v), getattr(v, "text", v)) for v in override.sweep_iterator()]


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


def quote_numeric_options(argv: list[str]) -> list[str]:
    """`depth=5,3` -> `depth='5','3'`: Hydra reads 5 as an int, and a config group option must be a string. The same
    for Hydra's sweep functions over a numeric group: `depth=choice(5,3)` -> `depth='5','3'` (not for the Optuna
    sweeper, which quotes the options of its trials itself), and `depth=range(3,7)` -> `depth='3','4','5','6'`
    (Hydra's range, like Python's, stops before its end)."""
    numeric_groups = {g for g, options in group_options().items() if all(o.isdigit() for o in options)}
    optuna = any(arg.startswith("hydra/sweeper=") and "optuna" in arg for arg in argv)
    quoted = []
    for arg in argv:
        match = re.fullmatch(r"([+~]{0,2})([\w.]+)=(?:(choice|range)\(\s*)?(\d+(?:\s*,\s*\d+)*)(\s*\))?", arg)
        function = match.group(3) if match else None
        if function == "choice" and optuna:
            pass  # a parameter of the study, even with one option; the sweeper's trials quote the options themselves
        elif match and match.group(2) in numeric_groups and bool(function) == bool(match.group(5)):
            prefix, group, _, values, _ = match.groups()
            numbers = [int(v) for v in values.split(",")]
            if function == "range":
                if not 1 <= len(numbers) <= 3 or len(numbers) == 3 and numbers[2] == 0 or not range(*numbers):
                    quoted.append(arg)  # an empty or malformed range: left for check_overrides to refuse
                    continue
                numbers = list(range(*numbers))
            listed = ",".join(f"'{n}'" for n in numbers)
            arg = f"{prefix}{group}={listed}"  # choice(a,b) is a,b to the basic sweeper, whose jobs choice() fails
        quoted.append(arg)
    return quoted


# errno values of a write that the user can fix (a full disk, a read-only or foreign directory)
WRITE_ERRORS = (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.ENOTDIR)


def user_error(exc: BaseException) -> str | None:
    """One line for an error the user caused, else None (a bug: shown in full). alexlab's own are UserErrors, raised
    where they are found (alexlab.errors); the others come from the libraries the config drives: Hydra and OmegaConf
    (a bad override or config), the operating system (a file that is missing or cannot be written), and a value
    the config hands to a library that refuses it (ValueError, e.g. torch's "Invalid learning rate")."""
    from hydra.errors import (
        ConfigCompositionException,
        InstantiationException,
        MissingConfigException,
        OverrideParseException,
    )
    from omegaconf.errors import MissingMandatoryValue, OmegaConfBaseException

    if isinstance(exc, UserError):
        return first_line(exc)
    if isinstance(exc, MissingConfigException) and exc.missing_cfg_file and "/" in exc.missing_cfg_file:
        group, _, option = exc.missing_cfg_file.rpartition("/")
        options = group_options().get(group) or sorted(exc.options or [])  # Hydra's own groups: hydra/sweeper/...
        if options:
            return f"{group}={option} is not an option of '{group}'; choose one of: {', '.join(options)}"
    if isinstance(exc, InstantiationException) and exc.__cause__ is not None:
        cause = user_error(exc.__cause__) or unexpected_argument(exc)
        return cause or f"{first_line(exc).rstrip(':')}: {type(exc.__cause__).__name__}: {first_line(exc.__cause__)}"
    if isinstance(exc, ConfigCompositionException) and "not in struct" in str(exc.__cause__):
        return unknown_key(exc.__cause__)
    if isinstance(exc, ConfigCompositionException) and exc.__cause__ is not None:
        return f"{first_line(exc)} {first_line(exc.__cause__)}"
    if isinstance(exc, ConfigCompositionException) and str(exc).startswith("Ambiguous value"):
        return f"{first_line(exc)}: add -m to run each value (a sweep), or quote it for one string: key='a,b'"
    if isinstance(exc, MissingMandatoryValue):
        return f"{exc.full_key} has no value (??? in the config): give one, e.g. {exc.full_key}=..."
    if isinstance(exc, OSError) and exc.errno in WRITE_ERRORS and exc.filename:
        from alexlab.record import cannot_write

        return str(cannot_write(exc, Path(exc.filename)))
    if isinstance(exc, (FileNotFoundError, NotADirectoryError, IsADirectoryError)):
        return first_line(exc)
    library_errors = (
        MissingConfigException,
        ConfigCompositionException,
        OverrideParseException,
        OmegaConfBaseException,
        ValueError,
    )
    lightning = sys.modules.get("lightning.fabric.utilities.exceptions")  # imported when a Trainer was built
    if lightning is not None and isinstance(exc, lightning.MisconfigurationException):
        return first_line(exc)
    return first_line(exc) if isinstance(exc, library_errors) else None


def unexpected_argument(exc) -> str | None:
    """One line for a config key the instantiated class does not take (+trainer.max_epoch=3): the class, the key
    and the nearest of its parameters."""
    import inspect

    match = re.search(r"unexpected keyword argument '(\w+)'", str(exc.__cause__))
    target = re.search(r"target '([\w.]+)'", str(exc))
    if not match or not target:
        return None
    from hydra.utils import get_object

    try:
        parameters = list(inspect.signature(get_object(target.group(1))).parameters)
    except (ImportError, ValueError, TypeError):
        parameters = []
    close = difflib.get_close_matches(match.group(1), parameters, n=3)
    hint = f"; did you mean {' or '.join(close)}?" if close else ""
    return f"{target.group(1)} takes no argument '{match.group(1)}'{hint}"


def unknown_key(error) -> str:
    """One line for an override of a key the config does not have (OmegaConf's error): the nearest names."""
    names = list(error.parent_node.keys()) if error.parent_node is not None else []
    if "." not in error.full_key:
        names += list(group_options())
    parent = error.full_key.rpartition(".")[0]
    close = [f"{parent}.{name}" if parent else name for name in difflib.get_close_matches(error.key, names, n=3)]
    hint = f"did you mean {' or '.join(close)}? " if close else ""
    return (
        f"unknown key '{error.full_key}': {hint}`alexlab train --cfg job` prints the keys (+{error.full_key}=VALUE "
        "adds a new one)"
    )


def first_line(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[0] if lines else type(exc).__name__


def usage() -> str:
    defaults = default_choices()
    lines = [
        "usage: alexlab [COMMAND] [GROUP=OPTION ...] [KEY=VALUE ...] [-m] [Hydra flags]",
        "",
        "Re-run AlexNet (Krizhevsky, Sutskever, Hinton 2012) and ablate it.",
        "",
        "commands:",
        *(f"  {name:<9} {text}" for name, text in COMMANDS.items()),
        "",
        "config groups (GROUP=OPTION, * = default):",
    ]
    for group, options in group_options().items():
        marked = [f"{o}*" if defaults.get(group) == o else o for o in options]
        lines.append(f"  {group:<12} {', '.join(marked)}")
    lines += ["", "sweeps (alexlab sweep NAME [overrides]; the files are in sweeps/):", *sweep_lines()]
    lines += [
        "",
        "examples:",
        "  alexlab experiment=quickstart            the small net on Fashion-MNIST, minutes on a CPU",
        "  alexlab train model=paper lrn=off         any switch, as group=option",
        "  alexlab -m dropout=on,off depth=5,3       a grid: 4 trainings in one sweep directory",
        "  alexlab sweep paper_ablations seeds=2     the paper's one-at-a-time ablations, 2 seeds each",
        "  alexlab report outputs/sweeps/<sweep>     the table: each configuration against the baseline",
        "  alexlab info model=paper split=half       layers, shapes, parameters and MACs",
        "  alexlab test ckpt_path=outputs/runs/.../checkpoints/last.ckpt test_views=ten_crop",
        "",
        "Hydra's flags work as usual: --cfg job (print the config), -m (multirun), --config-dir DIR (your",
        "own configs), -cn NAME, --info. `alexlab train --help` shows the composed config.",
    ]
    return "\n".join(lines)
