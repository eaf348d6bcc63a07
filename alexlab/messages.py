"""What the command line says: its usage and each command's help, and every error a user can cause as one line (the
libraries' own errors turned into alexlab's words; alexlab's own are UserErrors with their line already)."""

from __future__ import annotations

import difflib
import errno
import re
import sys
from pathlib import Path

from alexlab.config_groups import default_choices, group_options
from alexlab.errors import UserError, first_line

COMMANDS = {
    "train": "train, then test the best checkpoint (the default: any other first word means train)",
    "test": "evaluate a checkpoint on the test split: alexlab test ckpt_path=PATH [overrides]",
    "info": "the composed network as a table: each layer, its output shape, parameters and MACs",
    "sweep": "run a named sweep of sweeps/ (or your own sweep file): alexlab sweep NAME|FILE.yaml [overrides]",
    "report": "the ablation table and plots of a sweep: alexlab report SWEEP_DIR [--baseline KEY=VALUE]",
    "dashboard": "the sweep's W&B view: a W&B report online, a local HTML page offline: alexlab dashboard SWEEP_DIR",
    "bench": "speed side by side: Trainer vs a plain loop, data pipeline, FLOP/s, sweep overhead, memory",
}

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
