"""The CUDA paths, for a machine with a GPU (skipped without one; CI has none): bf16 mixed precision,
channels_last and compile through the real command, the two-tower split placed on one GPU, JPEG decoding and
augmentation on the GPU, and the bench's device memory figure."""

import json

import pytest
import torch
from helpers.commands import read_metrics, run_dirs
from test_data import folder_module
from torchvision.io import write_jpeg

from alexlab import bench
from alexlab.model.alexnet import AlexNet

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
CUDA = torch.device("cuda", 0)


def test_bf16_channels_last_and_compile_train_on_the_gpu(alexlab, tmp_path):
    alexlab(
        "experiment=smoke",
        "logger=csv",
        "trainer.accelerator=gpu",
        "trainer.precision=bf16-mixed",
        "channels_last=true",
        "compile=true",
    )
    (run_dir,) = run_dirs(tmp_path / "outputs")
    metrics = read_metrics(run_dir)
    assert metrics["status"] == "finished"
    assert all(0.0 <= metrics["final"][key] <= 1.0 for key in ("val/top1_err", "test/top1_err"))


def test_two_tower_placement_on_one_gpu_matches_grouped():
    torch.manual_seed(0)
    grouped = AlexNet(num_classes=10, split="grouped").to(CUDA).eval()
    towers = AlexNet(num_classes=10, split="two_gpu", devices=("cuda:0", "cuda:0")).eval()
    towers.load_state_dict(grouped.state_dict())
    x = torch.randn(4, 3, 224, 224, device=CUDA)
    with torch.no_grad():
        expected = grouped(x)
        scale = float(expected.abs().max())
        torch.testing.assert_close(towers(x), expected, rtol=1e-2, atol=1e-2 * scale)  # TF32 convolutions


def write_smooth_jpegs(folder, count: int, seed: int) -> None:
    """Smooth colour gradients: JPEG decoders agree on them to a level or two (on noise, chroma upsampling differs)."""
    folder.mkdir(parents=True)
    generator = torch.Generator().manual_seed(seed)
    rows, cols = torch.linspace(0, 1, 36)[:, None], torch.linspace(0, 1, 44)[None, :]
    for i in range(count):
        a, b, c = torch.rand(3, generator=generator).tolist()
        image = torch.stack([rows * a + cols * (1 - a), rows * b * cols, (1 - rows) * c + cols * 0.2]).clamp(0, 1)
        write_jpeg((image * 255).round().to(torch.uint8), str(folder / f"{i}.jpg"), quality=95)


def test_jpeg_decoding_on_the_gpu_matches_the_loaders(tmp_path):
    """nvJPEG and the GPU's resize may round a pixel differently from libjpeg-turbo and the CPU's resize: every
    batch must agree within a few levels, and on average within half a level."""
    for index, name in enumerate(("a", "b")):
        write_smooth_jpegs(tmp_path / name, 10, seed=index)
    on_loader, on_device = folder_module(tmp_path, decode="loader"), folder_module(tmp_path, decode="auto")
    on_device.training_device = CUDA
    for module in (on_loader, on_device):
        module.setup("fit")
    assert on_device.decodes_on_device
    level = 1 / 255 / min(on_device.std)  # one pixel level after Normalize
    for make_loader in ("train_dataloader", "test_dataloader"):
        loaders = getattr(on_loader, make_loader)(), getattr(on_device, make_loader)()
        for (x, y), encoded in zip(*loaders, strict=True):
            x_gpu, y_gpu = on_device.transfer_batch_to_device(encoded, CUDA, 0)
            assert x_gpu.device.type == "cuda" and torch.equal(y_gpu.cpu(), y)
            difference = (x_gpu.cpu() - x).abs()
            assert difference.max() <= 4 * level and difference.mean() <= level / 2


def test_bench_reports_device_memory(tmp_path):
    knobs = ["bench.steps=2", "bench.warmup=1", "bench.reps=2", "bench.loader_batches=2", "+bench.sweep_jobs=1"]
    assert bench.main([*knobs, "data.batch_size=16", "data.num_workers=0", f"paths.output_root={tmp_path}"]) == 0
    (path,) = (tmp_path / "bench").glob("*/bench.json")
    results = json.loads(path.read_text())
    assert results["device"].startswith("cuda") and results["memory"]["gpu_max_memory_allocated_bytes"] > 0
