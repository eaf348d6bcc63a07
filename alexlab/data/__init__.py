"""Data for the AlexNet ablations: image sources and one LightningDataModule that splits and transforms them.

A source is any object with a `num_classes` attribute, a `classes` attribute (list of names; folder sources fill
both in `load()`) and `load() -> (train_dataset, test_dataset)` whose items are (uint8 tensor [C, H, W], int label):
alexlab.data.synthetic.SyntheticShapes, alexlab.data.fashion_mnist.FashionMNIST, alexlab.data.cifar.CIFAR,
alexlab.data.folders.ImageNet / Imagenette / ImageFolder.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, replace
from functools import partial

import lightning as L
import torch
from torch.utils.data import DataLoader, Dataset, Sampler, Subset, random_split
from torchdata.stateful_dataloader import StatefulDataLoader
from torchvision.transforms import v2

from alexlab.data.transforms import (
    AUGMENTS,
    CROP_REGIONS,
    IMAGENET_EIGVAL,
    IMAGENET_EIGVEC,
    PCAS,
    SCALES,
    TEST_VIEWS,
    PCALighting,
    augment_batch,
    augmentation_seed,
    default_resize,
    drawing_from,
    draws_at_random,
    eval_transform,
    one_size,
    pixel_pca,
    spread_of,
    train_transform,
)
from alexlab.errors import BadFile, BadValue, NotFound

__all__ = ["BadImageError", "DataNotFoundError", "EncodedBatch", "ImageDataModule", "InMemoryImages"]
log = logging.getLogger("alexlab")
# data.bad_images=skip names this many left-out files in the log (then counts them)
NAMED_BAD_IMAGES = 5
DECODES = ("auto", "loader", "device")
SPLITS = ("train", "val", "train_eval", "test")


class DataNotFoundError(NotFound):
    """A data set is not on disk (or could not be downloaded); the one-line message says where it was looked for
    and how to get it."""


class BadImageError(BadFile):
    """An image file that cannot be decoded (truncated, not an image, unreadable); the message names it."""

    def __init__(self, message: str, path: str | None = None, reason: str | None = None):
        # raised in a DataLoader worker, it comes back as BadImageError("Caught BadImageError in DataLoader worker
        # process 0. Original Traceback ... BadImageError: <message>"): keep the message
        if message.startswith("Caught ") and "BadImageError: " in message:
            message = message.rstrip().rpartition("BadImageError: ")[2]
        super().__init__(message)
        self.path, self.reason = path, reason


class _SkipUnreadable(Dataset):
    """Items of `dataset` with the image files that cannot be decoded left out (data.bad_images=skip): the place of
    one goes to the next readable item of the same split, so batches stay full. The flags of the unreadable items
    live in shared memory: the DataLoader workers and the main process see the same ones, and each file is tried
    (and logged) only once."""

    def __init__(self, dataset: Dataset, split: str):
        self.dataset = dataset
        self.split = split
        self.unreadable = torch.zeros(len(dataset), dtype=torch.bool).share_memory_()

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        for step in range(len(self.dataset)):
            item = (index + step) % len(self.dataset)
            if self.unreadable[item]:
                continue
            try:
                return self.dataset[item]
            except BadImageError as error:
                self.unreadable[item] = True
                if int(self.unreadable.sum()) <= NAMED_BAD_IMAGES:
                    log.warning("data.bad_images=skip: left out %s (%s)", error.path, error.reason)
        raise BadImageError(f"data.bad_images=skip: no image of the {self.split} split can be decoded")


class InMemoryImages(Dataset):
    """Items (images[i], int(labels[i])) of one uint8 [N, C, H, W] tensor; an item is a view, never a copy.

    DataLoader workers fork and share the tensor's memory, so neither workers nor items copy the data.
    """

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, classes: list[str]):
        if images.dtype != torch.uint8 or images.ndim != 4 or len(images) != len(labels):
            raise BadValue(
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
    """Items of `dataset` through `transform`. Keyed by (index, draw) (DrawSampler), the transform's random
    choices come from a generator seeded with (seed, draw): each image handed out gets its own crop, flip and colour
    noise, the same whatever the number of workers, and the same again in a run resumed from a checkpoint."""

    def __init__(self, dataset: Dataset, transform, seed: int = 0):
        self.dataset = dataset
        self.transform = transform
        self.seed = seed

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key: int | tuple[int, int]) -> tuple[torch.Tensor, int]:
        if isinstance(key, int):
            image, label = self.dataset[key]
            return self.transform(image), label
        index, draw = key
        image, label = self.dataset[index]
        with drawing_from(augmentation_seed(self.seed, draw)):
            return self.transform(image), label

    def __getitems__(self, keys: list) -> list[tuple[torch.Tensor, int]]:
        """The items of one batch (the DataLoader asks for a batch's keys at once): the same tensors, bit for bit, as
        [self[key] for key in keys], with the transform's float steps (and, for a transform without random
        choices and images of one size, every step) done once on the whole batch. Per image, torchvision's v2
        steps cost about 140 us of Python for a 28x28 image, more than the quickstart network's training step
        spends on it; the DataLoader's worker then takes a core's share from the training: measured, 4,600
        images/s from one worker, where the whole batch at once costs about 10 us an image (46,000 images/s)."""
        pairs = [self.dataset[key if isinstance(key, int) else key[0]] for key in keys]
        images, labels = [image for image, _ in pairs], [label for _, label in pairs]
        if draws_at_random(self.transform):
            if any(isinstance(key, int) for key in keys):  # drawn from the global generator: image by image
                return [self[key] for key in keys]
            batch = augment_batch(self.transform, images, [augmentation_seed(self.seed, draw) for _, draw in keys])
        elif one_size(images):
            batch = self.transform(torch.stack(images))
        else:  # files of several sizes: resized image by image
            return [self[key] for key in keys]
        return list(zip(batch.unbind(0), labels, strict=True))


class DrawSampler(Sampler):
    """Yields (index, draw) in an order shuffled by (seed, epoch); draw = epoch x len + position names this hand-out
    of the image (_Transformed turns it into the image's augmentation seed). Lightning calls set_epoch at every
    epoch's start (in a resumed run too, and through its DDP sampler wrapper), and the loader's checkpoint state
    holds the iterator's position: a resumed run goes on with the same images in the same order, augmented alike."""

    def __init__(self, data_source, seed: int):
        self.size = len(data_source)
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.size

    def __iter__(self):
        return _DrawIterator(self, self.epoch)


class _DrawIterator:
    def __init__(self, sampler: DrawSampler, epoch: int, position: int = 0):
        generator = torch.Generator().manual_seed(hash((sampler.seed, epoch)) & (2**63 - 1))
        self.sampler = sampler
        self.order = torch.randperm(sampler.size, generator=generator).tolist()
        self.epoch = epoch
        self.position = position
        self.started = False

    def __iter__(self):
        return self

    def __next__(self) -> tuple[int, int]:
        if not self.started:
            self.started = True
            if self.sampler.epoch > self.epoch:
                # Resuming from an epoch's end: Lightning made this iterator (and gave it the checkpoint's state)
                # before it set the new epoch; that epoch starts afresh.
                self.__init__(self.sampler, self.sampler.epoch)
                self.started = True
        if self.position == len(self.order):
            raise StopIteration
        self.position += 1
        return self.order[self.position - 1], self.epoch * len(self.order) + self.position - 1

    def state_dict(self) -> dict:
        return {"epoch": self.epoch, "position": self.position}

    def load_state_dict(self, state: dict) -> None:
        self.__init__(self.sampler, state["epoch"], state["position"])


class _EncodedSplit(Dataset):
    """Items (file bytes, label, path, draw) of a split of EncodedFiles, keyed by (index, draw) (DrawSampler) in
    training or by index (draw -1) in val and test."""

    def __init__(self, dataset: Dataset):
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key: int | tuple[int, int]) -> tuple[torch.Tensor, int, str, int]:
        index, draw = key if isinstance(key, tuple) else (key, -1)
        return (*self.dataset[index], draw)


