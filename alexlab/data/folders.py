"""Image-file sources: ILSVRC-2012 (ImageNet), Imagenette and any folder of class sub-folders.

Every image is decoded with torchvision.io.decode_image to a uint8 RGB tensor [3, H, W] when it is read, in the
DataLoader workers; or, with data.decode=device, the workers only read the files (EncodedFiles) and the training
device decodes a whole batch at once (decode_files: nvJPEG on a GPU).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import torch
import torchvision
from torch.utils.data import Dataset, Subset
from torchvision.datasets.folder import IMG_EXTENSIONS, has_file_allowed_extension
from torchvision.io import ImageReadMode, decode_image, decode_jpeg, read_file

from alexlab.data.images import BadImageError, DataNotFoundError
from alexlab.errors import BadValue

JPEG_START = [0xFF, 0xD8, 0xFF]  # the first bytes of every JPEG file (SOI marker + the next marker's 0xFF)


def decode_rgb(path: str) -> torch.Tensor:
    """The image at `path` as uint8 RGB; a file that cannot be decoded or read raises BadImageError naming it (the
    data module then stops or, with data.bad_images=skip, leaves it out)."""
    try:
        return decode_image(path, mode=ImageReadMode.RGB)
    except (RuntimeError, OSError) as error:
        raise bad_image(path, error) from error


def bad_image(path: str, error: Exception) -> BadImageError:
    # torchvision's "decode_jpeg, .../decode_jpeg.cpp:171, Image is incomplete or truncated" -> the last part
    reason = getattr(error, "strerror", None) or re.sub(r"^.*\.cpp:\d+, ", "", str(error).splitlines()[0])
    reason = reason.split(". ")[0]
    return BadImageError(
        f"cannot decode the image {path} ({reason}): replace or delete the file, or set data.bad_images=skip to "
        "leave such files out",
        path,
        reason,
    )


class EncodedFiles(Dataset):
    """Items (the file's bytes as uint8 [n], label, path) of a folder source's image files: what the DataLoader
    workers hand over when the training device decodes the images (data.decode=device)."""

    def __init__(self, samples: list[tuple[str, int]]):
        self.samples = samples

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int, str]:
        path, label = self.samples[index]
        try:
            return read_file(path), label, path
        except (RuntimeError, OSError) as error:
            raise bad_image(path, error) from error


def encoded_files(dataset: Dataset) -> Dataset:
    """The twin of a folder source's split (a DatasetFolder, torchvision's Imagenette, or Subsets of them) whose
    items are the encoded files instead of the decoded images: the same files at the same indices."""
    if isinstance(dataset, Subset):
        return Subset(encoded_files(dataset.dataset), dataset.indices)
    samples = getattr(dataset, "samples", None) or getattr(dataset, "_samples", None)
    if samples is None:
        raise BadValue(
            f"data.decode=device decodes image files on the training device, but {type(dataset).__name__} holds "
            "decoded images; use data.decode=loader"
        )
    return EncodedFiles(list(samples))


def decode_files(
    encoded: list[torch.Tensor], paths: list[str], device: torch.device
) -> list[torch.Tensor | BadImageError]:
    """Each file as uint8 RGB [3, H, W] on `device`, or the BadImageError naming it. The JPEGs are decoded in one
    batched torchvision.io.decode_jpeg call on `device` (nvJPEG on a GPU, libjpeg-turbo on the CPU: the same
    pixels as decode_rgb there); other formats (PNG, ...) on the CPU, then moved."""
    decoded: list[torch.Tensor | BadImageError | None] = [None] * len(encoded)
    jpegs = [i for i, data in enumerate(encoded) if data[:3].tolist() == JPEG_START]
    try:
        images = decode_jpeg([encoded[i] for i in jpegs], mode=ImageReadMode.RGB, device=device) if jpegs else []
    except RuntimeError:  # a broken file fails the whole call: decode them one by one to name it
        images = []
        for i in jpegs:
            try:
                images.append(decode_jpeg(encoded[i], mode=ImageReadMode.RGB, device=device))
            except RuntimeError as error:
                images.append(bad_image(paths[i], error))
    for i, image in zip(jpegs, images, strict=True):
        decoded[i] = image
    for i, data in enumerate(encoded):
        if decoded[i] is None:
            try:
                decoded[i] = decode_image(data, mode=ImageReadMode.RGB).to(device, non_blocking=True)
            except RuntimeError as error:
                decoded[i] = bad_image(paths[i], error)
    return decoded


def _is_hidden(name: str) -> bool:
    """Names starting with a dot: `.ipynb_checkpoints/`, `.DS_Store`, `.git/`: tools' files, never data."""
    return name.startswith(".")


