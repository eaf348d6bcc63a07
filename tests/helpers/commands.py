"""Running the real `alexlab` command in the tests, and reading what it leaves: run_alexlab (a process of its own,
forked from one that has imported alexlab: tests/forkserver.py), run_alexlab_here (in this process, for bad input that
ends before training), start_alexlab (in the background, to be signalled), run_dirs and read_metrics."""

import atexit
import contextlib
import hashlib
import io
import json
import logging
import os
import select
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from pathlib import Path

from alexlab.files import RECORD

FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")
# a run's limits for the tests of the machinery (records, skips, resumes, refusals), not of what a run learns
FEW_BATCHES = ("trainer.limit_train_batches=6", "trainer.limit_val_batches=1", "trainer.limit_test_batches=1")
ROOT = Path(__file__).resolve().parents[2]
# ALEXLAB_TESTS_FRESH=1: every run of the tests in a fresh process of the installed command, none forked
FRESH_RUNS = bool(os.environ.get("ALEXLAB_TESTS_FRESH"))


def alexlab_process(env: dict | None) -> tuple[list[str], dict]:
    """The installed `alexlab` command and its environment: W&B offline, and without HYDRA_FULL_ERROR (which would
    turn the one-line errors under test into tracebacks)."""
    full_env = {**os.environ, "WANDB_MODE": "offline", "WANDB_SILENT": "true", **(env or {})}
    full_env.pop("HYDRA_FULL_ERROR", None)
    exe = Path(sys.executable).with_name("alexlab")
    return ([str(exe)] if exe.exists() else [sys.executable, "-m", "alexlab"]), full_env


def text(path: Path) -> str:
    return path.read_text() if path.exists() else ""


class ForkServer:
    """The client of tests/forkserver.py: `alexlab ARGS` as alexlab.cli.main(ARGS) in a child forked from a process
    that has imported alexlab once (one per test process, started at its first use), instead of 6-9 s of imports
    per run. Read forkserver.py for what a forked child shares with a fresh process and what it does not."""

    def __init__(self) -> None:
        self.process: subprocess.Popen | None = None
        self.pending = b""
        self.argv0 = ""  # the installed command's path: the children's sys.argv[0]

    def start(self) -> None:
        command, env = alexlab_process(None)
        self.argv0 = command[-1]
        self.process = subprocess.Popen(
            [sys.executable, str(Path(__file__).parents[1] / "forkserver.py"), self.argv0],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
            cwd=ROOT,
            bufsize=0,
        )
        atexit.register(self.process.kill)

    def answer(self, deadline: float | None) -> dict:
        while b"\n" not in self.pending:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            if not select.select([self.process.stdout], [], [], left)[0]:
                raise TimeoutError
            chunk = os.read(self.process.stdout.fileno(), 4096)
            if not chunk:
                raise RuntimeError(f"the fork server ended (exit status {self.process.wait()})")
            self.pending += chunk
        line, self.pending = self.pending.split(b"\n", 1)
        return json.loads(line)

    def begin(self, args: tuple[str, ...], cwd: Path, env: dict, out: Path, err: Path) -> int:
        """Fork a child that runs `alexlab ARGS`, its stdout and stderr into `out` and `err` (one file if the same);
        its pid. Its exit status is the server's next answer."""
        if self.process is None or self.process.poll() is not None:
            self.start()
        request = {"args": list(args), "cwd": str(cwd), "env": env, "stdout": str(out), "stderr": str(err)}
        request["argv0"] = self.argv0
        self.process.stdin.write((json.dumps(request) + "\n").encode())
        return self.answer(time.monotonic() + 60)["pid"]

    def run(self, args: tuple[str, ...], cwd: Path, env: dict, timeout: float) -> subprocess.CompletedProcess:
        with tempfile.TemporaryDirectory() as scratch:
            out, err = Path(scratch, "stdout"), Path(scratch, "stderr")
            pid = self.begin(args, cwd, env, out, err)
            try:
                code = self.answer(time.monotonic() + timeout)["code"]
            except TimeoutError:
                os.killpg(pid, signal.SIGKILL)
                raise subprocess.TimeoutExpired(["alexlab", *args], timeout, text(out), text(err)) from None
            return subprocess.CompletedProcess(["alexlab", *args], code, text(out), text(err))


class ForkServers:
    """Fork servers to hand out, one per run at a time: runs started at once from threads (two workers of one study)
    each get a server of their own, and so run at the same time."""

    def __init__(self) -> None:
        self.idle: list[ForkServer] = []
        self.lock = threading.Lock()

    def take(self) -> ForkServer:
        with self.lock:
            return self.idle.pop() if self.idle else ForkServer()

    def give_back(self, server: ForkServer) -> None:
        with self.lock:
            self.idle.append(server)

    def run(self, *args, **kwargs) -> subprocess.CompletedProcess:
        server = self.take()
        try:
            result = server.run(*args, **kwargs)
        except BaseException:  # a run that timed out, or a server that failed: never hand this server out again
            if server.process is not None:
                server.process.kill()
            raise
        self.give_back(server)
        return result


FORK_SERVERS = ForkServers()


