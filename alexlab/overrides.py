"""What a command line asks, checked before Hydra writes anything (a run or sweep directory, multirun.yaml): its
overrides and each value of each sweep axis against the config, the directory it would write into, and
`resume=true`'s run to go on from. A bad one ends in one line (alexlab.cli)."""

from __future__ import annotations

import copy
import errno
import math
import os
import re
import sys
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from alexlab.config_groups import CONFIG_PACKAGE, group_options
from alexlab.errors import BadFile, BadValue, CannotWrite, DirectoryTaken, first_line
from alexlab.files import MULTIRUN, resume_checkpoint
from alexlab.record import as_typed, held_identity, identity, read, seed_round_job

# Hydra's command-line flags: flag -> (the values it takes, what it does). check_overrides reads those that READ:
# with any other flag (--cfg, --info, --config-dir, ...) Hydra alone checks the command; those that PRINT print the
# config (or facts about it) instead of running the job.
READ, PRINT, OTHER = "read", "print", "other"
HYDRA_FLAGS = {
    "-m": (0, READ), "--multirun": (0, READ), "-cp": (1, READ), "--config-path": (1, READ), "-cn": (1, READ),
    "--config-name": (1, READ), "-cd": (1, OTHER), "--config-dir": (1, OTHER), "-c": (1, PRINT), "--cfg": (1, PRINT),
    "-p": (1, OTHER), "--package": (1, OTHER), "--experimental-rerun": (1, OTHER), "-i": (0, PRINT),
    "--info": (0, PRINT), "-h": (0, PRINT), "--help": (0, PRINT), "--hydra-help": (0, PRINT),
    "--version": (0, PRINT), "--resolve": (0, OTHER), "-r": (0, OTHER), "--run": (0, OTHER),
    "-sc": (1, OTHER), "--shell-completion": (1, OTHER),
}  # fmt: skip
FLAG_CHOICES = {"-c": ("job", "hydra", "all"), "--cfg": ("job", "hydra", "all")}
# --info takes one of these as an optional value (--info defaults), or none
INFO_CHOICES, INFO_FLAGS = ("all", "config", "defaults", "defaults-tree", "plugins", "searchpath"), ("-i", "--info")
PRINTS_CONFIG = {flag for flag, (_, kind) in HYDRA_FLAGS.items() if kind == PRINT}
CHECKED_FLAGS = {flag: values for flag, (values, kind) in HYDRA_FLAGS.items() if kind == READ}
FLAGS_WITH_VALUE = {flag for flag, (values, _) in HYDRA_FLAGS.items() if values}

# Keys whose value may be a word although the config's is a number, and no target's annotation says so.
WORDS_ALLOWED = {"seeds"}  # seeds=auto: a seed-rounds sweep (sweeps/paper_ablations.yaml)


def flags_first(argv: list[str]) -> list[str]:
    """Hydra's flags (with their values) before the overrides, as Hydra's argument parser needs them (`alexlab
    dropout=on,off -m depth=5,3` would end in its usage and "unrecognized arguments"); a flag Hydra does not have, a
    flag without its value or with a value it does not take is refused in one line instead."""
    flags, words, i = [], [], 0
    while i < len(argv):
        arg, i = argv[i], i + 1
        if not arg.startswith("-"):
            words.append(arg)
            continue
        flag, equals, value = arg.partition("=") if arg.startswith("--") else (arg, "", "")
        if flag not in HYDRA_FLAGS:
            known = " ".join(sorted(f for f in HYDRA_FLAGS if f.startswith("--")))
            raise BadValue(f"unknown flag {flag}; Hydra's flags: {known} (alexlab --hydra-help)")
        flags.append(arg)
        if HYDRA_FLAGS[flag][0] and not equals:
            if i == len(argv) or argv[i].startswith("-") or "=" in argv[i]:  # the next flag or an override
                choices = f": one of {', '.join(FLAG_CHOICES[flag])}" if flag in FLAG_CHOICES else ""
                raise BadValue(f"{flag} needs a value{choices}")
            value, i = argv[i], i + 1
            flags.append(value)
        if flag in FLAG_CHOICES and value not in FLAG_CHOICES[flag]:
            raise BadValue(f"{flag} {value}: {flag} takes one of {', '.join(FLAG_CHOICES[flag])}")
        if flag in INFO_FLAGS and not equals and i < len(argv) and argv[i] in INFO_CHOICES:
            flags.append(argv[i])
            i += 1
    return flags + words