@dataclass
class EncodedBatch:
    """A batch of image files not yet decoded (data.decode=device); ImageDataModule.transfer_batch_to_device turns
    it into (x, y) on the training device. The files' bytes travel from the worker as one tensor (one shared-memory
    block per batch, not one per image)."""

    data: torch.Tensor  # the files' bytes one after the other, uint8 [total], on the CPU
    lengths: list[int]  # each file's byte count
    labels: torch.Tensor
    draws: torch.Tensor  # each training image's DrawSampler draw (its augmentation seed); -1 in val and test
    paths: list[str]
    split: str

    @property
    def encoded(self) -> list[torch.Tensor]:
        """Each file's bytes, uint8 [n] (views of `data`)."""
        return list(self.data.split(self.lengths))

    def pin_memory(self) -> EncodedBatch:
        """DataLoader(pin_memory=True) calls this: page-locked bytes reach the GPU's decoder faster."""
        return replace(self, data=self.data.pin_memory())


def collate_encoded(items: list[tuple[torch.Tensor, int, str, int]], split: str) -> EncodedBatch:
    encoded, labels, paths, draws = zip(*items, strict=True)
    lengths = [len(data) for data in encoded]
    return EncodedBatch(torch.cat(encoded), lengths, torch.tensor(labels), torch.tensor(draws), list(paths), split)


