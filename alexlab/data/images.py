"""Image datasets and batches: the items every source gives (uint8 [C, H, W], int label), in memory or as encoded
files, each handed out with its own augmentation draw (DrawSampler), and the errors a data set can raise."""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace

import torch
from torch.utils.data import Dataset, Sampler, Subset

from alexlab.data.transforms import augment_batch, augmentation_seed, drawing_from, draws_at_random, one_size
from alexlab.errors import BadFile, BadValue, NotFound

log = logging.getLogger("alexlab")

# data.bad_images=skip names this many left-out files in the log (then counts them)
NAMED_BAD_IMAGES = 5


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