def takes_value(flag: str, word: str) -> bool:
    """Whether `word`, following `flag` on the command line, is that flag's value (flags_first keeps them so)."""
    return flag in FLAGS_WITH_VALUE or (flag in INFO_FLAGS and word in INFO_CHOICES)


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
        parser = OverridesParser.create(loader)
        swept = parser.parse_overrides([f"{key}={value}" for key, value in params.items()])
        task = parser.parse_overrides(as_typed(master.hydra.overrides.task))
        axes = {o.get_key_element(): o for o in swept + task}
        values = {key: axis_values(o) for key, o in axes.items() if not o.is_delete()}
        for key, texts in values.items():
            if not texts:
                raise BadValue(
                    f"{axes[key].input_line}: this sweep gives no values (a range's start must come before its end)"
                )
        first = {key: as_override(key, texts[0][0]) for key, texts in values.items()}
        # Which keys are groups, as Hydra decided when it composed the master: a group its defaults list chose is in
        # hydra.runtime.choices (as GROUP or GROUP@PACKAGE), and an override it applied (one value, not a sweep of
        # several) that is not there set a value. Only a sweep's axes, which the master leaves out, ask the search
        # path (each get_group_options reloads the primary config): an appended group, +ablation=a,b, is not there
        chosen = {name.split("@")[0] for name in master.hydra.runtime.choices}
        applied = {o.get_key_element() for o in task if not o.is_sweep_override()}
        groups = [
            key
            for key in values
            if axes[key].key_or_group in chosen
            or (key not in applied and loader.get_group_options(axes[key].key_or_group, config_name=config_name))
        ]
        for key in groups:  # each option of a group axis (the first ones compose together below)
            for text, _ in values[key][1:]:
                loader.load_sweep_config(master, [*(first | {key: as_override(key, text)}).values()])
        # the config under the chosen groups, which the values are checked against; a single run's master has
        # composed its groups already, so without values there is nothing to compose it for
        checked = [key for key in values if key not in groups]
        base = loader.load_sweep_config(master, [first[key] for key in groups]) if checked or multirun else None
        if multirun and checked:  # the first job, values and all (without values: the composition above)
            loader.load_sweep_config(master, list(first.values()))
    for key in checked:
        name = axes[key].key_or_group
        default = OmegaConf.select(base, name, default=None, throw_on_resolution_failure=False)
        for text, value in values[key]:
            now = resolved(base, key, name, text, value)
            try:
                check_value(key, name, text, now, default, base)
            except BadValue as exc:
                raise BadValue(f"{exc} ({text} resolves to {now!r})" if now is not value else str(exc)) from None
    return master


def resolved(config: DictConfig, key: str, name: str, text: str, value):
    """An override's value with its interpolations resolved as the job will resolve them (`${oc.env:X}`,
    `${oc.decode:...}`, `${seed}`), so that one that cannot be resolved is refused before Hydra writes anything, and
    what it resolves to is checked as a typed value would be. `${hydra:...}` is only known inside the job: left as
    it is."""
    from omegaconf.errors import OmegaConfBaseException

    if not (isinstance(value, str) and "${" in value) or "${hydra:" in value:
        return value
    trial = copy.deepcopy(config)  # the override set in a copy; the config the other checks read stays as it was
    try:
        OmegaConf.update(trial, name, value, merge=False, force_add=True)
        return OmegaConf.select(trial, name, throw_on_resolution_failure=True)
    except OmegaConfBaseException as exc:
        if "HydraConfig was not set" in str(exc):  # it reaches ${hydra:...} through another key
            return value
        raise BadValue(f"{key}={text}: {first_line(exc)}") from exc


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


def check_value(key: str, name: str, text: str, value, default, config=None) -> None:
    """A value of the command line against what its key configures. Where the key is an argument of a `_target_`
    (trainer.limit_test_batches of Lightning's Trainer, optimizer.lr of torch.optim.SGD, data.batch_size of the data
    module), that argument's annotation decides: Lightning takes a count or a fraction for every limit_*_batches
    although a preset sets a count. Elsewhere the config's own value does: a number where it has a number (an
    integer where it has an integer: seed=1.5 is refused), one value where it has one (not a list). Always: a
    number is finite (optimizer.lr=nan would train until the loss is NaN), and a path is something, not nothing
    (paths.output_root= would write under the filesystem's root). `key` is the override's as typed (+a.b), `name`
    the config key it sets (a.b), `config` the composed config that holds it."""
    if isinstance(value, str) and value.startswith("${") or name in WORDS_ALLOWED:
        return
    if not finite(value):
        raise BadValue(f"{key}={text}: {key} takes a finite number, not NaN or infinity")
    kind = annotation(config, name)
    fits = accepts(kind, value)
    if fits is False:
        shape = {list: "a list", dict: "a mapping"}.get(type(value))
        raise BadValue(f"{key}={text}: {key} takes {describe(kind)}" + (f", not {shape}" if shape else "")
                       + f" (the config's is {default!r})")  # fmt: skip
    if fits is None:
        by_default(key, text, value, default)
    if name.startswith("paths.") and isinstance(default, str) and value in ("", None):
        raise BadValue(f"{key}={text}: {key} is empty; give a directory (the config's is {default})")
    if name == "ckpt_path" and value is not None and not isinstance(value, str):  # YAML read 1, true or [a]
        raise BadValue(f"{key}={text}: {key} takes a checkpoint's path (a file named {text}: {key}='{text}')")


