"""Where an Optuna study lives, shared by the sweeper (which runs the study), the pruning callback (which reports a
trial's epochs from inside the training job, possibly in another process) and `alexlab report` (which reads it).

A storage spec is a string: an RDB URL (`sqlite:///study.db`, `postgresql://user@host/db`: many workers on many
machines) or the path of an Optuna journal file (`sweep_dir/optuna.journal`, the default: safe for several local
processes, unlike SQLite under concurrent writers).
"""

from __future__ import annotations

import hashlib
import os
import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # imported where a study is opened: every training job asks current_trial(), most are no trial
    import optuna


def open_storage(spec: str) -> str | optuna.storages.BaseStorage:
    """The storage named by `spec`, in the form optuna.create_study / load_study accept."""
    if "://" in spec:
        return spec
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    return JournalStorage(JournalFileBackend(file_path(spec)))


def file_path(path: str) -> str:
    """The absolute path of a storage file, its directory created."""
    path = os.path.abspath(os.path.expanduser(path))
    os.makedirs(os.path.dirname(path), exist_ok=True)
    return path


# SQL that takes and gives back a lock named by an int (PostgreSQL) or a string (MySQL) on one connection
SQL_LOCKS = {
    "postgresql": ("SELECT pg_advisory_lock(:key)", "SELECT pg_advisory_unlock(:key)"),
    "mysql": ("SELECT GET_LOCK(:key, -1)", "SELECT RELEASE_LOCK(:key)"),
}
SQL_LOCKS["mariadb"] = SQL_LOCKS["mysql"]
THIS_PROCESS_ONLY = threading.Lock()


@contextmanager
def study_lock(spec: str, study_name: str) -> Iterator[None]:
    """Held by one worker of the study at a time (threads, processes, machines sharing the storage): around each
    check-then-create, e.g. count the study's trials and ask a new one only below n_trials.

    A journal file or a SQLite file: Optuna's own lock file next to it (`<file>.reserve.lock`, apart from the
    `<file>.lock` that Optuna takes for each write; one left by a killed worker is broken after 30 s). PostgreSQL:
    an advisory lock (pg_advisory_lock), MySQL: GET_LOCK, each held on a connection of its own. SQLite in memory
    (one process): a lock of this process. Any other database: the same, with a warning: workers in other
    processes may then each start one trial too many at the end."""
    if "://" not in spec:
        with file_lock(file_path(spec)):
            yield
        return
    from sqlalchemy.engine import make_url

    url = make_url(spec)
    backend = url.get_backend_name()
    if backend == "sqlite" and url.database not in (None, "", ":memory:"):
        with file_lock(file_path(url.database)):
            yield
    elif backend in SQL_LOCKS:
        digest = hashlib.sha256(f"alexlab optuna study {study_name}".encode()).hexdigest()[:15]
        with sql_lock(spec, *SQL_LOCKS[backend], int(digest, 16) if backend == "postgresql" else digest):
            yield
    else:
        if backend != "sqlite":
            warnings.warn(f"alexlab has no lock across processes for {backend}: run one worker per study", stacklevel=3)
        with THIS_PROCESS_ONLY:
            yield


@contextmanager
def file_lock(path: str) -> Iterator[None]:
    from optuna.storages.journal import JournalFileOpenLock

    lock = JournalFileOpenLock(path + ".reserve")  # creates <path>.reserve.lock with O_EXCL (NFSv3 and later)
    lock.acquire()
    try:
        yield
    finally:
        lock.release()


@contextmanager
def sql_lock(url: str, acquire: str, release: str, key: int | str) -> Iterator[None]:
    import sqlalchemy

    engine = sqlalchemy.create_engine(url, poolclass=sqlalchemy.pool.NullPool)
    try:
        with engine.connect() as connection:
            connection.execute(sqlalchemy.text(acquire), {"key": key})
            try:
                yield
            finally:
                connection.execute(sqlalchemy.text(release), {"key": key})
    finally:
        engine.dispose()


# The study's user attr in which the sweeper records its pruner's config ({"_target_": ..., **arguments}): the trial
# that a job loads asks this pruner, not Optuna's default MedianPruner, whether to stop.
PRUNER_ATTR = "pruner"


def load_trial(spec: str, study_name: str, number: int) -> optuna.Trial:
    """The live trial `number` of a study, to report intermediate values to and ask whether to prune."""
    import optuna

    study = optuna.load_study(study_name=study_name, storage=open_storage(spec))
    pruner_config = study.user_attrs.get(PRUNER_ATTR)
    if pruner_config:
        from hydra.utils import instantiate

        study.pruner = instantiate(pruner_config)
    trial_id = study._storage.get_trial_id_from_study_id_trial_number(study._study_id, number)
    return optuna.Trial(study, trial_id)


# The trial a job runs as: the sweeper puts these in the job's environment (hydra.job.env_set), so that any Hydra
# app's jobs take them without a config node, and alexlab's training finds its trial whichever process runs it.
TRIAL_ENV = {"storage": "ALEXLAB_OPTUNA_STORAGE", "study": "ALEXLAB_OPTUNA_STUDY", "trial": "ALEXLAB_OPTUNA_TRIAL"}


def current_trial() -> optuna.Trial | None:
    """The live trial of the Optuna sweeper that this job runs as, None outside one."""
    storage, study, number = (os.environ.get(TRIAL_ENV[key]) for key in ("storage", "study", "trial"))
    if not (storage and study and number):
        return None
    return load_trial(storage, study, int(number))
