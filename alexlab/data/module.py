"""The LightningDataModule of every data set: a source split into train, val, train_eval and test, transformed and
loaded (alexlab.data's docstring names the sources)."""

from __future__ import annotations

import logging
import os
from functools import partial
from types import SimpleNamespace

import lightning as L
import torch
from torch.utils.data import DataLoader, Dataset, Subset, random_split
from torchdata.stateful_dataloader import StatefulDataLoader
from torchvision.transforms import v2

from alexlab.data.images import (
    NAMED_BAD_IMAGES,
    BadImageError,
    DrawSampler,
    EncodedBatch,
    _EncodedSplit,
    _SkipUnreadable,
    _Transformed,
    balanced_subset,
    collate_encoded,
)
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
    eval_transform,
    pixel_pca,
    spread_of,
    train_transform,
)
from alexlab.errors import BadValue
from alexlab.signals import held_for_children, ignore_held

log = logging.getLogger("alexlab")

DECODES = ("auto", "loader", "device")

SPLITS = ("train", "val", "train_eval", "test")


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
        check_arguments(locals())
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
        return (TrainLoader if train else EvalLoader)(
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


def check_arguments(arguments: dict) -> None:
    """ImageDataModule's arguments, each checked where it is given: one line naming the first bad one."""
    a = SimpleNamespace(**arguments)
    checks = [
        (a.augment in AUGMENTS, f"augment must be one of {'|'.join(AUGMENTS)}, got {a.augment!r}"),
        (a.test_views in TEST_VIEWS, f"test_views must be one of {'|'.join(TEST_VIEWS)}, got {a.test_views!r}"),
        (a.pca in PCAS, f"pca must be one of {'|'.join(PCAS)}, got {a.pca!r}"),
        (a.scale in SCALES, f"scale must be one of {'|'.join(SCALES)}, got {a.scale!r}"),
        (a.num_classes >= 2, f"num_classes must be >= 2, got {a.num_classes}"),
        (a.channels >= 1, f"channels must be >= 1, got {a.channels}"),
        (
            len(a.mean) == a.channels and len(a.std) == a.channels,
            f"mean and std need one value per channel ({a.channels}), got mean={list(a.mean)} std={list(a.std)}",
        ),
        (all(s > 0 for s in a.std), f"std values must be > 0, got {list(a.std)}"),
        (a.bad_images in ("fail", "skip"), f"bad_images must be fail|skip, got {a.bad_images!r}"),
        (a.decode in DECODES, f"decode must be one of {'|'.join(DECODES)}, got {a.decode!r}"),
        (
            a.crop_region in CROP_REGIONS,
            f"crop_region must be one of {'|'.join(CROP_REGIONS)}, got {a.crop_region!r}",
        ),
        (a.batch_size >= 1, f"batch_size must be >= 1, got {a.batch_size}"),
        (
            a.train_eval_size is None or (isinstance(a.train_eval_size, int) and a.train_eval_size >= 0),
            f"train_eval_size must be an image count >= 0 or null, got {a.train_eval_size!r}",
        ),
        (
            a.train_per_class is None or (isinstance(a.train_per_class, int) and a.train_per_class >= 1),
            f"train_per_class must be an image count >= 1 or null, got {a.train_per_class!r}",
        ),
        (
            a.split_seed is None or (isinstance(a.split_seed, int) and not isinstance(a.split_seed, bool)),
            f"split_seed must be an integer or null (the run's seed), got {a.split_seed!r}",
        ),
        (a.num_workers >= 0, f"num_workers must be >= 0, got {a.num_workers}"),
        (a.crop_size >= 1, f"crop_size must be >= 1, got {a.crop_size}"),
        (a.resize_size >= a.crop_size, f"resize_size ({a.resize_size}) must be >= crop_size ({a.crop_size})"),
        (a.pca_std >= 0, f"pca_std must be >= 0, got {a.pca_std}"),
        (
            not isinstance(a.val_size, bool) and a.val_size >= 0 and (isinstance(a.val_size, int) or a.val_size < 1),
            f"val_size must be an image count >= 0 or a fraction in [0, 1), got {a.val_size!r}",
        ),
        (
            not (a.augment == "paper" and a.pca == "imagenet" and a.channels != 3),
            f"augment=paper with pca=imagenet needs RGB images but channels={a.channels}; use data.pca=data",
        ),
    ]
    for ok, message in checks:
        if not ok:
            raise BadValue(message)


class _WorkersBornHeld:
    """A loader whose worker processes start with the job's signals held (alexlab.signals.held_for_children), until
    worker_init ignores them: a pre-emption or SIGTERM that comes while the workers start (the first batch of an
    epoch or of a validation) stops the run as at any other moment, never kills a worker before it ignores it."""

    def _get_iterator(self):
        with held_for_children():  # the workers start with the loader's iterator (iter(), and a StatefulDataLoader's
            return super()._get_iterator()  # state_dict() before the first batch, as a checkpoint asks for it)


class TrainLoader(_WorkersBornHeld, StatefulDataLoader):
    pass


class EvalLoader(_WorkersBornHeld, DataLoader):
    pass


def worker_init(worker_id: int) -> None:
    """Each DataLoader worker: the signals meant for the job are the main process's to handle. SLURM signals every
    process of a job (`scancel --signal=USR1`, `#SBATCH --signal=USR1@120` before the time limit, and SIGTERM when
    Lightning's auto-requeue requeues it), a terminal every process of its foreground group (Ctrl-C): a worker that
    died of them would end the run as failed ("DataLoader worker killed by signal: Terminated") before the main
    process could save its checkpoint and stop at the step's end. The workers stop when the loader or the main
    process does (PyTorch's workers watch their parent). Then Lightning's seeding of the worker's random generators
    (seed_everything(workers=True)), which Lightning adds only to loaders without a worker_init_fn of their own."""
    ignore_held()  # the workers were born with them held (TrainLoader, EvalLoader): the ones that came are dropped
    if int(os.environ.get("PL_SEED_WORKERS", "0")):
        from lightning.fabric.utilities.seed import pl_worker_init_function

        pl_worker_init_function(worker_id)
