"""Data for the AlexNet ablations: image sources and one LightningDataModule that splits and transforms them.

A source is any object with a `num_classes` attribute, a `classes` attribute (list of names; folder sources fill
both in `load()`) and `load() -> (train_dataset, test_dataset)` whose items are (uint8 tensor [C, H, W], int label):
alexlab.data.synthetic.SyntheticShapes, alexlab.data.fashion_mnist.FashionMNIST, alexlab.data.cifar.CIFAR,
alexlab.data.folders.ImageNet / Imagenette / ImageFolder.
"""

from alexlab.data.images import (
    BadImageError,
    DataNotFoundError,
    DrawSampler,
    EncodedBatch,
    InMemoryImages,
    balanced_subset,
    collate_encoded,
    labels_of,
)
from alexlab.data.module import ImageDataModule, worker_init

__all__ = [
    "BadImageError", "DataNotFoundError", "DrawSampler", "EncodedBatch", "ImageDataModule", "InMemoryImages",
    "balanced_subset", "collate_encoded", "labels_of", "worker_init",
]  # fmt: skip