def _image_files(folder: Path, extensions: tuple[str, ...], homes: dict[str, str], taken: set[str]) -> list[str]:
    """The image files under `folder`, sorted, hidden names skipped. Symbolic links are followed (a class folder may
    be, or hold, a link to images elsewhere), and each image is taken once, by its real path, in the class folder it
    really lies in: `homes` maps the real path of every class folder of the data set (both splits) to a name, and a
    file whose real path lies in another class folder than `folder` (a link to a sibling class, to the other split,
    or a loop back up the tree) is left to that folder. `taken` holds the real paths listed so far, over the whole
    data set, so that no image is counted twice, labelled twice or lands in both the training and the test split."""
    here = os.path.realpath(folder)
    seen_folders, files = set(), []
    for current, folders, names in os.walk(folder, followlinks=True):
        real = os.path.realpath(current)
        if real in seen_folders:
            folders[:] = []  # a loop, or a second way into a folder already listed
            continue
        seen_folders.add(real)
        folders[:] = sorted(name for name in folders if not _is_hidden(name))
        for name in sorted(names):
            path = os.path.join(current, name)
            if _is_hidden(name) or not has_file_allowed_extension(name, extensions) or not os.path.isfile(path):
                continue
            real = os.path.realpath(path)
            home = _home(real, homes)
            if real not in taken and home in (None, here):
                taken.add(real)
                files.append(path)
    return files


def _home(path: str, homes: dict[str, str]) -> str | None:
    """The deepest of the class folders `homes` (real paths) that holds `path`, or None when none does."""
    holders = [folder for folder in homes if path.startswith(folder.rstrip(os.sep) + os.sep)]
    return max(holders, key=len, default=None)


class _ClassFolders(torchvision.datasets.DatasetFolder):
    """DatasetFolder decoding with decode_rgb, over the non-hidden class folders (see _image_files for how they are
    listed); given `classes`, it uses their indices (so that a test folder lacking a class keeps the training
    labels) instead of listing its own sub-folders. `homes` and `taken`: shared by the splits of one data set
    (_image_files)."""

    def __init__(
        self,
        root: Path,
        classes: list[str] | None = None,
        homes: dict[str, str] | None = None,
        taken: set[str] | None = None,
    ):
        self._given_classes = classes
        self._homes = homes if homes is not None else _class_homes(root)
        self._taken = taken if taken is not None else set()
        super().__init__(str(root), loader=decode_rgb, extensions=IMG_EXTENSIONS, allow_empty=classes is not None)

    def find_classes(self, directory: str) -> tuple[list[str], dict[str, int]]:
        if self._given_classes is not None:
            classes = self._given_classes
        else:
            classes = _class_names(Path(directory))
            if not classes:
                raise DataNotFoundError(f"no class folders in {directory}")
        return classes, {name: index for index, name in enumerate(classes)}

    def make_dataset(self, directory, class_to_idx, extensions=None, is_valid_file=None, allow_empty=False):
        samples, empty = [], []
        for name in class_to_idx:
            folder = Path(directory) / name
            owner = self._homes.get(os.path.realpath(folder), _name(folder))
            if owner != _name(folder):
                raise BadValue(
                    f"the class folder {folder} is a link to the class folder {owner}: an image takes one label and "
                    "one split; make it a folder of its own or remove it"
                )
        for name, index in sorted(class_to_idx.items(), key=lambda item: item[1]):
            found = _image_files(Path(directory) / name, tuple(extensions or IMG_EXTENSIONS), self._homes, self._taken)
            if not found:
                empty.append(name)
            samples += [(path, index) for path in found]
        if empty and not allow_empty:
            listed = ", ".join(empty[:5]) + (f" and {len(empty) - 5} more" if len(empty) > 5 else "")
            raise DataNotFoundError(
                f"no images in the class folder{'s' * (len(empty) > 1)} {listed} of {directory} "
                f"(image files end in {', '.join(IMG_EXTENSIONS)})"
            )
        return samples


def _class_names(root: Path) -> list[str]:
    """The class folders of a split: its non-hidden sub-folders (links to folders included), sorted."""
    try:
        return sorted(entry.name for entry in os.scandir(root) if entry.is_dir() and not _is_hidden(entry.name))
    except OSError:
        return []


def _class_homes(*roots: Path) -> dict[str, str]:
    """The real path of each class folder under each split root -> its split/class name (the homes of _image_files).
    Where a class folder is a link to another one, the real folder's name wins: its images are labelled there."""
    folders = sorted((root / name for root in roots for name in _class_names(root)), key=lambda f: not f.is_symlink())
    return {os.path.realpath(folder): _name(folder) for folder in folders}  # links first, so real folders overwrite


def _name(folder: Path) -> str:
    return f"{folder.parent.name}/{folder.name}"


