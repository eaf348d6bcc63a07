"""Secrets never written: passwords in URLs (`postgresql://user:PASSWORD@host/db`), the values of keys named like a
secret (`api_key`, `*_token`, `password`, `secret`) and the value of $WANDB_API_KEY become `<masked>` in everything
alexlab writes: the run record, the W&B config, Hydra's saved configs (.hydra/*.yaml, multirun.yaml), the Optuna
sweeper's files and the log. The values themselves are still used: only what is written is masked.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import sys
from pathlib import Path

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from alexlab.files import MULTIRUN

MASK = "<masked>"  # valid YAML, JSON and URL text alike
# scheme://user:PASSWORD@host
URL_PASSWORD = re.compile(r"(\b[a-zA-Z][\w+.-]*://[^\s:/@'\"]*:)([^\s@/'\"]+)(@)")
# name=value or name: value (an override, a YAML line, a log line), the name possibly quoted (JSON); only the name and
# separator are taken, so that `override_dirname: +api_token=x,lr=1` is searched on after `override_dirname: `
ASSIGNMENT = re.compile(r"""([\w.+~-]+)(['"]?[ \t]*[=:][ \t]*)""")  # on one line
VALUE = re.compile(r"""\$\{[^}]*\}|'[^']*'|"[^"]*"|[^\s,'"\[\]{}]+""")
# The whole unquoted value of a `name=value` override: up to a space, or a comma that starts the next override
# (`+api_token=x,lr=1` in override_dirname); so `db_password=A,B` (a sweep over two secrets) is masked whole
OVERRIDE_VALUE = re.compile(r"""[^\s'"]+?(?=[\s'"]|$|,[\w.+~-]+=)""")
# The whole unquoted value of a `name: value` YAML line: to the end of the line (`db_password: A,B C`)
YAML_VALUE = re.compile(r"""[^\n]*[^\s\n]""")
# A key's name makes its value a secret when it holds one of SECRET_PARTS (PGPASSWORD, client_secret), one of the
# words SECRET_WORDS (access_token, not tokenizer), or ends in the word `key` after another (api_key, WANDB_API_KEY;
# a plain `key` is too common a word).
SECRET_PARTS = ("password", "passwd", "secret")
SECRET_WORDS = {"apikey", "token", "pwd", "credential", "credentials"}
# Names that end in `key` and hold no secret: alexlab's own settings, written as they are (the seed rounds
# sweeper's `seed_key` is the config key each round sets, `seed`)
NOT_SECRETS = {"seed_key"}


def is_secret_name(name: str) -> bool:
    words = [word for word in re.split(r"[^a-z0-9]+", name.lower()) if word]
    if name.lower().rsplit(".", 1)[-1].lstrip("+~") in NOT_SECRETS:
        return False
    return (
        any(part in name.lower() for part in SECRET_PARTS)
        or any(word in SECRET_WORDS for word in words)
        or (len(words) > 1 and words[-1] == "key")
    )


def _value_after(text: str, assignment: re.Match) -> re.Match | None:
    """The value that follows `name=` or `name:`: quoted or an interpolation as written; unquoted, the whole of it
    (OVERRIDE_VALUE, YAML_VALUE), except after a quoted name (JSON, a Python dict), where it ends at a comma."""
    start, separator = assignment.end(), assignment.group(2).strip()
    if text.startswith(("'", '"', "${"), start) or separator.startswith(("'", '"')):
        return VALUE.match(text, start)
    return (OVERRIDE_VALUE if separator == "=" else YAML_VALUE).match(text, start) or VALUE.match(text, start)


def mask_text(text: str) -> str:
    """`text` with every secret in it replaced by <masked>."""
    text = URL_PASSWORD.sub(rf"\1{MASK}\3", text)
    parts, done = [], 0
    for match in ASSIGNMENT.finditer(text):
        value = _value_after(text, match)
        if match.start() < done or value is None or not is_secret_name(match.group(1)):
            continue
        if value.group(0).startswith("${") or value.group(0).strip("'\"") in ("", MASK, "null", "None"):
            continue  # an interpolation or no value: nothing secret
        quote = value.group(0)[0] if value.group(0)[0] in "'\"" else ""
        parts += [text[done : value.start()], f"{quote}{MASK}{quote}"]
        done = value.end()
    text = "".join([*parts, text[done:]])
    api_key = os.environ.get("WANDB_API_KEY")
    return text.replace(api_key, MASK) if api_key and len(api_key) >= 8 else text


def mask(data):
    """A copy of `data` (dicts, lists, strings, numbers) with the values of secret-named keys and every secret in
    its strings replaced by <masked>."""
    if isinstance(data, dict):
        return {
            key: MASK if is_secret_name(str(key)) and isinstance(value, (str, int, float)) else mask(value)
            for key, value in data.items()
        }
    if isinstance(data, (list, tuple)):
        return [mask(item) for item in data]
    return mask_text(data) if isinstance(data, str) else data


def mask_file(path: Path) -> None:
    """Rewrite a text file (a saved YAML config) with its secrets masked, atomically; nothing when it has none."""
    try:
        text = path.read_text()
    except OSError:
        return
    masked = mask_text(text)
    if masked != text:
        tmp = path.with_name(path.name + ".masking")
        tmp.write_text(masked)
        os.replace(tmp, path)


class SecretsFilter(logging.Filter):
    """A handler filter that masks the secrets of each log line before it is written anywhere."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        masked = mask_text(message)
        if masked != message:
            record.msg, record.args = masked, None
        return True


@contextlib.contextmanager
def masked_argv():
    """sys.argv with its secrets masked for the duration (W&B records the command line in the run's metadata)."""
    argv = sys.argv
    sys.argv = [mask_text(arg) for arg in argv]
    try:
        yield
    finally:
        sys.argv = argv


class MaskSecrets(Callback):
    """Hydra callback (conf/config.yaml: hydra.callbacks): masks secrets in the configs Hydra saved (.hydra/config.yaml,
    hydra.yaml, overrides.yaml and the sweep's multirun.yaml) as each job starts, right after Hydra wrote them; the
    job itself gets the real values. (The log's handlers mask with SecretsFilter: conf/config.yaml's hydra_logging
    and job_logging.)"""

    def on_job_start(self, config: DictConfig, **kwargs) -> None:
        hydra = config.hydra
        if hydra.output_subdir is not None:
            saved = Path(hydra.runtime.output_dir) / hydra.output_subdir
            for name in ("config.yaml", "hydra.yaml", "overrides.yaml"):
                mask_file(saved / name)
        if hydra.mode is not None and hydra.mode.name == "MULTIRUN":
            mask_file(Path(hydra.sweep.dir) / MULTIRUN)

    def on_multirun_end(self, config: DictConfig, **kwargs) -> None:
        mask_file(Path(config.hydra.sweep.dir) / MULTIRUN)
