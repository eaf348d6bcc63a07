"""Per-image torchvision.transforms.v2 pipelines on uint8 [C, H, W] tensors, ending in normalised float32.

What the paper did (Krizhevsky et al. 2012, section 4.1): images rescaled so the short side is 256 and centre
cropped to 256x256; training on random 224x224 crops and their horizontal reflections; PCA colour noise with
sigma 0.1 added to every training image; at test time the prediction averaged over ten 224x224 crops (the four
corners and the centre, and their reflections). `crop_region` says where the crops come from in a non-square
image: "centre_square" as the paper (the central resize x resize square, then the crops; experiment=paper), or
"whole" (the whole short-side-resized image, as most re-implementations do). Square images give the same either way.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence

import torch
from torch import nn
from torch.utils.data import Dataset
from torchvision.transforms import v2

from alexlab.errors import BadValue

AUGMENTS = ("none", "flip_crop", "paper")
TEST_VIEWS = ("centre", "ten_crop")
PCAS = ("imagenet", "data")
PCA_CHUNK = 256  # images a step of pixel_pca's sums
CROP_REGIONS = ("whole", "centre_square")
# How pixel values reach the network: "unit", (x - mean) / std per channel, spread about 1; "raw", the paper's
# "centered raw RGB values of the pixels" (section 2): 0-255 minus the training mean, no division, spread about 60
# on ImageNet. The paper's LRN constants (k=2, alpha=1e-4) were set for the second: at unit spread its
# alpha * sum of squares stays near 1e-4 of k and the LRN divides by a constant (alexlab.model.layers.lrn_strength).
SCALES = ("unit", "raw")


def spread_of(scale: str, std: Sequence[float]) -> list[float]:
    """What Normalize divides by (after ToDtype's 0-1 scaling) for `scale`: the data's std, or 1/255 for raw values."""
    if scale not in SCALES:
        raise BadValue(f"scale must be one of {'|'.join(SCALES)}, got {scale!r}")
    return list(std) if scale == "unit" else [1 / 255] * len(std)


# ImageNet RGB pixel statistics on the 0-1 scale, as used by fb.resnet.torch and most re-implementations
# (the eigenvalues are the 0-255 values [55.46, 4.794, 1.148] divided by 255). Each column of the written matrix
# is an eigenvector: eigvec @ (alpha * eigval) is the colour shift.
IMAGENET_EIGVAL = [0.2175, 0.0188, 0.0045]
IMAGENET_EIGVEC = [
    [-0.5675, 0.7192, 0.4009],
    [-0.5808, -0.0045, -0.8140],
    [-0.5836, -0.6948, 0.4203],
]


def default_resize(crop_size: int) -> int:
    """The paper's 256/224 ratio: 224 -> 256, 28 -> 32."""
    return round(crop_size * 256 / 224)


class PCALighting(nn.Module):
    """AlexNet's colour augmentation ("fancy PCA") on float images in [0, 1], applied before Normalize.

    Adds eigvec @ (alpha * eigval) to every pixel, alpha ~ N(0, std) drawn per image and per call (the paper:
    sigma 0.1), so each image's colour moves along the principal components of the pixel values, more along the
    stronger ones.
    """

    def __init__(
        self, eigval: Sequence[float] | torch.Tensor, eigvec: Sequence[Sequence[float]] | torch.Tensor, std: float = 0.1
    ):
        super().__init__()
        eigval = torch.as_tensor(eigval, dtype=torch.float32)
        eigvec = torch.as_tensor(eigvec, dtype=torch.float32)
        if eigvec.shape != (len(eigval), len(eigval)):
            raise BadValue(
                f"PCALighting needs a CxC eigvec for C eigenvalues, got {tuple(eigvec.shape)} and {len(eigval)}"
            )
        if std < 0:
            raise BadValue(f"PCALighting std must be >= 0, got {std}")
        self.register_buffer("eigval", eigval)
        self.register_buffer("eigvec", eigvec)
        self.std = std

    def draw(self) -> torch.Tensor:
        """One image's colour shift [C] (on the CPU, from the CPU generator)."""
        if self.std == 0:
            return torch.zeros(len(self.eigval))
        alpha = torch.randn(len(self.eigval)) * self.std
        return self.eigvec @ (alpha * self.eigval)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        if self.std == 0:
            return image
        return image + self.draw().to(image.device)[:, None, None]

    def extra_repr(self) -> str:
        return f"eigval={self.eigval.tolist()}, std={self.std}"


def pixel_pca(dataset: Dataset, max_images: int = 2000, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Eigenvalues (descending) and eigenvectors (columns) of the CxC covariance of pixel values on the 0-1 scale,
    from a seeded sample of up to `max_images` images of `dataset` (items (uint8 [C, H, W], label)). The sums run
    over chunks of images at once (one matmul a chunk, in float64): image by image, their Python cost was as much as
    drawing a small synthetic image."""
    count = min(len(dataset), max_images)
    if count == 0:
        raise BadValue("pca=data needs at least one training image")
    indices = torch.randperm(len(dataset), generator=torch.Generator().manual_seed(seed))[:count].tolist()
    total, outer, pixels = 0.0, 0.0, 0
    for start in range(0, count, PCA_CHUNK):
        images = [dataset[index][0] for index in indices[start : start + PCA_CHUNK]]
        values = torch.cat([image.flatten(1) for image in images], dim=1).double() / 255.0  # [C, pixels]
        total = total + values.sum(1)
        outer = outer + values @ values.T
        pixels += values.shape[1]
    mean = total / pixels
    covariance = outer / pixels - torch.outer(mean, mean)
    eigval, eigvec = torch.linalg.eigh(covariance)
    return eigval.flip(0).clamp(min=0).float(), eigvec.flip(1).float()


def _stack(crops: tuple[torch.Tensor, ...]) -> torch.Tensor:
    """TenCrop's ten views as one tensor: [10, C, h, w] of an image, [B, 10, C, h, w] of a batch [B, C, H, W]."""
    return torch.stack(crops, dim=-4)


def train_transform(
    augment: str,
    crop_size: int,
    resize_size: int,
    mean: Sequence[float],
    std: Sequence[float],
    lighting: PCALighting | None = None,
    crop_region: str = "whole",
) -> v2.Compose:
    """Training pipeline. augment="none": resize + centre crop; "flip_crop": resize + random crop + horizontal
    flip; "paper": flip_crop + PCA colour noise (`lighting`). Crops come from `crop_region` (module docstring)."""
    if augment not in AUGMENTS:
        raise BadValue(f"augment must be one of {'|'.join(AUGMENTS)}, got {augment!r}")
    if augment == "none":
        return eval_transform(crop_size, resize_size, mean, std)
    steps = [
        *_region(resize_size, crop_region),
        v2.RandomCrop(crop_size),
        v2.RandomHorizontalFlip(),
        v2.ToDtype(torch.float32, scale=True),
    ]
    if augment == "paper":
        if lighting is None:
            raise BadValue("augment=paper needs a PCALighting")
        steps.append(lighting)
    return v2.Compose([*steps, v2.Normalize(mean, std)])


def augmentation_seed(seed: int, draw: int) -> int:
    """The seed of one hand-out (`draw`) of one training image: its crop, flip and colour noise."""
    return hash((seed, draw)) & (2**63 - 1)


@contextlib.contextmanager
def drawing_from(seed: int) -> Iterator[None]:
    """The CPU generator (where torchvision draws its crops and flips, PCALighting its colour noise) seeded with
    `seed` inside, put back as it was afterwards: the one way both decode paths seed an image's augmentation."""
    with torch.random.fork_rng(devices=[]):
        torch.random.default_generator.manual_seed(seed)
        yield


# The steps of train_transform that draw at random (from the CPU generator, seeded per image by drawing_from)
RANDOM_STEPS = (v2.RandomCrop, v2.RandomHorizontalFlip, PCALighting)


def draws_at_random(transform: v2.Compose) -> bool:
    """Whether `transform` (one of this module's pipelines) makes random choices: augment=none and the evaluation
    pipelines do not, so they give the same tensor applied to a whole batch [B, C, H, W] at once."""
    return any(isinstance(step, RANDOM_STEPS) for step in transform.transforms)


def one_size(images: list[torch.Tensor]) -> bool:
    """Whether `images` all have one shape, so that they stack into one batch tensor."""
    return all(image.shape == images[0].shape for image in images)


def augment_batch(transform: v2.Compose, images: list[torch.Tensor], seeds: list[int]) -> torch.Tensor:
    """`transform` (a train_transform) applied to each of `images` (uint8 [C, H, W], any sizes, on any device) with
    its random choices drawn from `seeds` (augmentation_seed): the same tensor, bit for bit on one device, as
    stacking transform(image) drawn under the same seeds, with the float steps done once on the whole batch.

    The random choices come from the CPU generator whatever the images' device, so decoding on the GPU does not
    change what a run sees.
    """
    steps = list(transform.transforms)
    cut = next(i for i, step in enumerate(steps) if isinstance(step, v2.ToDtype))
    first_draw = next((i for i, step in enumerate(steps[:cut]) if isinstance(step, RANDOM_STEPS)), cut)
    if first_draw and one_size(images):
        # the resize (and centre square) before the first random step, once on the whole batch of equal-sized images
        images = list(v2.Compose(steps[:first_draw])(torch.stack(images)).unbind(0))
        steps, cut = steps[first_draw:], cut - first_draw
    per_image, on_batch = v2.Compose(steps[:cut]), steps[cut:]
    lighting = next((step for step in on_batch if isinstance(step, PCALighting)), None)  # augment=paper only
    crops, shifts = [], []
    for image, seed in zip(images, seeds, strict=True):
        with drawing_from(seed):
            crops.append(per_image(image))
            if lighting is not None:
                shifts.append(lighting.draw())  # drawn after the crop and flip, as the per-image pipeline does
    batch = torch.stack(crops)
    shift = torch.stack(shifts).to(batch.device)[:, :, None, None] if lighting is not None else None
    for step in on_batch:
        batch = batch + shift if step is lighting else step(batch)
    return batch


def _region(resize_size: int, crop_region: str) -> list:
    """Resize the short side to `resize_size`, then (centre_square) cut the central resize x resize square."""
    if crop_region not in CROP_REGIONS:
        raise BadValue(f"crop_region must be one of {'|'.join(CROP_REGIONS)}, got {crop_region!r}")
    return [v2.Resize(resize_size), *([v2.CenterCrop(resize_size)] if crop_region == "centre_square" else [])]


def eval_transform(
    crop_size: int,
    resize_size: int,
    mean: Sequence[float],
    std: Sequence[float],
    views: str = "centre",
    crop_region: str = "whole",
) -> v2.Compose:
    """Evaluation pipeline. views="centre": resize + centre crop -> [C, crop, crop]; "ten_crop": the paper's ten
    views (corners, centre and their mirror images, of `crop_region`) -> [10, C, crop, crop]."""
    if views not in TEST_VIEWS:
        raise BadValue(f"test_views must be one of {'|'.join(TEST_VIEWS)}, got {views!r}")
    to_float = [v2.ToDtype(torch.float32, scale=True), v2.Normalize(mean, std)]
    if views == "centre":  # the centre crop is the same in either region
        return v2.Compose([v2.Resize(resize_size), v2.CenterCrop(crop_size), *to_float])
    # Normalising once before cropping touches fewer pixels than normalising the ten overlapping crops.
    return v2.Compose([*_region(resize_size, crop_region), *to_float, v2.TenCrop(crop_size), _stack])
