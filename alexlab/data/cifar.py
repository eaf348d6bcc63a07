"""CIFAR-10 and CIFAR-100 (Krizhevsky 2009): 50000 train and 10000 test 32x32 RGB images, via torchvision."""

from __future__ import annotations

from pathlib import Path

import torch
import torchvision
from torch.utils.data import Dataset

from alexlab.data.images import DataNotFoundError, InMemoryImages
from alexlab.errors import BadValue


class CIFAR:
    """Source of CIFAR-10 (num_classes=10) or CIFAR-100 (num_classes=100) as two InMemoryImages, uint8
    [N, 3, 32, 32] each."""

    def __init__(self, num_classes: int = 10, root: str = "~/.cache/alexlab/data", download: bool = False):
        if num_classes not in (10, 100):
            raise BadValue(f"CIFAR has 10 or 100 classes, got num_classes={num_classes}")
        self.num_classes = num_classes
        self.root = Path(root).expanduser()
        self.download = download
        self.classes: list[str] = []

    def load(self) -> tuple[Dataset, Dataset]:
        return self._split(train=True), self._split(train=False)

    def _split(self, train: bool) -> InMemoryImages:
        dataset_class = torchvision.datasets.CIFAR10 if self.num_classes == 10 else torchvision.datasets.CIFAR100
        name = f"CIFAR-{self.num_classes}"
        try:
            dataset = dataset_class(self.root, train=train, download=self.download)
        except (OSError, RuntimeError) as error:
            if self.download:
                reason = " ".join(str(error).split())
                raise DataNotFoundError(
                    f"downloading {name} to {self.root} failed ({reason}); "
                    "check the network or put the extracted archive there"
                ) from error
            raise DataNotFoundError(
                f"{name} not found in {self.root}; set data.source.download=true when online, "
                "or put the extracted python archive there"
            ) from error
        self.classes = list(dataset.classes)
        # [N, 32, 32, 3] -> [N, 3, 32, 32], made contiguous once so that each item is a contiguous view.
        images = torch.from_numpy(dataset.data).permute(0, 3, 1, 2).contiguous()
        return InMemoryImages(images, torch.tensor(dataset.targets), self.classes)