def _class_folders(root: Path, layout: str, classes: list[str] | None = None, homes=None, taken=None) -> _ClassFolders:
    if not root.is_dir():
        raise DataNotFoundError(f"no folder {root}; expected {layout}")
    try:
        dataset = _ClassFolders(root, classes, homes, taken)
    except DataNotFoundError as error:  # no class folders, or a class folder without images
        raise DataNotFoundError(f"{error}; expected {layout}") from error
    if len(dataset) == 0:
        raise DataNotFoundError(f"no images found in {root}; expected {layout}")
    return dataset


def _train_and_test(root: Path, test_names: tuple[str, ...], layout: str) -> tuple[_ClassFolders, _ClassFolders]:
    """The two splits of one data set, whose images are listed once over both (_image_files)."""
    test_root = next((root / name for name in test_names if (root / name).is_dir()), root / test_names[0])
    homes, taken = _class_homes(root / "train", test_root), set()
    train = _class_folders(root / "train", layout, homes=homes, taken=taken)
    return train, _class_folders(test_root, layout, classes=train.classes, homes=homes, taken=taken)


class ImageNet:
    """Source of ILSVRC-2012 from `root/train/<wnid>/*.JPEG` and `root/val/<wnid>/*.JPEG`; val is the test split
    (the paper also reported its results on the validation set)."""

    def __init__(self, root: str):
        self.root = Path(root).expanduser()
        self.num_classes: int | None = None  # known once load() has listed the folders
        self.classes: list[str] = []

    def load(self) -> tuple[Dataset, Dataset]:
        layout = (
            f"{self.root}/train/<wnid>/*.JPEG and {self.root}/val/<wnid>/*.JPEG "
            "(ILSVRC-2012 with the val images sorted into class folders)"
        )
        train, test = _train_and_test(self.root, ("val",), layout)
        self.classes = train.classes
        self.num_classes = len(self.classes)
        return train, test


class Imagenette:
    """Source of Imagenette (10 easy ImageNet classes) via torchvision.datasets.Imagenette; val is the test split."""

    num_classes = 10

    def __init__(self, root: str = "~/.cache/alexlab/data", size: str = "320px", download: bool = False):
        if size not in ("full", "320px", "160px"):
            raise BadValue(f"Imagenette size must be full|320px|160px, got {size!r}")
        self.root = Path(root).expanduser()
        self.size = size
        self.download = download
        self.classes: list[str] = []

    def load(self) -> tuple[Dataset, Dataset]:
        train, test = self._split("train"), self._split("val")
        self.classes = [names[0] for names in train.classes]
        return train, test

    def _split(self, split: str) -> torchvision.datasets.Imagenette:
        try:
            return torchvision.datasets.Imagenette(
                self.root, split=split, size=self.size, download=self.download, loader=decode_rgb
            )
        except (OSError, RuntimeError) as error:
            if self.download:
                reason = " ".join(str(error).split())
                raise DataNotFoundError(
                    f"downloading Imagenette ({self.size}) to {self.root} failed ({reason})"
                ) from error
            raise DataNotFoundError(
                f"Imagenette ({self.size}) not found in {self.root}; set data.source.download=true when online"
            ) from error


class ImageFolder:
    """Source of any folder of class sub-folders (`root/<class>/<image>`).

    With `root/train/<class>/` and `root/test/<class>/` (or `root/val/<class>/`) those are the splits; otherwise
    a seeded random `test_fraction` of all images is held out as the test split.
    """

    def __init__(self, root: str, test_fraction: float = 0.1, seed: int = 0):
        if not 0 < test_fraction < 1:
            raise BadValue(f"test_fraction must be in (0, 1), got {test_fraction}")
        self.root = Path(root).expanduser()
        self.test_fraction = test_fraction
        self.seed = seed
        self.num_classes: int | None = None  # known once load() has listed the folders
        self.classes: list[str] = []

    def load(self) -> tuple[Dataset, Dataset]:
        layout = (
            f"{self.root}/<class>/<image> or {self.root}/train/<class>/<image> with "
            f"{self.root}/test/<class>/<image> (or val/)"
        )
        if (self.root / "train").is_dir():
            train, test = _train_and_test(self.root, ("test", "val"), layout)
            self.classes = train.classes
        else:
            everything = _class_folders(self.root, layout)
            test_count = max(1, round(self.test_fraction * len(everything)))
            if test_count >= len(everything):
                raise BadValue(
                    f"{self.root} has {len(everything)} images, too few to hold out test_fraction={self.test_fraction}"
                )
            order = torch.randperm(len(everything), generator=torch.Generator().manual_seed(self.seed)).tolist()
            train, test = Subset(everything, order[test_count:]), Subset(everything, order[:test_count])
            self.classes = everything.classes
        self.num_classes = len(self.classes)
        return train, test