def by_default(key: str, text: str, value, default) -> None:
    """check_value by the config's own value for the key: its type, and one value where it has one."""
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


def finite(value) -> bool:
    """No NaN or infinity in a value, a list's or a mapping's (Hydra reads nan, inf and -inf as floats)."""
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, (list, tuple)):
        return all(finite(v) for v in value)
    if isinstance(value, dict):
        return all(finite(v) for v in value.values())
    return True


def annotation(config, name: str):
    """The type annotation of the argument that config key `name` (a.b.c) gives the `_target_` of its node (a.b),
    or None where no target takes it by name (no `_target_`, **kwargs, a target that cannot be imported)."""
    import inspect
    import typing

    from hydra.utils import get_object

    parent, _, leaf = name.rpartition(".")
    target = OmegaConf.select(config, f"{parent}._target_" if parent else "_target_", default=None) if config else None
    if not isinstance(target, str):
        return None
    try:
        function = get_object(target)
        function = function.__init__ if inspect.isclass(function) else function
        hints = typing.get_type_hints(function)
    except Exception:  # an unimportable target or annotations that do not evaluate: the config's value decides
        return None
    return hints.get(leaf)


def accepts(kind, value) -> bool | None:
    """Whether a value Hydra parsed (None, bool, int, float, str, list, dict) fits a type annotation: True, False,
    or None where the annotation says nothing this can check (a class of the library's own, a callable, Any)."""
    import collections.abc as abc
    import types
    import typing

    origin, args = typing.get_origin(kind), typing.get_args(kind)
    if kind is None or kind is typing.Any:
        return None
    if origin in (typing.Union, types.UnionType):
        answers = [accepts(arg, value) for arg in args]
        return True if True in answers else None if None in answers else False
    if origin is typing.Literal:
        return value in args and type(value) in {type(a) for a in args}
    if kind is type(None):
        return value is None
    if kind is bool:
        return isinstance(value, bool)
    if kind is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if kind is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if kind is str:
        return isinstance(value, str)
    base = origin or kind
    if base in (list, tuple, abc.Sequence, abc.MutableSequence, abc.Iterable):
        return True if isinstance(value, list) else None if isinstance(value, str) else False  # a word is a Sequence
    if base in (dict, abc.Mapping, abc.MutableMapping):
        return isinstance(value, dict)
    return None


def describe(kind) -> str:
    """An annotation in words for an error line: int | float | None -> 'an integer, a number or null'."""
    import types
    import typing

    words = {int: "an integer", float: "a number", str: "a word", bool: "true or false", type(None): "null"}
    union = typing.get_origin(kind) in (typing.Union, types.UnionType)
    members = typing.get_args(kind) if union else (kind,)
    literals = [str(v) for m in members if typing.get_origin(m) is typing.Literal for v in typing.get_args(m)]
    parts = ["one of " + ", ".join(dict.fromkeys(literals))] if literals else []
    parts += [describe(m) for m in members if typing.get_origin(m) is not typing.Literal] if union else []
    if parts:
        return ", ".join(parts[:-1]) + " or " + parts[-1] if len(parts) > 1 else parts[0]
    return words.get(kind, getattr(kind, "__name__", str(kind)))


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
        return [(override.input_line.partition("=")[2], override.value())]  # as typed (Hydra's str escapes ${})
    return [(Transformer.str(v), getattr(v, "text", v)) for v in override.sweep_iterator()]


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


