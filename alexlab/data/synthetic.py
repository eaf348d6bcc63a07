"""SyntheticShapes: a procedurally drawn, learnable image-classification task that needs no files and no network.

Each class is a combination of three cues, so that no single one decides the label:
- a shape (signed-distance masks: disc, square, diamond, ring, cross, triangle, bar, frame),
- a colour (the hue is tied to the class and jittered into its neighbours' range),
- a texture (stripes whose orientation and frequency are tied to the class),
and every image adds nuisance variation: position, scale, a slight rotation, brightness, saturation, background
colour, a background gradient and pixel noise. Item `i` of a seed is drawn from its own torch.Generator, so it is
the same in every process and at any resolution, and nothing is stored.

An image is drawn with NumPy's float32 arithmetic on the generator's numbers: a few dozen operations on arrays of an
image's size, where NumPy's cost per call is a quarter of torch's (0.2 against 0.7 ms an image at 16 px), and the
training runs of the smoke settings draw every image they see.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch.utils.data import Dataset

from alexlab.errors import BadValue

SHAPES = ("disc", "square", "diamond", "ring", "cross", "triangle", "bar", "frame")
STRIPE_FREQUENCIES = (1.5, 2.5, 3.5)  # stripe periods across the shape's radius
TEST_START = 2**31  # test items are drawn from global indices TEST_START, TEST_START + 1, ...


F32 = np.float32


def _shape_distance(shape: int, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Signed distance (negative inside) to a shape of radius about 1 in the local coordinates u, v."""
    au, av = np.abs(u), np.abs(v)
    name = SHAPES[shape]
    if name == "disc":
        return np.sqrt(u * u + v * v) - F32(1.0)
    if name == "square":
        return np.maximum(au, av) - F32(0.85)
    if name == "diamond":
        return (au + av) * F32(0.7071) - F32(0.8)
    if name == "ring":
        return np.abs(np.sqrt(u * u + v * v) - F32(0.72)) - F32(0.28)
    if name == "cross":
        return np.minimum(np.maximum(au - F32(1.0), av - F32(0.33)), np.maximum(au - F32(0.33), av - F32(1.0)))
    if name == "triangle":
        return np.maximum(au * F32(0.866) - v * F32(0.5), v) - F32(0.5)
    if name == "bar":
        return np.maximum(au - F32(1.0), av - F32(0.38))
    return np.abs(np.maximum(au, av) - F32(0.72)) - F32(0.2)  # frame


def _hsv_to_rgb(hue, saturation, value) -> np.ndarray:
    """One HSV colour (float32 numbers in [0, 1]) to an RGB array [3]."""
    k = (np.array([5.0, 3.0, 1.0], F32) + hue * F32(6.0)) % F32(6.0)
    return value - value * saturation * np.clip(np.minimum(k, F32(4.0) - k), F32(0.0), F32(1.0))


def _lerp(start: np.ndarray, end: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """torch.lerp's formula: from the nearer end, so that weight 1 gives `end` exactly."""
    return np.where(weight < 0.5, start + weight * (end - start), end - (end - start) * (F32(1.0) - weight))


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
        # Pixel centres on [-1, 1]; the only per-resolution state, two image_size x image_size arrays.
        axis = (torch.arange(image_size, dtype=torch.float32) + 0.5) * (2.0 / image_size) - 1.0
        self._y, self._x = (grid.numpy() for grid in torch.meshgrid(axis, axis, indexing="ij"))

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
        r = torch.rand(16, generator=generator).numpy()
        x, y = self._x, self._y

        # Placement: centre, radius, a small rotation (a large one would turn squares into diamonds).
        radius = F32(0.3) + F32(0.3) * r[0]
        cx, cy = (
            (r[1] - F32(0.5)) * F32(2.0) * (F32(0.95) - radius),
            (r[2] - F32(0.5)) * F32(2.0) * (F32(0.95) - radius),
        )
        rotation = (r[3] - F32(0.5)) * F32(0.5)
        cos, sin = np.cos(rotation), np.sin(rotation)
        dx, dy = (x - cx) / radius, (y - cy) / radius
        u, v = cos * dx + sin * dy, cos * dy - sin * dx

        # Anti-aliased mask: distance measured in pixels (a pixel is 2 / image_size / radius in local units).
        distance = _shape_distance(shape, u, v) * (radius * F32(self.image_size / 2.0))
        mask = np.clip(F32(0.5) - distance, F32(0.0), F32(1.0))

        # Texture: stripes across the shape; angle and frequency jittered around the class's.
        stripe_angle = F32(angle) + (r[4] - F32(0.5)) * F32(0.5)
        stripe_frequency = F32(frequency) * (F32(0.85) + F32(0.3) * r[5])
        phase = r[6] * F32(2.0 * math.pi)
        along = u * np.cos(stripe_angle) + v * np.sin(stripe_angle)
        stripes = np.sin(along * (F32(math.pi) * stripe_frequency) + phase)

        # Colour: the class hue jittered by up to 0.8 of the gap to a neighbouring class.
        object_hue = (F32(hue) + (r[7] - F32(0.5)) * F32(1.6 / self.num_classes)) % F32(1.0)
        foreground = _hsv_to_rgb(object_hue, F32(0.55) + F32(0.45) * r[8], F32(0.6) + F32(0.4) * r[9])
        background = _hsv_to_rgb(r[10], F32(0.5) * r[11], F32(0.15) + F32(0.7) * r[12])
        contrast = F32(0.2) + F32(0.25) * r[13]
        shading = F32(1.0) + contrast * stripes  # [H, W]

        gradient = F32(1.0) + F32(0.3) * (r[14] - F32(0.5)) * (x + y)
        image = _lerp(background[:, None, None] * gradient, foreground[:, None, None] * shading, mask)
        if self.channels == 1:
            image = (image * np.array([0.299, 0.587, 0.114], F32)[:, None, None]).sum(0, keepdims=True)
        brightness = F32(0.75) + F32(0.5) * r[15]
        noise = torch.randn(image.shape, generator=generator).numpy() * F32(0.06)
        image = np.clip(image * brightness + noise, F32(0.0), F32(1.0))
        return torch.from_numpy(np.round(image * F32(255.0)).astype(np.uint8)), label


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