def balanced_subset(split: Subset, per_class: int, num_classes: int, seed: int) -> Subset:
    """`per_class` images of each of `num_classes` classes of `split` (a random_split of a source's training set),
    the first of each class in an order shuffled with `seed`; BadValue where a class has fewer."""
    labels = labels_of(split.dataset)
    indices = torch.tensor(split.indices)
    order = indices[torch.randperm(len(indices), generator=torch.Generator().manual_seed(seed))]
    chosen = []
    for label in range(num_classes):
        of_class = order[labels[order] == label][:per_class]
        if len(of_class) < per_class:
            raise BadValue(f"data.train_per_class={per_class}: class {label} has only {len(of_class)} training images")
        chosen.append(of_class)
    return Subset(split.dataset, torch.cat(chosen).sort().values.tolist())


def labels_of(dataset: Dataset) -> torch.Tensor:
    """Every item's label: the dataset's own tensor or list where it keeps one, else read item by item."""
    for name in ("labels", "targets"):
        if hasattr(dataset, name):
            return torch.as_tensor(getattr(dataset, name))
    return torch.tensor([int(dataset[i][1]) for i in range(len(dataset))])


class ImageDataModule(L.LightningDataModule):
    """Train / val / test loaders of a source, val split off the training images with a generator seeded by `seed`.

    Batches are (x float32 [B, C, crop, crop] normalised, y int64 [B]); the test x is [B, 10, C, crop, crop], the
    paper's four corners + centre and their flips, of which the module tests both views (the ten crops and the centre,
    alexlab.metrics) and reports the one test_views names as test/*; val always uses the centre view.
    augment: "none" | "flip_crop" (the paper's random crops + flips) | "paper" (+ PCA colour noise, sigma pca_std,
    along the ImageNet principal components or, with pca="data", those of the training pixels).
    resize_size is the short side before cropping; None means the paper's 256/224 ratio. crop_region: where the
    training crops and the ten test crops of a non-square image come from: "whole" (the resized image) or
    "centre_square" (its central resize_size square, as the paper; experiment=paper).
    scale: "unit" ((x - mean) / std) or "raw" (0-255 minus the mean: the paper's input, where its LRN constants act;
    alexlab.data.transforms.SCALES).
    train_per_class: train on this many images of each class only (a class-balanced subset of the training split,
    drawn with the split's seed); the other training images are used nowhere, neither in validation nor in test.
    None: every training image. A small subset is a regime where the network overfits (the paper's claims about
    dropout and augmentation are claims about such a net).
    split_seed: the seed of the validation split and of the subset (None: the run's `seed`): a fixed split_seed
    gives every seed and every arm of a study the same images, so that seeds vary only the initial weights, the
    order and the augmentation.
    train_eval_size: training images (a fixed sample, drawn with `seed`) evaluated after every epoch as the
    validation images are (centre view, eval mode): the training error without dropout and augmentation, which the
    validation error is set against to measure overfitting. None: as many as the validation split; 0: none. The
    second loader of val_dataloader(); its metrics are train_eval/*.
    bad_images: "fail" (an image file that cannot be decoded stops the run, named) | "skip" (it is left out,
    logged and counted).
    decode (image-file sources): "loader" (the DataLoader workers decode and augment each image on the CPU) |
    "device" (the workers only read the files; the training device decodes each batch with one decode_jpeg call,
    nvJPEG on a GPU, and augments it there) | "auto" (device when training on a GPU, else loader). Both give the
    same crops, flips and colour noise; on one device, bit for bit the same batches.
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
        bad_images: str = "fail",
        decode: str = "auto",
        crop_region: str = "whole",
        train_eval_size: int | None = None,
        scale: str = "unit",
        train_per_class: int | None = None,
        split_seed: int | None = None,
    ):
        super().__init__()
        resize_size = default_resize(crop_size) if resize_size is None else resize_size
        checks = [
            (augment in AUGMENTS, f"augment must be one of {'|'.join(AUGMENTS)}, got {augment!r}"),
            (test_views in TEST_VIEWS, f"test_views must be one of {'|'.join(TEST_VIEWS)}, got {test_views!r}"),
            (pca in PCAS, f"pca must be one of {'|'.join(PCAS)}, got {pca!r}"),
            (scale in SCALES, f"scale must be one of {'|'.join(SCALES)}, got {scale!r}"),
            (num_classes >= 2, f"num_classes must be >= 2, got {num_classes}"),
            (channels >= 1, f"channels must be >= 1, got {channels}"),
            (
                len(mean) == channels and len(std) == channels,
                f"mean and std need one value per channel ({channels}), got mean={list(mean)} std={list(std)}",
            ),
            (all(s > 0 for s in std), f"std values must be > 0, got {list(std)}"),
            (bad_images in ("fail", "skip"), f"bad_images must be fail|skip, got {bad_images!r}"),
            (decode in DECODES, f"decode must be one of {'|'.join(DECODES)}, got {decode!r}"),
            (
                crop_region in CROP_REGIONS,
                f"crop_region must be one of {'|'.join(CROP_REGIONS)}, got {crop_region!r}",
            ),
            (batch_size >= 1, f"batch_size must be >= 1, got {batch_size}"),
            (
                train_eval_size is None or (isinstance(train_eval_size, int) and train_eval_size >= 0),
                f"train_eval_size must be an image count >= 0 or null, got {train_eval_size!r}",
            ),
            (
                train_per_class is None or (isinstance(train_per_class, int) and train_per_class >= 1),
                f"train_per_class must be an image count >= 1 or null, got {train_per_class!r}",
            ),
            (
                split_seed is None or (isinstance(split_seed, int) and not isinstance(split_seed, bool)),
                f"split_seed must be an integer or null (the run's seed), got {split_seed!r}",
            ),
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
                raise BadValue(message)
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
        self.bad_images = bad_images
        self.decode = decode
        self.crop_region = crop_region
        self.train_eval_size = train_eval_size
        self.scale = scale
        self.train_per_class = train_per_class
        self.split_seed = split_seed
        # where batches are used when no Trainer is attached (alexlab bench sets it): decode=auto decides by it
        self.training_device: torch.device | None = None
        self.decodes_on_device = False
        self.transforms: dict[str, v2.Compose] = {}
        self.undecodable: dict[str, set[str]] = {split: set() for split in SPLITS}
        self.skipping: list[_SkipUnreadable] = []  # with bad_images=skip: the splits, to count what they left out
        self.reported_bad = 0
        self.train_set: Dataset | None = None
        self.val_set: Dataset | None = None
        self.train_eval_set: Dataset | None = None
        self.test_set: Dataset | None = None
        self.classes: list[str] = []

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is not None:  # Lightning calls setup once per stage; load and split only once
            return
        train, test = self.source.load()
        name = type(self.source).__name__
        if self.source.num_classes != self.num_classes:
            raise BadValue(f"{name} has {self.source.num_classes} classes but num_classes={self.num_classes}")
        val_count = round(self.val_size * len(train)) if isinstance(self.val_size, float) else self.val_size
        if val_count >= len(train):
            raise BadValue(f"val_size={self.val_size} leaves no training images out of {len(train)}")
        split_seed = self.seed if self.split_seed is None else self.split_seed
        generator = torch.Generator().manual_seed(split_seed)
        fit, val = random_split(train, [len(train) - val_count, val_count], generator=generator)
        if self.train_per_class is not None:
            fit = balanced_subset(fit, self.train_per_class, self.num_classes, split_seed)
        if len(fit) < self.batch_size:  # drop_last would leave no training batch at all
            raise BadValue(f"batch_size={self.batch_size} is more than the {len(fit)} training images")
        encoded = self._encoded_splits(fit, val, test)
        if self.bad_images == "skip":  # each split apart: the place of a left-out image goes to one of its own split
            fit, val, test = _SkipUnreadable(fit, "train"), _SkipUnreadable(val, "val"), _SkipUnreadable(test, "test")
            self.skipping = [fit, val, test]
        image_channels = fit[0][0].shape[0]
        if image_channels != self.channels:
            raise BadValue(f"{name} images have {image_channels} channel(s) but channels={self.channels}")
        if encoded is not None:  # the device decodes and counts what it leaves out
            self.skipping = []

        lighting = None
        if self.augment == "paper":
            if self.pca == "imagenet":
                eigval, eigvec = IMAGENET_EIGVAL, IMAGENET_EIGVEC
            else:
                eigval, eigvec = pixel_pca(fit, seed=self.seed)
            lighting = PCALighting(eigval, eigvec, self.pca_std)
        sizes = (self.crop_size, self.resize_size, self.mean, spread_of(self.scale, self.std))
        self.transforms = {
            "train": train_transform(self.augment, *sizes, lighting=lighting, crop_region=self.crop_region),
            "val": eval_transform(*sizes),
            "train_eval": eval_transform(*sizes),
            # both views of every test image (the ten crops; the centre view is the fifth): metrics.py
            "test": eval_transform(*sizes, views="ten_crop", crop_region=self.crop_region),
        }
        count = min(len(fit), val_count if self.train_eval_size is None else self.train_eval_size)
        sample = torch.randperm(len(fit), generator=torch.Generator().manual_seed(self.seed))[:count].tolist()
        if encoded is not None:
            self.decodes_on_device = True
            self.train_set, self.val_set, self.test_set = (_EncodedSplit(split) for split in encoded)
            self.train_eval_set = _EncodedSplit(Subset(encoded[0], sample)) if count else None
        else:
            self.train_set = _Transformed(fit, self.transforms["train"], seed=self.seed)
            self.val_set = _Transformed(val, self.transforms["val"])
            self.train_eval_set = _Transformed(Subset(fit, sample), self.transforms["train_eval"]) if count else None
            self.test_set = _Transformed(test, self.transforms["test"])
        classes = getattr(self.source, "classes", None) or getattr(train, "classes", None)
        self.classes = list(classes) if classes else [str(label) for label in range(self.num_classes)]

    def _encoded_splits(self, fit: Dataset, val: Dataset, test: Dataset) -> tuple[Dataset, Dataset, Dataset] | None:
        """The splits as encoded files when the training device decodes them (decode=device, or auto on a GPU)."""
        from alexlab.data.folders import encoded_files  # (alexlab.data.folders imports this module)

        if self.decode == "loader" or (self.decode == "auto" and not self._trains_on_gpu()):
            return None
        try:
            return encoded_files(fit), encoded_files(val), encoded_files(test)
        except ValueError:
            if self.decode == "auto":  # images decoded once into memory (fashion_mnist, cifar, synthetic)
                return None
            raise

    def _trains_on_gpu(self) -> bool:
        device = self.trainer.strategy.root_device if self.trainer is not None else self.training_device
        return device is not None and device.type == "cuda"

    def transfer_batch_to_device(self, batch, device: torch.device, dataloader_idx: int):
        """Lightning's hook: with decode=device, the batch's files are decoded and transformed here, on `device`."""
        if not isinstance(batch, EncodedBatch):
            return super().transfer_batch_to_device(batch, device, dataloader_idx)
        from alexlab.data.folders import decode_files

        decoded = decode_files(batch.encoded, batch.paths, device)
        keep = []
        for i, image in enumerate(decoded):
            if not isinstance(image, BadImageError):
                keep.append(i)
            elif self.bad_images == "fail":
                raise image
            elif image.path not in self.undecodable[batch.split]:
                self.undecodable[batch.split].add(image.path)
                if sum(len(paths) for paths in self.undecodable.values()) <= NAMED_BAD_IMAGES:
                    log.warning("data.bad_images=skip: left out %s (%s)", image.path, image.reason)
        if not keep:
            raise BadImageError(f"data.bad_images=skip: no image of a {batch.split} batch can be decoded")
        images = [decoded[i] for i in keep]
        if batch.split == "train":
            seeds = [augmentation_seed(self.seed, int(batch.draws[i])) for i in keep]
            x = augment_batch(self.transforms["train"], images, seeds)
        else:
            x = torch.stack([self.transforms[batch.split](image) for image in images])
        return x, batch.labels[keep].to(device, non_blocking=True)

    def teardown(self, stage: str) -> None:
        """At the end of fitting and testing (data.bad_images=skip): how many image files were left out."""
        counts = {split: len(paths) for split, paths in self.undecodable.items()}
        for split in self.skipping:
            counts[split.split] += int(split.unreadable.sum())
        if sum(counts.values()) > self.reported_bad:
            self.reported_bad = sum(counts.values())
            log.warning(
                "data.bad_images=skip: %d image file(s) could not be decoded and were left out (%s)",
                self.reported_bad,
                ", ".join(f"{name} {count}" for name, count in counts.items()),
            )

    def _loader(self, split: str) -> DataLoader:
        dataset = {
            "train": self.train_set,
            "val": self.val_set,
            "train_eval": self.train_eval_set,
            "test": self.test_set,
        }[split]
        train = split == "train"
        if dataset is None:
            raise RuntimeError("ImageDataModule: call setup() before asking for a dataloader")
        sampler = None
        if not train and torch.distributed.is_available() and torch.distributed.is_initialized():
            # Under DDP, Lightning's DistributedSampler pads the shards to equal length by repeating images, which
            # would count them twice in the test error; this one gives each rank its own images exactly once (the
            # metrics sum their counts over the ranks).
            from lightning.pytorch.overrides.distributed import UnrepeatedDistributedSampler

            sampler = UnrepeatedDistributedSampler(dataset, shuffle=False)
        if train:
            # torchdata's StatefulDataLoader: Lightning saves its position in every checkpoint, so a run resumed
            # mid-epoch goes on with the next batch of the same epoch, augmented alike (DrawSampler).
            sampler = DrawSampler(dataset, seed=self.seed)
        return (StatefulDataLoader if train else DataLoader)(
            dataset,
            batch_size=self.batch_size,
            sampler=sampler,
            collate_fn=partial(collate_encoded, split=split) if self.decodes_on_device else None,
            # every loader draws its seeds (for its workers) from a generator of its own, not from the global one
            # that dropout draws from: where a run is checkpointed and resumed cannot shift the dropout masks
            generator=torch.Generator().manual_seed(self.seed),
            drop_last=train,
            num_workers=self.num_workers,
            pin_memory=self.pin_memory or self._trains_on_gpu(),  # page-locked batches copy to a GPU faster
            persistent_workers=self.num_workers > 0,
            worker_init_fn=worker_init,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader("train")

    def val_dataloader(self) -> DataLoader | list[DataLoader]:
        """The validation loader, and the train_eval loader when there is one (AlexNetModule.validation_step knows
        them by their index: 0 val, 1 train_eval)."""
        if self.train_eval_set is None:
            return self._loader("val")
        return [self._loader("val"), self._loader("train_eval")]

    def test_dataloader(self) -> DataLoader:
        return self._loader("test")


def worker_init(worker_id: int) -> None:
    """Each DataLoader worker: the signals meant for the job are the main process's to handle. SLURM signals every
    process of a job (`scancel --signal=USR1`, `#SBATCH --signal=USR1@120` before the time limit, and SIGTERM when
    Lightning's auto-requeue requeues it), a terminal every process of its foreground group (Ctrl-C): a worker that
    died of them would end the run as failed ("DataLoader worker killed by signal: Terminated") before the main
    process could save its checkpoint and stop at the step's end. The workers stop when the loader or the main
    process does (PyTorch's workers watch their parent). Then Lightning's seeding of the worker's random generators
    (seed_everything(workers=True)), which Lightning adds only to loaders without a worker_init_fn of their own."""
    import signal

    for signum in (signal.SIGUSR1, signal.SIGUSR2, signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, signal.SIG_IGN)
    if int(os.environ.get("PL_SEED_WORKERS", "0")):
        from lightning.fabric.utilities.seed import pl_worker_init_function

        pl_worker_init_function(worker_id)
