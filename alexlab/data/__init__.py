"""Data for the AlexNet ablations: image sources and one LightningDataModule that splits and transforms them.

A source is any object with a `num_classes` attribute, a `classes` attribute (list of names; folder sources fill
both in `load()`) and `load() -> (train_dataset, test_dataset)` whose items are (uint8 tensor [C, H, W], int label):
alexlab.data.synthetic.SyntheticShapes, alexlab.data.fashion_mnist.FashionMNIST, alexlab.data.cifar.CIFAR,
alexlab.data.folders.ImageNet / Imagenette / ImageFolder.
"""

from __future__ import annotations

import lightning as L
import torch
from torch.utils.data import DataLoader, Dataset, random_split

from alexlab.data.transforms import (
    AUGMENTS,
    IMAGENET_EIGVAL,
    IMAGENET_EIGVEC,
    PCAS,
    TEST_VIEWS,
    PCALighting,
    default_resize,
    eval_transform,
    pixel_pca,
    train_transform,
)

__all__ = ["DataNotFoundError", "ImageDataModule", "InMemoryImages"]


class DataNotFoundError(FileNotFoundError):
    """A data set is not on disk (or could not be downloaded); the one-line message says where it was looked for
    and how to get it."""


class InMemoryImages(Dataset):
    """Items (images[i], int(labels[i])) of one uint8 [N, C, H, W] tensor; an item is a view, never a copy.

    DataLoader workers fork and share the tensor's memory, so neither workers nor items copy the data.
    """

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, classes: list[str]):
        if images.dtype != torch.uint8 or images.ndim != 4 or len(images) != len(labels):
            raise ValueError(
                f"InMemoryImages needs uint8 [N, C, H, W] images and N labels, got "
                f"{images.dtype} {tuple(images.shape)} and {len(labels)} labels"
            )
        self.images = images
        self.labels = labels.to(torch.int64)
        self.classes = classes

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        return self.images[index], int(self.labels[index])


class _Transformed(Dataset):
    def __init__(self, dataset: Dataset, transform):
        self.dataset = dataset
        self.transform = transform

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        image, label = self.dataset[index]
        return self.transform(image), label


