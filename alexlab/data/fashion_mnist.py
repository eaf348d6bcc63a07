"""Fashion-MNIST (Xiao et al. 2017): 60000 train and 10000 test 28x28 grayscale images of 10 clothing classes.

Read from the IDX files of the Debian package dataset-fashion-mnist when present, else from torchvision's copy
(which can download it).
"""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import torch
import torchvision
from torch.utils.data import Dataset

from alexlab.data.images import DataNotFoundError, InMemoryImages
from alexlab.errors import BadValue

CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
_IDX_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path: str | Path) -> np.ndarray:
    """An IDX file (gzipped or not, told apart by its first bytes) as a writable numpy array of its shape."""
    data = Path(path).read_bytes()
    if data[:2] == b"\x1f\x8b":
        data = gzip.decompress(data)
    if len(data) < 4 or data[:2] != b"\x00\x00" or data[2] not in _IDX_DTYPES:
        raise BadValue(f"{path} is not an IDX file")
    ndim = data[3]
    shape = tuple(int(n) for n in np.frombuffer(data, dtype=">i4", count=ndim, offset=4))
    dtype = np.dtype(_IDX_DTYPES[data[2]])
    array = np.frombuffer(bytearray(data), dtype=dtype, offset=4 + 4 * ndim)
    if array.size != int(np.prod(shape)):
        raise BadValue(f"{path} holds {array.size} values but its header says shape {shape}")
    return array.reshape(shape).astype(dtype.newbyteorder("="), copy=False)


def _find_idx(root: Path, name: str) -> Path | None:
    for candidate in (root / f"{name}.gz", root / name):
        if candidate.is_file():
            return candidate
    return None


class FashionMNIST:
    """Source of Fashion-MNIST as two InMemoryImages, uint8 [N, 1, 28, 28] each, decoded once."""

    num_classes = 10
    classes = CLASSES

    def __init__(
        self,
        root: str = "/usr/share/datasets/fashion-mnist",
        download_root: str = "~/.cache/alexlab/data",
        download: bool = False,
    ):
        self.root = Path(root).expanduser()
        self.download_root = Path(download_root).expanduser()
        self.download = download

    def load(self) -> tuple[Dataset, Dataset]:
        return self._split("train"), self._split("t10k")

    def _split(self, prefix: str) -> InMemoryImages:
        images_path = _find_idx(self.root, f"{prefix}-images-idx3-ubyte")
        labels_path = _find_idx(self.root, f"{prefix}-labels-idx1-ubyte")
        if images_path and labels_path:
            images = torch.from_numpy(read_idx(images_path))
            labels = torch.from_numpy(read_idx(labels_path).astype(np.int64))
        else:
            dataset = self._torchvision(train=prefix == "train")
            images, labels = dataset.data, dataset.targets
        return InMemoryImages(images.unsqueeze(1), labels, CLASSES)

    def _torchvision(self, train: bool) -> torchvision.datasets.FashionMNIST:
        try:
            return torchvision.datasets.FashionMNIST(self.download_root, train=train, download=self.download)
        except (OSError, RuntimeError) as error:
            how = "`apt-get install dataset-fashion-mnist`, or data.source.download=true when online"
            if self.download:
                reason = " ".join(str(error).split())
                raise DataNotFoundError(
                    f"Fashion-MNIST is not in {self.root} and downloading it to "
                    f"{self.download_root} failed ({reason}); get it with {how}"
                ) from error
            raise DataNotFoundError(
                f"Fashion-MNIST not found in {self.root} or {self.download_root}; get it with {how}"
            ) from error
