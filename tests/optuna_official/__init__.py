# Vendored tests of Hydra's official hydra-optuna-sweeper (see README.md); a package so that its test modules get
# rootdir-unique names (optuna_official.tests.test_official_optuna_sweeper).
