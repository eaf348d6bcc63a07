"""alexlab's seed-rounds sweeper: `hydra/sweeper=seed_rounds` (sweeps/paper_ablations.yaml), seeds until decided.

The classes live under `hydra_plugins` because Hydra only loads plugins from there.
"""