def run_alexlab(
    *args: str, cwd: Path, env: dict | None = None, timeout: int = 600, fresh: bool = False
) -> subprocess.CompletedProcess:
    """The real entry point, as a user types it: alexlab.cli.main(ARGS), the console script's function, in a process
    of its own forked from one that has imported alexlab (ForkServer), or with fresh=True (or ALEXLAB_TESTS_FRESH=1)
    the installed `alexlab` command in a fresh process, for what only a fresh process shows (warnings printed while
    importing, settings read when a library loads)."""
    command, full_env = alexlab_process(env)
    if not fresh and not FRESH_RUNS:
        return FORK_SERVERS.run(args, cwd, full_env, timeout)
    return subprocess.run(
        [*command, *args], cwd=cwd, env=full_env, capture_output=True, text=True, timeout=timeout, check=False
    )


def run_alexlab_here(*args: str, cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    """`alexlab ARGS` called in this process (alexlab.cli.main), as run_alexlab reports it (exit code, stdout,
    stderr, tracebacks included) but without the 4 s of imports of a fresh process: for the many bad-input cases,
    which end before any training. The environment, argv, working directory, Hydra and the root logger are put
    back afterwards. The real command runs as a subprocess in most other tests."""
    from hydra.core.global_hydra import GlobalHydra

    from alexlab.cli import main

    _, full_env = alexlab_process(env)
    saved_env, saved_argv, saved_cwd = dict(os.environ), list(sys.argv), os.getcwd()
    root = logging.getLogger()
    saved_logging = (list(root.handlers), root.level)
    stdout, stderr = io.StringIO(), io.StringIO()
    code = 0
    os.environ.clear()
    os.environ.update(full_env)
    os.chdir(cwd)
    try:
        with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
            try:
                main(list(args))
            except SystemExit as exit:
                code = exit.code if isinstance(exit.code, int) else (0 if exit.code is None else 1)
            except Exception:
                traceback.print_exc()
                code = 1
    finally:
        os.environ.clear()
        os.environ.update(saved_env)
        sys.argv = saved_argv
        os.chdir(saved_cwd)
        GlobalHydra.instance().clear()
        for handler in set(root.handlers) - set(saved_logging[0]):  # the run's own (its alexlab.log), closed as at exit
            handler.close()
        root.handlers[:], root.level = saved_logging
    return subprocess.CompletedProcess(["alexlab", *args], code, stdout.getvalue(), stderr.getvalue())


class StartedRun:
    """A run in the background, forked by a fork server that it holds until the run ends: what the tests use of a
    subprocess.Popen (poll, send_signal, kill, communicate, returncode), stdout and stderr together as text."""

    def __init__(self, args: tuple[str, ...], cwd: Path, env: dict) -> None:
        self.args, self.returncode, self.output = ["alexlab", *args], None, ""
        self.scratch = tempfile.TemporaryDirectory()
        self.out = Path(self.scratch.name, "output")
        self.server = FORK_SERVERS.take()
        self.pid = self.server.begin(args, cwd, env, self.out, self.out)

    def ended(self, deadline: float | None) -> bool:
        """Whether the run has ended by `deadline` (now: a poll; None: wait); its status and output once it has."""
        if self.returncode is None:
            try:
                self.returncode = self.server.answer(deadline)["code"]
            except TimeoutError:
                return False
            self.output = text(self.out)
            self.scratch.cleanup()
            FORK_SERVERS.give_back(self.server)
        return True

    def poll(self) -> int | None:
        self.ended(time.monotonic())
        return self.returncode

    def send_signal(self, sig: int) -> None:
        if self.poll() is None:
            os.kill(self.pid, sig)

    def kill(self) -> None:
        if self.poll() is None:
            os.killpg(self.pid, signal.SIGKILL)  # with its DataLoader workers

    def communicate(self, timeout: float | None = None) -> tuple[str, None]:
        if not self.ended(None if timeout is None else time.monotonic() + timeout):
            raise subprocess.TimeoutExpired(self.args, timeout, text(self.out))
        return self.output, None


def start_alexlab(*args: str, cwd: Path, env: dict | None = None) -> StartedRun | subprocess.Popen:
    """`alexlab ARGS` started in the background (to be signalled: send_signal, kill), stdout and stderr together as
    text: forked by a fork server (StartedRun), or with ALEXLAB_TESTS_FRESH=1 the installed command in a fresh
    process. A forked child installs the same signal handlers (alexlab.cli.main) and ends as a fresh process does."""
    command, full_env = alexlab_process(env)
    if not FRESH_RUNS:
        return StartedRun(args, cwd, full_env)
    return subprocess.Popen(
        [*command, *args], cwd=cwd, env=full_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )


def run_dirs(root: Path) -> list[Path]:
    """The run directories under `root`: those holding a run record."""
    return sorted(p.parent for p in root.rglob(RECORD))


def read_metrics(run_dir: Path) -> dict:
    return json.loads((run_dir / RECORD).read_text())


def tree_digest(root: Path) -> dict[str, str]:
    """Every file under `root` (hidden ones included) -> the SHA-256 of its bytes; every link -> its target (a link
    loop included, which is not followed)."""
    found = {}
    for current, folders, names in os.walk(root):
        for name in names + [folder for folder in folders if os.path.islink(os.path.join(current, folder))]:
            path = Path(current) / name
            key = str(path.relative_to(root))
            found[key] = (
                f"-> {os.readlink(path)}" if path.is_symlink() else hashlib.sha256(path.read_bytes()).hexdigest()
            )
    return found