def check_sweep_dir(argv: list[str], config_name: str, master: DictConfig | None = None) -> str | None:
    """Before a multirun into an existing sweep directory (hydra.sweep.dir=DIR): the same sweep there resumes
    (finished runs are skipped; returns DIR); another sweep is refused before Hydra writes anything into DIR, and so
    is the same sweep with its axes in another order, which would put other configurations into the numbered job
    directories (`planned_jobs`: what Hydra will write where, against what each job directory holds)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    from alexlab.record import held_identity, identity

    words = [w for i, w in enumerate(argv) if not w.startswith("-") and (i == 0 or not takes_value(argv[i - 1], w))]
    overrides = OverridesParser.create().parse_overrides(words)
    sweep_dir = next((o.value() for o in overrides if o.key_or_group == "hydra.sweep.dir"), None)
    if sweep_dir is None or not (Path(sweep_dir) / MULTIRUN).is_file():
        return None
    previous = OmegaConf.load(Path(sweep_dir) / MULTIRUN)
    before = sorted(identity(OmegaConf.select(previous, "hydra.overrides.task", default=None)))
    now = sorted(identity([o.input_line for o in overrides if not o.is_hydra_override()]))  # masked as stored
    before_name = OmegaConf.select(previous, "hydra.job.config_name", default=None)
    if before != now or before_name != config_name:
        raise DirectoryTaken(
            f"{sweep_dir} holds another sweep ({before_name}: {' '.join(before) or 'no overrides'}); "
            "to resume it, repeat its overrides exactly; for a new sweep, leave out hydra.sweep.dir"
        )
    jobs = planned_jobs(master, Path(sweep_dir)) if master is not None else None
    for name, planned in (jobs or {}).items():
        held = held_identity(Path(sweep_dir) / name)
        if held is not None and sorted(held) != sorted(identity(planned)):
            order = " ".join(as_typed(OmegaConf.select(previous, "hydra.overrides.task", default=None)))
            raise DirectoryTaken(
                f"{sweep_dir}/{name} holds the job {' '.join(held)}, but this command would run "
                f"{' '.join(identity(planned))} there: give the sweep's overrides in their first order ({order})"
            )
    return sweep_dir


def planned_jobs(master: DictConfig, sweep_dir: Path) -> dict[str, list[str]] | None:
    """Job directory name -> the overrides Hydra will give that job, for the sweepers whose jobs are known in
    advance (the basic sweeper's grid, and the seed rounds' grid round after round) with Hydra's numbered job
    directories; None for others (Optuna's trials are numbered by its study, which resumes on its own)."""
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.override_parser.overrides_parser import OverridesParser

    sweeper = OmegaConf.select(master, "hydra.sweeper._target_", default="")
    subdir = OmegaConf.to_container(master.hydra.sweep, resolve=False).get("subdir")
    if subdir != "${hydra.job.num}" or not sweeper.endswith(("BasicSweeper", "SeedRoundsSweeper")):
        return None
    params = master.hydra.sweeper.get("params")
    params = OmegaConf.to_container(params, resolve=True) if params else {}
    lines = [f"{key}={value}" for key, value in params.items()] + as_typed(master.hydra.overrides.task)
    batches = BasicSweeper.split_arguments(OverridesParser.create().parse_overrides(lines), None)
    grid = [job for batch in batches for job in batch]
    if sweeper.endswith("SeedRoundsSweeper"):
        seed_key = OmegaConf.select(master, "hydra.sweeper.seed_key", default="seed")
        first = OmegaConf.select(master, "hydra.sweeper.first_seed", default=0)
        first = first if isinstance(first, int) and not isinstance(first, bool) else 0  # else the sweeper refuses it
        numbered = [int(p.name) for p in sweep_dir.iterdir() if p.name.isdigit()]
        rounds = (max(numbered, default=0) // max(len(grid), 1)) + 1
        grid = [seed_round_job(job, seed_key, first, r) for r in range(rounds) for job in grid]
    return {str(number): job for number, job in enumerate(grid)}


def find_resumable(output_root: Path, overrides: list[str]) -> Path | None:
    """`alexlab train OVERRIDES resume=true`: the newest run under output_root/runs with these overrides that did not
    finish (interrupted, killed, failed) and left a whole checkpoint, or None."""
    candidates = []
    for run_dir in (Path(output_root) / "runs").glob("*/"):
        try:
            record = read(run_dir)
        except BadFile:
            continue
        if record is None:  # killed before its record: Hydra's saved overrides say which run it was
            held = held_identity(run_dir)
            same = held is not None and sorted(held) == sorted(identity(overrides))
        else:
            same = record.same_run(overrides, "train") and not record.finished
        if same and resume_checkpoint(run_dir) is not None:
            candidates.append(run_dir)
    return max(candidates, key=lambda d: d.name, default=None)
