"""alexlab's Hydra sweeper on current Optuna: `alexlab -m hydra/sweeper=optuna 'optimizer.lr=interval(1e-4, 0.1)'`.

It reads the config keys of Hydra's official hydra-optuna-sweeper (which pins optuna<3), adds pruning, a failure
budget and resumable studies. The classes live under `hydra_plugins` because Hydra only loads plugins from there.
"""
