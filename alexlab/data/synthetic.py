"""SyntheticShapes: a procedurally drawn, learnable image-classification task that needs no files and no network.

Each class is a combination of three cues, so that no single one decides the label:
- a shape (signed-distance masks: disc, square, diamond, ring, cross, triangle, bar, frame),
- a colour (the hue is tied to the class and jittered into its neighbours' range),
- a texture (stripes whose orientation and frequency are tied to the class),
and every image adds nuisance variation: position, scale, a slight rotation, brightness, saturation, background
colour, a background gradient and pixel noise. Item `i` of a seed is drawn from its own torch.Generator, so it is
the same in every process and at any resolution, and nothing is stored.
"""

from __future__ import annotations

import math

import torch
from torch.utils.data import Dataset

from alexlab.errors import BadValue

SHAPES = ("disc", "square", "diamond", "ring", "cross", "triangle", "bar", "frame")
STRIPE_FREQUENCIES = (1.5, 2.5, 3.5)  # stripe periods across the shape's radius
TEST_START = 2**31  # test items are drawn from global indices TEST_START, TEST_START + 1, ...


def _shape_distance(shape: int, u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Signed distance (negative inside) to a shape of radius about 1 in the local coordinates u, v."""
    au, av = u.abs(), v.abs()
    name = SHAPES[shape]
    if name == "disc":
        return torch.sqrt(u * u + v * v) - 1.0
    if name == "square":
        return torch.maximum(au, av) - 0.85
    if name == "diamond":
        return (au + av) * 0.7071 - 0.8
    if name == "ring":
        return (torch.sqrt(u * u + v * v) - 0.72).abs() - 0.28
    if name == "cross":
        return torch.minimum(torch.maximum(au - 1.0, av - 0.33), torch.maximum(au - 0.33, av - 1.0))
    if name == "triangle":
        return torch.maximum(au * 0.866 - v * 0.5, v) - 0.5
    if name == "bar":
        return torch.maximum(au - 1.0, av - 0.38)
    return (torch.maximum(au, av) - 0.72).abs() - 0.2  # frame


def _hsv_to_rgb(hue: torch.Tensor, saturation: torch.Tensor, value: torch.Tensor) -> torch.Tensor:
    """One HSV colour (0-d tensors in [0, 1]) to an RGB tensor [3]."""
    k = (torch.tensor([5.0, 3.0, 1.0]) + hue * 6.0) % 6.0
    return value - value * saturation * torch.clamp(torch.minimum(k, 4.0 - k), 0.0, 1.0)


class SyntheticShapes:
    """Source of two SyntheticShapes splits: `load()` returns (train, test) datasets of (uint8 [C, H, W], label).

    Train item i is global index i and test item i is global index TEST_START + i, so the splits never share an
    image and the test set does not depend on train_size. Labels cycle through the classes, so the splits are
    balanced.
    """

    def __init__(
        self,
        num_classes: int = 10,
        image_size: int = 32,
        channels: int = 3,
        train_size: int = 10000,
        test_size: int = 2000,
        seed: int = 0,
    ):
        if num_classes < 2:
            raise BadValue(f"SyntheticShapes needs num_classes >= 2, got {num_classes}")
        if image_size < 8:
            raise BadValue(f"SyntheticShapes needs image_size >= 8, got {image_size}")
        if channels not in (1, 3):
            raise BadValue(f"SyntheticShapes draws 1 (grayscale) or 3 (RGB) channels, got channels={channels}")
        if not 0 < train_size <= TEST_START or not 0 < test_size <= TEST_START:
            raise BadValue(f"SyntheticShapes sizes must be in 1..2**31, got {train_size=} {test_size=}")
        self.num_classes = num_classes
        self.image_size = image_size
        self.channels = channels
        self.train_size = train_size
        self.test_size = test_size
        self.seed = seed
        self.classes = [self._class_name(label) for label in range(num_classes)]
        # Pixel centres on [-1, 1]; the only per-resolution state, two image_size x image_size tensors.
        axis = (torch.arange(image_size, dtype=torch.float32) + 0.5) * (2.0 / image_size) - 1.0
        self._y, self._x = torch.meshgrid(axis, axis, indexing="ij")

    def _class_cues(self, label: int) -> tuple[int, float, float, float]:
        """(shape, hue, stripe angle, stripe frequency) of a class; consecutive classes differ in every cue."""
        shape = label % len(SHAPES)
        hue = label / self.num_classes
        angle = math.pi * ((label * 3) % self.num_classes) / self.num_classes
        frequency = STRIPE_FREQUENCIES[label % len(STRIPE_FREQUENCIES)]
        return shape, hue, angle, frequency

    def _class_name(self, label: int) -> str:
        shape, hue, angle, frequency = self._class_cues(label)
        return f"{SHAPES[shape]}-hue{round(hue * 360):03d}-stripes{round(math.degrees(angle)):03d}x{frequency}"

    def load(self) -> tuple[Dataset, Dataset]:
        return _ShapesSplit(self, 0, self.train_size), _ShapesSplit(self, TEST_START, self.test_size)

    def render(self, index: int) -> tuple[torch.Tensor, int]:
        """The image (uint8 [C, H, W]) and label of global index `index`."""
        label = index % self.num_classes
        shape, hue, angle, frequency = self._class_cues(label)
        # torch's CPU generator keeps only 32 bits of its seed, so the seed shifts the index within 2**32: no two
        # items of one seed share a stream, and the golden-ratio multiplier spreads the seeds far apart.
        generator = torch.Generator().manual_seed((self.seed * 0x9E3779B1 + index) % 2**32)
        r = torch.rand(16, generator=generator)

        # Placement: centre, radius, a small rotation (a large one would turn squares into diamonds).
        radius = 0.3 + 0.3 * r[0]
        cx, cy = (r[1] - 0.5) * 2.0 * (0.95 - radius), (r[2] - 0.5) * 2.0 * (0.95 - radius)
        rotation = (r[3] - 0.5) * 0.5
        cos, sin = torch.cos(rotation), torch.sin(rotation)
        dx, dy = (self._x - cx) / radius, (self._y - cy) / radius
        u, v = cos * dx + sin * dy, cos * dy - sin * dx

        # Anti-aliased mask: distance measured in pixels (a pixel is 2 / image_size / radius in local units).
        distance = _shape_distance(shape, u, v) * (radius * self.image_size / 2.0)
        mask = torch.clamp(0.5 - distance, 0.0, 1.0)

        # Texture: stripes across the shape; angle and frequency jittered around the class's.
        stripe_angle = angle + (r[4] - 0.5) * 0.5
        stripe_frequency = frequency * (0.85 + 0.3 * r[5])
        phase = r[6] * 2.0 * math.pi
        along = u * torch.cos(stripe_angle) + v * torch.sin(stripe_angle)
        stripes = torch.sin(along * (math.pi * stripe_frequency) + phase)

        # Colour: the class hue jittered by up to 0.8 of the gap to a neighbouring class.
        object_hue = (hue + (r[7] - 0.5) * 1.6 / self.num_classes) % 1.0
        foreground = _hsv_to_rgb(object_hue, 0.55 + 0.45 * r[8], 0.6 + 0.4 * r[9])
        background = _hsv_to_rgb(r[10], 0.5 * r[11], 0.15 + 0.7 * r[12])
        contrast = 0.2 + 0.25 * r[13]
        shading = 1.0 + contrast * stripes  # [H, W]

        gradient = 1.0 + 0.3 * (r[14] - 0.5) * (self._x + self._y)
        image = torch.lerp(background[:, None, None] * gradient, foreground[:, None, None] * shading, mask)
        if self.channels == 1:
            image = (image * torch.tensor([0.299, 0.587, 0.114])[:, None, None]).sum(0, keepdim=True)
        brightness = 0.75 + 0.5 * r[15]
        noise = torch.randn(image.shape, generator=generator) * 0.06
        image = (image * brightness + noise).clamp_(0.0, 1.0)
        return image.mul_(255.0).round_().to(torch.uint8), label


class _ShapesSplit(Dataset):
    """Items start, start + 1, ..., start + size - 1 of a SyntheticShapes source."""

    def __init__(self, shapes: SyntheticShapes, start: int, size: int):
        self.shapes = shapes
        self.start = start
        self.size = size
        self.classes = shapes.classes

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        if not -self.size <= index < self.size:
            raise IndexError(f"index {index} out of range for {self.size} items")
        return self.shapes.render(self.start + index % self.size)
