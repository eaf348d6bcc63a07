"""The bench's table: every section's figures in one printed table."""

from __future__ import annotations

from alexlab.bench.common import PUBLISHED_IMAGES_PER_S
from alexlab.bench.study import study_rows


def _spread(s: dict, fmt) -> str:
    return f"{fmt(s['median'])}  [{fmt(s['min'])} - {fmt(s['max'])}]"


def _si(value: float, unit: str) -> str:
    for factor, prefix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= factor:
            return f"{value / factor:.3g} {prefix}{unit}"
    return f"{value:.3g} {unit}"


def _mib(value: int | None) -> str:
    return "-" if value is None else f"{value / 2**20:,.0f} MiB"


def table_rows(results: dict) -> list[tuple[str, str, str]]:
    """(section, measure, value) rows of the table: medians with [min - max] of the repetitions."""
    t, d, a, s, m = (results[key] for key in ("training", "data", "arithmetic", "sweep", "memory"))
    lay = results["layers"]

    def times(value: float) -> str:
        return f"{value:.3f}x"

    def ips(value):
        return f"{value:,.0f}"

    steps = f"{t['reps']} x {t['steps']} steps after {t['warmup']}, batch {t['batch_size']}"
    return [
        ("training", "Trainer images/s", _spread(t["trainer"]["images_per_s"], ips)),
        ("training", "plain loop images/s", _spread(t["plain"]["images_per_s"], ips)),
        (
            "training",
            "ratio Trainer / plain",
            f"{t['ratio_trainer_over_plain']:.3f}  [{t['paired_ratios']['min']:.3f} - {t['paired_ratios']['max']:.3f}]"
            f"  ({steps}, paired windows)",
        ),
        *[
            (
                "training",
                f"Trainer / {name}",
                f"{t['trainer']['images_per_s']['median'] / rate:.3f} (its {rate:,} images/s)",
            )
            for name, rate in PUBLISHED_IMAGES_PER_S.items()
            if results["batch_shape"][-1] in (224, 227)
        ],
        (
            "layers",
            f"step with lrn={lay['lrn']} ({lay['lrn_path']}) / without LRN",
            _spread(lay["lrn_over_no_lrn"], times),
        ),
        *[
            ("layers", "step with the LRN's tensor passes / its kernel", _spread(passes, times))
            for passes in [lay.get("tensor_passes_over_kernel")]
            if passes
        ],
        ("layers", "step with nn.MaxPool2d / alexlab's MaxPool", _spread(lay["stock_pooling_over_ours"], times)),
        (
            "data",
            "train loader images/s" + (" (decoded on the device)" if d.get("decode") == "device" else ""),
            _spread(d["loader_images_per_s"], ips),
        ),
        ("data", "ratio loader / Trainer", f"{d['ratio_loader_over_model']:.2f}  (>1: not input-bound)"),
        (
            "arithmetic",
            "train FLOPs per image",
            f"{_si(a['flops_per_image'], 'FLOP')} ({a['train_flops_per_mac']} x {a['macs_per_image']:,} MACs)",
        ),
        ("arithmetic", "achieved (plain loop)", _spread(a["achieved_flops_per_s"], lambda v: _si(v, "FLOP/s"))),
        (
            "arithmetic",
            f"peak ({a['matmul_size']}^2 matmul)",
            _spread(a["peak_flops_per_s"], lambda v: _si(v, "FLOP/s")),
        ),
        (
            "arithmetic",
            "share of peak (paired rounds)",
            _spread(a["share_of_peak"], lambda v: f"{100 * v:.1f}%"),
        ),
        ("sweep", "python start-up s", _spread(s["startup_s"], lambda v: f"{v:.2f}")),
        ("sweep", f"sweep of {s['jobs']} jobs, wall s", _spread(s["wall_s"], lambda v: f"{v:.2f}")),
        ("sweep", "per job s (all included)", _spread(s["per_job_s"], lambda v: f"{v:.2f}")),
        *shared_cpu_rows(results.get("shared_cpu")),
        *study_rows(results.get("study")),
        ("memory", "host peak RSS", _mib(m["host_peak_rss_bytes"])),
        ("memory", "sweep subprocess peak RSS", _mib(m["sweep_peak_rss_bytes"])),
        ("memory", "children peak RSS (any)", _mib(m["children_peak_rss_bytes"])),
        ("memory", "GPU max allocated", _mib(m["gpu_max_memory_allocated_bytes"])),
    ]


def shared_cpu_rows(shared: dict | None) -> list[tuple[str, str, str]]:
    if not shared:
        return []
    alone, loaded = shared["alone"], shared["loaded"]
    wait = ", ".join(f"{name}={value}" for name, value in shared["omp_wait"].items() if value) or "OpenMP's default"
    return [
        ("shared CPU", "step wall s: alone, loaded", f"{alone['wall_s_per_step']['median']:.3f}, "
         f"{loaded['wall_s_per_step']['median']:.3f}  ({shared['load']} busy processes, {wait})"),
        ("shared CPU", "step CPU s: alone, loaded", f"{alone['cpu_s_per_step']['median']:.3f}, "
         f"{loaded['cpu_s_per_step']['median']:.3f}"),
        ("shared CPU", "wall loaded / alone", f"{shared['wall_loaded_over_alone']:.2f}x  (fair share: "
         f"{shared['fair_slowdown']:.2f}x, {shared['threads']} threads on {shared['cores']} cores)"),
        ("shared CPU", "CPU loaded / alone", f"{shared['cpu_loaded_over_alone']:.2f}x  (1 = waits, > 1 = burns)"),
    ]  # fmt: skip


def print_table(results: dict) -> None:
    title = (
        f"alexlab bench: {results['device']}, batch {'x'.join(map(str, results['batch_shape']))}, "
        f"{results['wall_time_s']:.0f} s"
    )
    caption = f"{results['device_name']}; timings: median [min - max] of {results['knobs']['reps']} repetitions"
    try:
        from rich.console import Console
        from rich.markup import escape
        from rich.table import Table
    except ImportError:
        print(title)
        print(caption)
        for section, name, value in table_rows(results):
            print(f"  {section:<11} {name:<30} {value}")
        return
    table = Table(title=escape(title), caption=escape(caption))
    for column in ("section", "measure", "value"):
        table.add_column(column)
    for section, name, value in table_rows(results):
        table.add_row(escape(section), escape(name), escape(value))
    Console(width=120).print(table)
