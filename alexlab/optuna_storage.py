"""Where an Optuna study lives, shared by the sweeper (which runs the study), the pruning callback (which reports a
trial's epochs from inside the training job, possibly in another process) and `alexlab report` (which reads it).

A storage spec is a string: an RDB URL (`sqlite:///study.db`, `postgresql://user@host/db`: many workers on many
machines) or the path of an Optuna journal file (`sweep_dir/optuna.journal`, the default: safe for several local
processes, unlike SQLite under concurrent writers).
"""

from __future__ import annotations

import os

import optuna


def open_storage(spec: str) -> str | optuna.storages.BaseStorage:
    """The storage named by `spec`, in the form optuna.create_study / load_study accept."""
    if "://" in spec:
        return spec
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    path = os.path.abspath(os.path.expanduser(spec))
    os.makedirs(os.path.dirname(path), exist_ok=True)
    return JournalStorage(JournalFileBackend(path))


# The study's user attr in which the sweeper records its pruner's config ({"_target_": ..., **arguments}): the trial
# that a job loads asks this pruner, not Optuna's default MedianPruner, whether to stop.
PRUNER_ATTR = "pruner"


def load_trial(spec: str, study_name: str, number: int) -> optuna.Trial:
    """The live trial `number` of a study, to report intermediate values to and ask whether to prune."""
    study = optuna.load_study(study_name=study_name, storage=open_storage(spec))
    pruner_config = study.user_attrs.get(PRUNER_ATTR)
    if pruner_config:
        from hydra.utils import instantiate

        study.pruner = instantiate(pruner_config)
    trial_id = study._storage.get_trial_id_from_study_id_trial_number(study._study_id, number)
    return optuna.Trial(study, trial_id)
