"""alexlab: re-run the experiments behind AlexNet and ablate them."""

import warnings

# Third-party warnings that say nothing to an alexlab user, silenced for every command (train, bench, report, ...)
# before the libraries that raise them are imported. Each names its source; tests/test_cli.py asserts that a smoke
# run's terminal output holds no warning line.
warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\)")  # Lightning 2.6 on torch 2.14
warnings.filterwarnings("ignore", message="'set_vital' is deprecated")  # torchdata 0.11's loader on torch 2.14
# where SLURM is installed, Lightning suggests `srun` for every run outside a job; launcher=slurm is alexlab's way
warnings.filterwarnings("ignore", message="The `srun` command is available on your system but is not used")
# a resumed run goes on in its own directory, where its checkpoints are (a new run's directory never holds any:
# alexlab.record.check_claim), so Lightning's "Checkpoint directory ... exists and is not empty" only ever says that
warnings.filterwarnings("ignore", message=r"Checkpoint directory .* exists and is not empty")
