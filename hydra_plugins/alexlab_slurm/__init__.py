"""alexlab's SLURM launcher: `launcher=slurm` (conf/launcher/slurm.yaml), submitit's with a wait that sees jobs SLURM
ended. The classes live under `hydra_plugins` because Hydra only loads plugins from there.
"""
