"""A process that imports alexlab once and forks one child per `alexlab ARGS` run of the tests
(helpers.commands.run_alexlab).

Why: a fresh `alexlab` process spends seconds of CPU importing torch, Lightning (which imports all of torchmetrics,
and with it scipy), wandb and Optuna before it reads its arguments. The suite starts about a hundred of them, a
third of its CPU time (docs/measurements.md). A child forked from this process has those
modules already; it then runs exactly what the console script runs, `alexlab.cli.main(ARGS)`, with its own working
directory, environment, argv, stdin (/dev/null) and stdout/stderr (files the test reads), and ends as the script
would: SystemExit's code, 1 with the traceback for an exception, its threads joined and the exit functions run
(loky's workers stopped, wandb's teardown).

PYTHONPATH's folders are put on sys.path as a fresh interpreter would.
What a forked child cannot show, the tests that check it run the installed command in a fresh process
(`run_alexlab(..., fresh=True)`, tests/test_cpu.py): settings read when a library is imported or loaded (OpenMP's
spin, from alexlab.cpu.configure, before torch is imported) and warnings printed while importing. Signals are not
among them: a child installs alexlab's handlers in cli.main as a fresh process does (`start_alexlab` forks too).
This process configures the CPU as cli.main does before it imports torch, with the environment the tests give.

Protocol, one JSON object per line: a request {"args", "cwd", "env", "stdout", "stderr", "argv0"} on stdin; the
answers {"pid": N} when the child is started, then {"code": N} when it has ended.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import sys
import threading
import traceback


def preload() -> None:
    from alexlab.cpu import configure

    configure()  # as cli.main does, before torch is imported
    # what a run imports (alexlab.train: torch, Lightning, torchmetrics), and what it imports only when it gets there:
    # the data module, W&B's run and settings (hundreds of modules, pydantic's models built as they load), Hydra's
    # plugins (found once here, as every run looks them up): a second or two of each forked run's CPU
    import optuna  # noqa: F401
    import torchvision.transforms.v2  # noqa: F401
    import wandb.apis.public  # noqa: F401
    import wandb.sdk.launch  # noqa: F401
    import wandb.sdk.lib.gitlib  # noqa: F401
    import wandb.sdk.wandb_init  # noqa: F401
    import wandb.sdk.wandb_run  # noqa: F401
    from hydra.core.plugins import Plugins

    import alexlab.cli  # noqa: F401
    import alexlab.data.folders  # noqa: F401
    import alexlab.data.synthetic  # noqa: F401
    import alexlab.info  # noqa: F401
    import alexlab.report  # noqa: F401
    import alexlab.sweep  # noqa: F401
    import alexlab.train  # noqa: F401

    Plugins.instance()
    warm_hydra()


def warm_hydra() -> None:
    """Compose alexlab's config once, as every run composes it several times: what Hydra and OmegaConf build on
    their first use (the override grammar's parser, the config sources, the package's files found) is then built
    before the fork, a few tenths of a second of each child's CPU. Nothing of it stays initialised: each child
    starts from an empty GlobalHydra, as a fresh process does."""
    from hydra import compose, initialize_config_module
    from hydra.core.global_hydra import GlobalHydra

    from alexlab.config_groups import CONFIG_PACKAGE

    with initialize_config_module(CONFIG_PACKAGE, version_base="1.3"):
        compose("config", overrides=["experiment=smoke", "trainer.max_epochs=1"], return_hydra_config=True)
    assert not GlobalHydra.instance().is_initialized()


def exit_code(exit: SystemExit) -> int:
    """The process's exit status for a SystemExit, as Python's own handling gives it (a message prints, status 1)."""
    if exit.code is None:
        return 0
    if isinstance(exit.code, int):
        return exit.code
    print(exit.code, file=sys.stderr)
    return 1


def run_child(request: dict) -> None:
    """In the forked child: become `alexlab ARGS` and never return."""
    code = 1
    try:
        os.setpgrp()  # its own process group: a timed-out run is killed with its workers
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["env"])
        for fd, path, flags in (
            (0, os.devnull, os.O_RDONLY),
            (1, request["stdout"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC),
            (2, request["stderr"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC),
        ):
            if fd == 2 and path == request["stdout"]:  # one file for both (start_alexlab): one offset, as with 2>&1
                os.dup2(1, 2)
                continue
            opened = os.open(path, flags, 0o644)
            os.dup2(opened, fd)
            os.close(opened)
        sys.argv = [request["argv0"], *request["args"]]
        # PYTHONPATH is read when an interpreter starts: its folders go where a fresh one puts them, after the script's
        paths = [path for path in request["env"].get("PYTHONPATH", "").split(os.pathsep) if path]
        sys.path[1:1] = [path for path in paths if path not in sys.path]
        # OMP_NUM_THREADS is read when torch is imported: the run's own, as a fresh process would have it
        threads = request["env"].get("OMP_NUM_THREADS", "")
        if threads.isdigit() and int(threads) >= 1:
            import torch

            torch.set_num_threads(int(threads))
        try:
            from alexlab.cli import main

            main(list(request["args"]))
            code = 0
        except SystemExit as exit:
            code = exit_code(exit)
        except BaseException:
            traceback.print_exc()
            code = 1
        # what an interpreter does at its end, in its order: join the non-daemon threads and run threading's exit
        # callbacks (concurrent.futures and joblib's loky shut their workers down there), then the atexit functions
        threading._shutdown()
        atexit._run_exitfuncs()
    finally:
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
        os._exit(code)


def serve() -> None:
    answers = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(os.open(os.devnull, os.O_WRONLY), 1)  # nothing else may write into the answers
    preload()
    for line in sys.stdin:
        request = json.loads(line)
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            run_child(request)
        answers.write(json.dumps({"pid": pid}) + "\n")
        _, status = os.waitpid(pid, 0)
        answers.write(json.dumps({"code": os.waitstatus_to_exitcode(status)}) + "\n")


if __name__ == "__main__":
    sys.path[0] = os.path.dirname(sys.argv[1])  # the installed command's folder, as the console script's
    serve()