class ImageDataModule(L.LightningDataModule):
    """Train / val / test loaders of a source, val split off the training images with a generator seeded by `seed`.

    Batches are (x float32 [B, C, crop, crop] normalised, y int64 [B]); with test_views="ten_crop" the test x is
    [B, 10, C, crop, crop] (the paper's four corners + centre and their flips); val always uses the centre view.
    augment: "none" | "flip_crop" (the paper's random crops + flips) | "paper" (+ PCA colour noise, sigma pca_std,
    along the ImageNet principal components or, with pca="data", those of the training pixels).
    resize_size is the short side before cropping; None means the paper's 256/224 ratio.
    """

    def __init__(
        self,
        source,
        num_classes: int,
        channels: int,
        mean: list[float],
        std: list[float],
        batch_size: int = 128,
        num_workers: int = 2,
        val_size: int | float = 5000,
        crop_size: int = 224,
        resize_size: int | None = None,
        augment: str = "flip_crop",
        pca: str = "imagenet",
        pca_std: float = 0.1,
        test_views: str = "centre",
        seed: int = 0,
        pin_memory: bool = False,
        image_size: int | None = None,
    ):
        super().__init__()
        resize_size = default_resize(crop_size) if resize_size is None else resize_size
        checks = [
            (augment in AUGMENTS, f"augment must be one of {'|'.join(AUGMENTS)}, got {augment!r}"),
            (test_views in TEST_VIEWS, f"test_views must be one of {'|'.join(TEST_VIEWS)}, got {test_views!r}"),
            (pca in PCAS, f"pca must be one of {'|'.join(PCAS)}, got {pca!r}"),
            (num_classes >= 2, f"num_classes must be >= 2, got {num_classes}"),
            (channels >= 1, f"channels must be >= 1, got {channels}"),
            (
                len(mean) == channels and len(std) == channels,
                f"mean and std need one value per channel ({channels}), got mean={list(mean)} std={list(std)}",
            ),
            (all(s > 0 for s in std), f"std values must be > 0, got {list(std)}"),
            (batch_size >= 1, f"batch_size must be >= 1, got {batch_size}"),
            (num_workers >= 0, f"num_workers must be >= 0, got {num_workers}"),
            (crop_size >= 1, f"crop_size must be >= 1, got {crop_size}"),
            (resize_size >= crop_size, f"resize_size ({resize_size}) must be >= crop_size ({crop_size})"),
            (pca_std >= 0, f"pca_std must be >= 0, got {pca_std}"),
            (
                not isinstance(val_size, bool) and val_size >= 0 and (isinstance(val_size, int) or val_size < 1),
                f"val_size must be an image count >= 0 or a fraction in [0, 1), got {val_size!r}",
            ),
            (
                not (augment == "paper" and pca == "imagenet" and channels != 3),
                f"augment=paper with pca=imagenet needs RGB images but channels={channels}; use data.pca=data",
            ),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(message)
        self.source = source
        self.image_size = image_size  # the source's native side; model=small takes it as its input size
        self.num_classes = num_classes
        self.channels = channels
        self.mean = list(mean)
        self.std = list(std)
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.val_size = val_size
        self.crop_size = crop_size
        self.resize_size = resize_size
        self.augment = augment
        self.pca = pca
        self.pca_std = pca_std
        self.test_views = test_views
        self.seed = seed
        self.pin_memory = pin_memory
        self.train_set: Dataset | None = None
        self.val_set: Dataset | None = None
        self.test_set: Dataset | None = None
        self.classes: list[str] = []

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is not None:  # Lightning calls setup once per stage; load and split only once
            return
        train, test = self.source.load()
        name = type(self.source).__name__
        if self.source.num_classes != self.num_classes:
            raise ValueError(f"{name} has {self.source.num_classes} classes but num_classes={self.num_classes}")
        image_channels = train[0][0].shape[0]
        if image_channels != self.channels:
            raise ValueError(f"{name} images have {image_channels} channel(s) but channels={self.channels}")

        val_count = round(self.val_size * len(train)) if isinstance(self.val_size, float) else self.val_size
        if val_count >= len(train):
            raise ValueError(f"val_size={self.val_size} leaves no training images out of {len(train)}")
        generator = torch.Generator().manual_seed(self.seed)
        fit, val = random_split(train, [len(train) - val_count, val_count], generator=generator)
        if len(fit) < self.batch_size:  # drop_last would leave no training batch at all
            raise ValueError(f"batch_size={self.batch_size} is more than the {len(fit)} training images")

        lighting = None
        if self.augment == "paper":
            if self.pca == "imagenet":
                eigval, eigvec = IMAGENET_EIGVAL, IMAGENET_EIGVEC
            else:
                eigval, eigvec = pixel_pca(fit, seed=self.seed)
            lighting = PCALighting(eigval, eigvec, self.pca_std)
        sizes = (self.crop_size, self.resize_size, self.mean, self.std)
        self.train_set = _Transformed(fit, train_transform(self.augment, *sizes, lighting=lighting))
        self.val_set = _Transformed(val, eval_transform(*sizes))
        self.test_set = _Transformed(test, eval_transform(*sizes, views=self.test_views))
        classes = getattr(self.source, "classes", None) or getattr(train, "classes", None)
        self.classes = list(classes) if classes else [str(label) for label in range(self.num_classes)]

    def _loader(self, dataset: Dataset | None, train: bool) -> DataLoader:
        if dataset is None:
            raise RuntimeError("ImageDataModule: call setup() before asking for a dataloader")
        sampler = None
        if not train and torch.distributed.is_available() and torch.distributed.is_initialized():
            # Under DDP, Lightning's DistributedSampler pads the shards to equal length by repeating images, which
            # would count them twice in the test error; this one gives each rank its own images exactly once (the
            # metrics sum their counts over the ranks).
            from lightning.pytorch.overrides.distributed import UnrepeatedDistributedSampler

            sampler = UnrepeatedDistributedSampler(dataset, shuffle=False)
        return DataLoader(
            dataset,
            batch_size=self.batch_size,
            shuffle=train,
            sampler=sampler,
            drop_last=train,
            num_workers=self.num_workers,
            pin_memory=self.pin_memory,
            persistent_workers=self.num_workers > 0,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader(self.train_set, train=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.val_set, train=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader(self.test_set, train=False)
