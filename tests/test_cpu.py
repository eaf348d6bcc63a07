"""alexlab.cpu: OpenMP threads that do not spin on a shared machine, and freed memory kept for the next step.
Each case runs in a fresh Python process: both settings only act on a process's start (before torch is imported,
and on an allocator that has not yet grown)."""

import json
import os
import subprocess
import sys

PAGE_FAULTS = """
import json, resource, sys
if sys.argv[1] == "alexlab":
    from alexlab.cpu import keep_freed_memory
    assert keep_freed_memory()
import torch
x = torch.rand(1 << 20)
def step():  # a training step's shape: several large temporaries, freed at its end
    a = x.repeat(12) * 2.0      # 48 MiB
    b = torch.sqrt(a) + 1.0
    return float((a * b).sum())
step()
faults = []
for _ in range(21):  # the median step: a step that other processes' load disturbs once does not decide
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    step()
    faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
print(json.dumps({"faults_per_step": sorted(faults)[10]}))
"""


def python(code: str, *args: str, env: dict | None = None) -> str:
    result = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, env=env, check=True)
    return result.stdout.strip()


def test_freed_memory_is_reused_without_page_faults():
    default = json.loads(python(PAGE_FAULTS, "default"))["faults_per_step"]
    kept = json.loads(python(PAGE_FAULTS, "alexlab"))["faults_per_step"]
    assert default > 10_000  # glibc hands the 48 MiB blocks back and maps them again: ~12,000 pages each time
    assert kept < default / 20


def test_openmp_threads_get_a_short_spin_unless_the_user_chose():
    code = "import os; from alexlab.cpu import configure; configure(); print(os.environ.get('GOMP_SPINCOUNT'))"
    env = {k: v for k, v in os.environ.items() if k not in ("GOMP_SPINCOUNT", "KMP_BLOCKTIME")}
    assert python(code, env={**env}) == "10000"
    assert python(code, env={**env, "OMP_WAIT_POLICY": "ACTIVE"}) == "None"  # the user's own policy is kept
    assert python(code, env={**env, "GOMP_SPINCOUNT": "5"}) == "5"
    # too late once torch is loaded: left alone rather than set without effect
    late = "import os, torch; from alexlab.cpu import configure; configure(); print(os.environ.get('GOMP_SPINCOUNT'))"
    assert python(late, env={**env}) == "None"


def test_the_alexlab_command_configures_before_torch_loads():
    code = (
        "import sys, os; from alexlab import cli; cli.main(['--help']); "
        "print(os.environ.get('GOMP_SPINCOUNT'), 'torch' in sys.modules)"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("GOMP_SPINCOUNT", "KMP_BLOCKTIME")}
    assert python(code, env=env).splitlines()[-1] == "10000 False"


def test_describe_cpu_names_the_instruction_sets_that_decide_speed():
    from alexlab.cpu import cpu_line, describe_cpu

    xeon = "processor\t: 0\nmodel name\t: Intel(R) Xeon(R) Platinum\nflags\t\t: fpu sse avx2 fma avx512f avx512_bf16 amx_tile amx_bf16\n"  # noqa: E501
    epyc = "processor\t: 0\nmodel name\t: AMD EPYC\nflags\t\t: fpu sse avx avx2 fma\n"
    described = describe_cpu(xeon)
    assert described["model"] == "Intel(R) Xeon(R) Platinum"
    assert described["flags"] == ["avx2", "fma", "avx512f", "avx512_bf16", "amx_tile", "amx_bf16"]
    assert describe_cpu(epyc)["flags"] == ["avx2", "fma"] and describe_cpu("")["flags"] == []
    line = cpu_line(describe_cpu(epyc))
    assert line.startswith("AMD EPYC (") and "avx2 fma" in line and "avx512" not in line
