"""Helpers the tests share: fabricated sweep directories whose true answers are known (sweeps), imported as
`from helpers.sweeps import ...` (tests/ is on the test processes' path)."""
