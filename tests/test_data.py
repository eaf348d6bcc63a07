import gzip
import urllib.error
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision
from torchvision.io import decode_image, encode_jpeg, read_file, write_png

from alexlab.data import (
    BadImageError,
    DataNotFoundError,
    EncodedBatch,
    ImageDataModule,
    InMemoryImages,
    collate_encoded,
)
from alexlab.data.cifar import CIFAR
from alexlab.data.fashion_mnist import FashionMNIST, read_idx
from alexlab.data.folders import ImageFolder, ImageNet, Imagenette
from alexlab.data.synthetic import SyntheticShapes
from alexlab.data.transforms import (
    IMAGENET_EIGVAL,
    IMAGENET_EIGVEC,
    PCALighting,
    default_resize,
    eval_transform,
    pixel_pca,
)
from alexlab.errors import BadValue
from alexlab.signals import JOB_SIGNALS

DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")


def one_line(error: pytest.ExceptionInfo) -> str:
    message = str(error.value)
    assert "\n" not in message
    return message


def shapes_module(**overrides) -> ImageDataModule:
    channels = overrides.pop("channels", 3)
    source = overrides.pop("source", None) or SyntheticShapes(
        image_size=32, channels=channels, train_size=300, test_size=40
    )
    options = dict(
        num_classes=10,
        channels=channels,
        mean=[0.5] * channels,
        std=[0.25] * channels,
        batch_size=16,
        num_workers=0,
        val_size=60,
        crop_size=28,
    )
    return ImageDataModule(source, **(options | overrides))


# SyntheticShapes


def test_synthetic_is_deterministic_per_seed_and_index():
    train_a, test_a = SyntheticShapes(seed=3).load()
    train_b, test_b = SyntheticShapes(seed=3).load()
    other, _ = SyntheticShapes(seed=4).load()
    for index in (0, 7, 9999):
        image, label = train_a[index]
        assert torch.equal(image, train_b[index][0]) and label == train_b[index][1]
        assert not torch.equal(image, other[index][0])
    assert torch.equal(test_a[5][0], test_b[5][0])
    assert torch.equal(train_a[-1][0], train_a[len(train_a) - 1][0])
    with pytest.raises(IndexError):
        train_a[len(train_a)]


@pytest.mark.parametrize(("size", "channels"), [(28, 1), (28, 3), (64, 1), (64, 3), (227, 3)])
def test_synthetic_shapes_and_dtypes(size, channels):
    source = SyntheticShapes(num_classes=7, image_size=size, channels=channels, train_size=20, test_size=5)
    train, test = source.load()
    assert (len(train), len(test)) == (20, 5)
    image, label = train[3]
    assert image.shape == (channels, size, size) and image.dtype == torch.uint8
    assert isinstance(label, int) and 0 <= label < 7
    assert image.float().std() > 10  # a drawing, not a flat image
    assert len(source.classes) == len(set(source.classes)) == source.num_classes == 7


def test_synthetic_train_and_test_are_disjoint_and_balanced():
    train, test = SyntheticShapes(image_size=16, train_size=300, test_size=300).load()
    train_images = {train[i][0].numpy().tobytes() for i in range(len(train))}
    test_images = {test[i][0].numpy().tobytes() for i in range(len(test))}
    assert len(train_images) == len(test_images) == 300
    assert not train_images & test_images
    assert torch.bincount(torch.tensor([train[i][1] for i in range(len(train))])).tolist() == [30] * 10
    # The test set does not depend on how many training images there are.
    _, same_test = SyntheticShapes(image_size=16, train_size=50, test_size=300).load()
    assert torch.equal(test[17][0], same_test[17][0])


def test_synthetic_is_learnable_but_not_trivial():
    train, test = SyntheticShapes(image_size=16, train_size=2000, test_size=500).load()

    def stack(dataset):
        images, labels = zip(*(dataset[i] for i in range(len(dataset))), strict=True)
        return torch.stack(images).flatten(1).float() / 255 - 0.5, torch.tensor(labels)

    x, y = stack(train)
    x_test, y_test = stack(test)
    torch.manual_seed(0)
    linear = torch.nn.Linear(x.shape[1], 10)
    optimizer = torch.optim.Adam(linear.parameters(), lr=0.01)
    for _ in range(200):
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(linear(x), y).backward()
        optimizer.step()
    accuracy = (linear(x_test).argmax(1) == y_test).float().mean().item()
    assert 0.3 < accuracy < 0.9  # chance is 0.1; a linear model on pixels should not solve it


def test_synthetic_rejects_bad_arguments():
    with pytest.raises(ValueError, match="channels"):
        SyntheticShapes(channels=2)
    with pytest.raises(ValueError, match="num_classes"):
        SyntheticShapes(num_classes=1)


# Fashion-MNIST and the IDX reader


def write_idx(path: Path, array: np.ndarray, compress: bool) -> None:
    codes = {np.dtype(np.uint8): 0x08, np.dtype(">i4"): 0x0C}
    header = bytes([0, 0, codes[array.dtype], array.ndim]) + np.array(array.shape, dtype=">i4").tobytes()
    data = header + array.tobytes()
    path.write_bytes(gzip.compress(data) if compress else data)


@pytest.mark.parametrize("compress", [True, False])
def test_read_idx(tmp_path, compress):
    images = np.arange(5 * 3 * 4, dtype=np.uint8).reshape(5, 3, 4)
    ints = np.array([[1, -2], [300000, 4]], dtype=">i4")
    write_idx(tmp_path / "images", images, compress)
    write_idx(tmp_path / "ints", ints, compress)
    assert np.array_equal(read_idx(tmp_path / "images"), images)
    assert np.array_equal(read_idx(tmp_path / "ints"), ints)
    (tmp_path / "bad").write_bytes(b"\x01\x02\x03\x04")
    with pytest.raises(ValueError, match="not an IDX file"):
        read_idx(tmp_path / "bad")


def test_fashion_mnist_from_tiny_idx_files(tmp_path):
    rng = np.random.default_rng(0)
    for prefix, count, compress in (("train", 12, True), ("t10k", 4, False)):
        suffix = ".gz" if compress else ""
        images = rng.integers(0, 256, (count, 28, 28), dtype=np.uint8)
        write_idx(tmp_path / f"{prefix}-images-idx3-ubyte{suffix}", images, compress)
        write_idx(tmp_path / f"{prefix}-labels-idx1-ubyte{suffix}", np.arange(count, dtype=np.uint8) % 10, compress)
    train, test = FashionMNIST(root=tmp_path, download_root=tmp_path / "nothing").load()
    assert (len(train), len(test)) == (12, 4)
    assert train.images.shape == (12, 1, 28, 28) and train.images.dtype == torch.uint8
    image, label = train[11]
    assert image.shape == (1, 28, 28) and label == 1
    assert image.untyped_storage().data_ptr() == train.images.untyped_storage().data_ptr()  # a view, not a copy


@pytest.mark.skipif(not DEBIAN_FASHION_MNIST.is_dir(), reason="apt-get install dataset-fashion-mnist")
def test_fashion_mnist_debian_files():
    source = FashionMNIST()
    train, test = source.load()
    assert (len(train), len(test)) == (60000, 10000)
    assert train.images.shape == (60000, 1, 28, 28) and train.images.dtype == torch.uint8
    assert torch.bincount(train.labels).tolist() == [6000] * 10
    assert torch.bincount(test.labels).tolist() == [1000] * 10
    assert source.num_classes == len(source.classes) == 10
    assert 60 < train.images.float().mean() < 85  # the known mean pixel, 0.286 * 255 = 73


def test_fashion_mnist_missing(tmp_path):
    root, download_root = tmp_path / "debian", tmp_path / "cache"
    with pytest.raises(DataNotFoundError) as error:
        FashionMNIST(root=root, download_root=download_root).load()
    message = one_line(error)
    assert str(root) in message and str(download_root) in message
    assert "apt-get install dataset-fashion-mnist" in message and "download=true" in message


def test_fashion_mnist_network_failure(tmp_path, monkeypatch):
    def offline(self):
        raise urllib.error.URLError("[Errno -3] Temporary failure\nin name resolution")

    monkeypatch.setattr(torchvision.datasets.FashionMNIST, "download", offline)
    with pytest.raises(DataNotFoundError) as error:
        FashionMNIST(root=tmp_path / "debian", download_root=tmp_path / "cache", download=True).load()
    assert "name resolution" in one_line(error) and str(tmp_path / "cache") in one_line(error)


def test_cifar_and_imagenette_missing(tmp_path):
    with pytest.raises(DataNotFoundError) as error:
        CIFAR(num_classes=100, root=tmp_path / "cifar").load()
    assert str(tmp_path / "cifar") in one_line(error) and "download=true" in one_line(error)
    with pytest.raises(DataNotFoundError) as error:
        Imagenette(root=tmp_path / "nette").load()
    assert str(tmp_path / "nette") in one_line(error)
    with pytest.raises(ValueError, match="10 or 100"):
        CIFAR(num_classes=20)


def test_paths_expand_user(monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path))
    assert CIFAR(root="~/data").root == tmp_path / "data"
    assert FashionMNIST(root="~/fm").root == tmp_path / "fm"
    assert ImageFolder(root="~/imgs").root == tmp_path / "imgs"


# Image folders


def write_images(folder: Path, count: int, size: tuple[int, int], seed: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    generator = torch.Generator().manual_seed(seed)
    for i in range(count):
        if i % 2:
            image = torch.randint(0, 256, (3, *size), dtype=torch.uint8, generator=generator)
            (folder / f"{i}.JPEG").write_bytes(encode_jpeg(image).numpy().tobytes())
        else:  # grayscale PNG: must still come out as RGB
            write_png(
                torch.randint(0, 256, (1, *size), dtype=torch.uint8, generator=generator), str(folder / f"{i}.png")
            )


def test_image_folder_held_out_split(tmp_path):
    for index, name in enumerate(("cat", "dog", "eel")):
        write_images(tmp_path / name, 10, (20 + 3 * index, 30), seed=index)
    source = ImageFolder(root=tmp_path, test_fraction=0.2, seed=1)
    train, test = source.load()
    assert (len(train), len(test)) == (24, 6)
    assert source.classes == ["cat", "dog", "eel"] and source.num_classes == 3
    assert not set(train.indices) & set(test.indices)
    assert ImageFolder(root=tmp_path, test_fraction=0.2, seed=1).load()[1].indices == test.indices
    for dataset in (train, test):
        for i in range(len(dataset)):
            image, label = dataset[i]
            assert image.dtype == torch.uint8 and image.shape[0] == 3 and 0 <= label < 3


@pytest.mark.parametrize("test_name", ["test", "val"])
def test_image_folder_train_test_layout(tmp_path, test_name):
    for index, name in enumerate(("a", "b", "c")):
        write_images(tmp_path / "train" / name, 4, (16, 16), seed=index)
    write_images(tmp_path / test_name / "c", 2, (16, 16), seed=9)  # the test split lacks classes a and b
    source = ImageFolder(root=tmp_path)
    train, test = source.load()
    assert (len(train), len(test)) == (12, 2)
    assert [test[i][1] for i in range(2)] == [2, 2]  # labels follow the training classes
    assert source.num_classes == 3


def test_image_folder_takes_each_image_once_through_links_and_loops(tmp_path):
    """A link back up the tree (a loop) is not followed round, and a second link to the same images adds nothing,
    so no image is counted twice or lands in both splits; a link to images outside the tree is followed."""
    write_images(tmp_path / "data" / "cat", 4, (16, 16), seed=0)
    write_images(tmp_path / "data" / "dog", 4, (16, 16), seed=1)
    write_images(tmp_path / "elsewhere", 2, (16, 16), seed=2)
    (tmp_path / "data" / "cat" / "loop").symlink_to(tmp_path / "data" / "cat")  # cat/loop/loop/loop/...
    (tmp_path / "data" / "dog" / "again").symlink_to(tmp_path / "data" / "dog")
    (tmp_path / "data" / "dog" / "copy.png").symlink_to(tmp_path / "data" / "dog" / "0.png")
    (tmp_path / "data" / "dog" / "more").symlink_to(tmp_path / "elsewhere")
    source = ImageFolder(root=tmp_path / "data", test_fraction=0.25)
    train, test = source.load()
    everything = train.dataset
    paths = [Path(path).resolve() for path, _ in everything.samples]
    assert len(paths) == len(set(paths)) == 10  # 4 cats, 4 dogs, 2 linked from elsewhere
    assert [label for _, label in everything.samples] == [0] * 4 + [1] * 6
    assert not {paths[i] for i in train.indices} & {paths[i] for i in test.indices}


def real_labels(dataset) -> dict[Path, int]:
    """Each sample's real file -> its label; fails on a file listed twice."""
    pairs = [(Path(path).resolve(), label) for path, label in dataset.samples]
    assert len(pairs) == len({path for path, _ in pairs}), "an image listed twice"
    return dict(pairs)


def test_image_folder_labels_each_image_by_the_class_folder_it_really_lies_in(tmp_path):
    """Links across classes: a loop up to the data root, a link to another class's folder and to another class's
    file, a class folder that is itself a link to another: each real image once, with its real folder's label."""
    root = tmp_path / "data"
    for index, name in enumerate(("ant", "bee", "cat")):
        write_images(root / name, 3 + index, (16, 16), seed=index)
    (root / "ant" / "up").symlink_to(root)  # ant/up/bee/..., ant/up/ant/up/...
    (root / "bee" / "cats").symlink_to(root / "cat")
    (root / "cat" / "a_bee.png").symlink_to(root / "bee" / "0.png")
    source = ImageFolder(root=root, test_fraction=0.25)
    train, test = source.load()
    labels = real_labels(train.dataset)
    assert len(labels) == 3 + 4 + 5  # the 12 real files
    real = [(path, index) for index, name in enumerate(("ant", "bee", "cat")) for path in (root / name).iterdir()]
    expected = {path.resolve(): index for path, index in real if path.is_file() and not path.is_symlink()}
    assert labels == expected
    samples = train.dataset.samples
    assert not {samples[i][0] for i in train.indices} & {samples[i][0] for i in test.indices}
    (root / "dup").symlink_to(root / "cat")  # a fourth class folder that is the third: refused, named
    with pytest.raises(BadValue, match=f"the class folder {root / 'dup'} is a link to the class folder data/cat"):
        ImageFolder(root=root, test_fraction=0.25).load()


def test_image_folder_never_puts_an_image_in_both_splits_through_links(tmp_path):
    """train/ and test/ linked to each other (a file, a folder, a whole class): each image in the split it lies in."""
    write_images(tmp_path / "train" / "cat", 4, (16, 16), seed=0)
    write_images(tmp_path / "train" / "dog", 4, (16, 16), seed=1)
    write_images(tmp_path / "test" / "cat", 2, (16, 16), seed=2)
    write_images(tmp_path / "test" / "dog", 2, (16, 16), seed=3)
    (tmp_path / "train" / "cat" / "from_test").symlink_to(tmp_path / "test" / "cat")
    (tmp_path / "train" / "dog" / "t.png").symlink_to(tmp_path / "test" / "dog" / "0.png")
    (tmp_path / "test" / "dog" / "loop").symlink_to(tmp_path)  # test/dog/loop/train/...
    train, test = ImageFolder(root=tmp_path).load()
    train_files, test_files = set(real_labels(train)), set(real_labels(test))
    assert (len(train_files), len(test_files)) == (8, 4) and not train_files & test_files
    assert all("train" in path.parts for path in train_files) and all("test" in path.parts for path in test_files)


def test_image_folder_skips_hidden_folders_and_files(tmp_path):
    write_images(tmp_path / "cat", 3, (16, 16), seed=0)
    write_images(tmp_path / "dog", 3, (16, 16), seed=1)
    write_images(tmp_path / ".ipynb_checkpoints", 2, (16, 16), seed=2)  # not a class
    write_images(tmp_path / "cat" / ".thumbnails", 2, (16, 16), seed=3)  # not images of cats
    (tmp_path / "dog" / "._0.png").write_bytes((tmp_path / "dog" / "0.png").read_bytes())  # macOS's shadow file
    source = ImageFolder(root=tmp_path, test_fraction=0.2)
    train, test = source.load()
    assert source.classes == ["cat", "dog"] and len(train) + len(test) == 6


def test_an_empty_class_folder_is_named(tmp_path):
    write_images(tmp_path / "train" / "cat", 2, (16, 16), seed=0)
    (tmp_path / "train" / "dog").mkdir()
    (tmp_path / "train" / "dog" / "notes.txt").write_text("no images here")
    write_images(tmp_path / "test" / "cat", 1, (16, 16), seed=1)
    with pytest.raises(DataNotFoundError) as error:
        ImageFolder(root=tmp_path).load()
    message = one_line(error)
    assert message.startswith(f"no images in the class folder dog of {tmp_path / 'train'}") and ".png" in message
    (tmp_path / "only_hidden" / ".git").mkdir(parents=True)
    with pytest.raises(DataNotFoundError, match="no class folders in"):
        ImageFolder(root=tmp_path / "only_hidden").load()


def test_imagenet_layout_and_missing(tmp_path):
    write_images(tmp_path / "train" / "n01440764", 3, (12, 14), seed=0)
    write_images(tmp_path / "train" / "n02102040", 3, (12, 14), seed=1)
    write_images(tmp_path / "val" / "n02102040", 2, (12, 14), seed=2)
    source = ImageNet(root=tmp_path)
    train, test = source.load()
    assert (len(train), len(test), source.num_classes) == (6, 2, 2)
    assert test[0][1] == 1 and test[0][0].shape == (3, 12, 14)

    with pytest.raises(DataNotFoundError) as error:
        ImageNet(root=tmp_path / "nowhere").load()
    assert str(tmp_path / "nowhere" / "train") in one_line(error) and "<wnid>" in one_line(error)
    (tmp_path / "empty" / "train" / "n0").mkdir(parents=True)
    with pytest.raises(DataNotFoundError) as error:
        ImageFolder(root=tmp_path / "empty").load()
    assert str(tmp_path / "empty" / "train") in one_line(error)
    with pytest.raises(DataNotFoundError):
        ImageFolder(root=tmp_path / "missing").load()


def test_decode_matches_written_png(tmp_path):
    write_images(tmp_path / "x", 2, (9, 11), seed=0)
    gray = decode_image(str(tmp_path / "x" / "0.png"))
    train, _ = ImageFolder(root=tmp_path, test_fraction=0.5).load()
    paths = [path for path, _ in train.dataset.samples]
    image = train.dataset[paths.index(str(tmp_path / "x" / "0.png"))][0]
    assert image.shape == (3, 9, 11) and torch.equal(image, gray.expand(3, -1, -1))


# Transforms and PCA lighting


def test_default_resize_and_same_size_resize_is_a_no_op():
    assert default_resize(224) == 256 and default_resize(28) == 32 and default_resize(227) == 259
    image = torch.randint(0, 256, (1, 28, 28), dtype=torch.uint8)
    out = eval_transform(28, 28, [0.5], [0.25])(image)
    assert torch.allclose(out, (image.float() / 255 - 0.5) / 0.25, atol=1e-5)


def test_pca_lighting_statistics():
    torch.manual_seed(0)
    lighting = PCALighting(IMAGENET_EIGVAL, IMAGENET_EIGVEC, std=0.1)
    image = torch.full((3, 4, 5), 0.5)
    shifts = []
    for _ in range(4000):
        shift = lighting(image) - image
        assert torch.allclose(shift, shift[:, :1, :1].expand_as(shift), atol=1e-6)  # one colour shift per image
        shifts.append(shift[:, 0, 0])
    shifts = torch.stack(shifts)
    assert shifts.mean(0).abs().max() < 0.002
    # In eigenvector coordinates each component is alpha_j * eigval_j with alpha_j ~ N(0, 0.1).
    alphas = torch.linalg.solve(torch.tensor(IMAGENET_EIGVEC), shifts.T).T / torch.tensor(IMAGENET_EIGVAL)
    assert torch.allclose(alphas.std(0), torch.full((3,), 0.1), rtol=0.08)
    assert alphas.mean(0).abs().max() < 0.01
    assert torch.equal(PCALighting(IMAGENET_EIGVAL, IMAGENET_EIGVEC, std=0.0)(image), image)


def test_pixel_pca_recovers_colour_covariance():
    torch.manual_seed(0)
    grey = torch.randint(0, 256, (50, 1, 8, 8), dtype=torch.uint8)
    dataset = InMemoryImages(grey.expand(-1, 3, -1, -1), torch.zeros(50), ["x"])
    eigval, eigvec = pixel_pca(dataset)
    variance = (grey.double() / 255).var(unbiased=False).item()
    # Three equal channels: covariance variance * ones(3, 3), eigenvalues (3 variance, 0, 0), eigvector (1, 1, 1)/sqrt 3
    assert eigval[0].item() == pytest.approx(3 * variance, rel=1e-4) and eigval[1:].abs().max() < 1e-6
    assert torch.allclose(eigvec[:, 0].abs(), torch.full((3,), 3**-0.5), atol=1e-4)
    eigval, eigvec = pixel_pca(InMemoryImages(grey, torch.zeros(50), ["x"]))  # grayscale: just the variance
    assert eigval.shape == (1,) and eigval.item() == pytest.approx(variance, rel=1e-4)


# ImageDataModule


def test_module_batches_and_ten_crop():
    module = shapes_module(test_views="ten_crop")
    module.setup("fit")
    assert (len(module.train_set), len(module.val_set), len(module.test_set)) == (240, 60, 40)
    assert module.classes == SyntheticShapes().classes
    x, y = next(iter(module.train_dataloader()))
    assert x.shape == (16, 3, 28, 28) and x.dtype == torch.float32 and y.shape == (16,) and y.dtype == torch.int64
    assert len(module.train_dataloader()) == 240 // 16
    val, train_eval = module.val_dataloader()  # train_eval: as many training images, scored as val is
    x, y = next(iter(val))
    assert x.shape == (16, 3, 28, 28)
    assert len(train_eval.dataset) == len(module.val_set) == 60
    x, _ = next(iter(train_eval))
    assert x.shape == (16, 3, 28, 28)
    ten, y = next(iter(module.test_dataloader()))
    assert ten.shape == (16, 10, 3, 28, 28) and y.shape == (16,)

    # every run tests both views (alexlab.metrics): test_views=centre gets the same ten crops, and the centre view
    # is the fifth of them, what the centre view's own pipeline gives, bit for bit
    centre = shapes_module()
    centre.setup("test")
    both, _ = next(iter(centre.test_dataloader()))
    assert torch.equal(both, ten)
    pipeline = eval_transform(28, 32, [0.5] * 3, [0.25] * 3)
    x = torch.stack([pipeline(centre.test_set.dataset[i][0]) for i in range(16)])
    assert torch.equal(ten[:, 4], x)  # TenCrop's fifth view is the centre crop
    assert torch.equal(ten[:, 9], x.flip(-1))  # and its tenth is the centre crop's mirror image


def test_raw_scale_is_the_papers_centered_raw_pixel_values():
    """data.scale=raw: 0-255 minus the mean (the paper's "centered raw RGB values"), no division by the spread."""
    unit, raw = shapes_module(), shapes_module(scale="raw")
    unit.setup("fit"), raw.setup("fit")
    x_unit, _ = next(iter(unit.val_dataloader()[0]))
    x_raw, _ = next(iter(raw.val_dataloader()[0]))
    pixels = x_unit * 0.25 + 0.5  # back to 0..1 from (x - 0.5) / 0.25
    assert torch.allclose(x_raw, (pixels - 0.5) * 255, atol=1e-3)
    assert x_raw.abs().max() <= 127.5 + 1e-3
    assert x_raw.std().item() == pytest.approx(x_unit.std().item() * 0.25 * 255, rel=1e-4)
    with pytest.raises(ValueError, match="scale must be one of unit|raw"):
        shapes_module(scale="centred")


def test_module_val_split_seeding():
    def val_indices(**overrides):
        module = shapes_module(**overrides)
        module.setup("fit")
        return module.val_set.dataset.indices, len(module.train_set)

    indices, train_count = val_indices(seed=5)
    assert len(indices) == 60 and train_count == 240
    assert val_indices(seed=5)[0] == indices
    assert val_indices(seed=6)[0] != indices
    fraction_indices, train_count = val_indices(val_size=0.25)
    assert len(fraction_indices) == 75 and train_count == 225


def test_module_train_augmentation_and_workers():
    module = shapes_module(augment="flip_crop", num_workers=2, val_size=0)
    module.setup("fit")
    assert len(module.val_set) == 0
    loader = module.train_dataloader()
    first = torch.cat([x for x, _ in loader])
    loader.sampler.set_epoch(1)  # as Lightning does at every epoch's start
    second = torch.cat([x for x, _ in loader])
    assert first.shape == second.shape == (288, 3, 28, 28)
    assert not torch.equal(first, second)  # reshuffled and re-augmented
    assert first.mean(dim=(0, 2, 3)).abs().max() < 1.5  # normalised, not 0-255
    # each image's augmentation is a function of (seed, epoch, position): the same with no worker processes
    single = shapes_module(augment="flip_crop", num_workers=0, val_size=0)
    single.setup("fit")
    torch.testing.assert_close(torch.cat([x for x, _ in single.train_dataloader()]), first, rtol=0, atol=0)


@pytest.mark.parametrize("split", ["train", "val"])
def test_a_signal_while_the_workers_start_never_kills_one(monkeypatch, split):
    """A SIGTERM (SLURM's pre-emption, scancel) that reaches a DataLoader worker in the milliseconds between torch's
    own SIGTERM handler going in (it dies of any SIGTERM its parent did not send) and worker_init ignoring it: each
    worker sends itself one there. Before the loaders started their workers with the job's signals held, the first
    batch failed with "DataLoader worker (pid ...) is killed by signal: Terminated"."""
    import os
    import signal

    from torch.utils.data._utils import signal_handling

    torch_handlers = signal_handling._set_worker_signal_handlers

    def then_a_sigterm():  # runs in the worker (forked with the patch in place)
        torch_handlers()
        os.kill(os.getpid(), signal.SIGTERM)

    monkeypatch.setattr(signal_handling, "_set_worker_signal_handlers", then_a_sigterm)
    module = shapes_module(num_workers=2)
    module.setup("fit")
    loader = module.train_dataloader() if split == "train" else module.val_dataloader()[0]
    if split == "train":  # a checkpoint before the first batch: the StatefulDataLoader starts its workers for it
        loader.state_dict()
    assert sum(len(y) for _, y in loader) == (240 if split == "train" else 60)
    assert not signal.pthread_sigmask(signal.SIG_BLOCK, []) & set(JOB_SIGNALS)  # held in the parent only while forking


def test_module_paper_augment_on_grayscale_with_data_pca():
    module = shapes_module(channels=1, augment="paper", pca="data", pca_std=0.1)
    module.setup("fit")
    lighting = [step for step in module.train_set.transform.transforms if isinstance(step, PCALighting)]
    assert len(lighting) == 1 and lighting[0].eigval.shape == (1,) and lighting[0].eigval.item() > 0.001
    x, _ = next(iter(module.train_dataloader()))
    assert x.shape == (16, 1, 28, 28)
    with pytest.raises(ValueError, match="data.pca=data"):
        shapes_module(channels=1, augment="paper", pca="imagenet")
    shapes_module(channels=1, augment="flip_crop", pca="imagenet")  # PCA unused: no error


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        ({"augment": "mixup"}, "augment"),
        ({"test_views": "five_crop"}, "test_views"),
        ({"pca": "random"}, "pca"),
        ({"batch_size": 0}, "batch_size"),
        ({"val_size": 1.5}, "val_size"),
        ({"val_size": -3}, "val_size"),
        ({"resize_size": 20}, "resize_size"),
        ({"mean": [0.5]}, "mean"),
        ({"num_workers": -1}, "num_workers"),
    ],
)
def test_module_rejects_bad_choices(overrides, match):
    with pytest.raises(ValueError, match=match) as error:
        shapes_module(**overrides)
    one_line(error)


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        ({"val_size": 300}, "val_size"),
        ({"batch_size": 500}, "batch_size"),
        ({"num_classes": 100}, "classes"),
        ({"source": SyntheticShapes(channels=1, train_size=300)}, "channel"),
    ],
)
def test_module_setup_rejects_mismatches(overrides, match):
    module = shapes_module(**overrides)
    with pytest.raises(ValueError, match=match):
        module.setup("fit")


def folder_module(root: Path, **overrides) -> ImageDataModule:
    settings = dict(
        num_classes=2,
        channels=3,
        mean=[0.5] * 3,
        std=[0.25] * 3,
        batch_size=4,
        num_workers=0,
        val_size=4,
        crop_size=16,
        augment="paper",
        test_views="ten_crop",
    )
    return ImageDataModule(ImageFolder(root=root, test_fraction=0.2), **{**settings, **overrides})


def test_module_on_image_folder_of_mixed_sizes(tmp_path):
    for index, name in enumerate(("a", "b")):
        write_images(tmp_path / name, 10, (24 + 5 * index, 40 - 3 * index), seed=index)
    module = folder_module(tmp_path, test_views="centre")
    module.setup("fit")
    assert (len(module.train_set), len(module.val_set), len(module.test_set)) == (12, 4, 4)
    assert module.classes == ["a", "b"]
    x, y = next(iter(module.train_dataloader()))
    assert x.shape == (4, 3, 16, 16) and set(y.tolist()) <= {0, 1}


def batches_at_once_and_image_by_image(module: ImageDataModule):
    """Every batch of every loader of `module`, as the DataLoader fetches it (the dataset's __getitems__) and as
    stacking the per-image pipeline's items (__getitem__) gives it."""
    from torch.utils.data import default_collate

    loaders = [module.train_dataloader(), *module.val_dataloader(), module.test_dataloader()]
    for loader in loaders:
        if hasattr(loader.sampler, "set_epoch"):
            loader.sampler.set_epoch(1)
        for keys, batch in zip(loader.batch_sampler, loader, strict=True):
            torch.manual_seed(0)  # (image by image, nothing may draw from the global generator either)
            image_by_image = default_collate([loader.dataset[key] for key in keys])
            yield batch, image_by_image


@pytest.mark.parametrize(
    ("augment", "test_views", "bad_images"),
    [("none", "centre", "fail"), ("flip_crop", "ten_crop", "fail"), ("paper", "ten_crop", "skip")],
)
def test_a_batch_fetched_at_once_is_the_per_image_pipeline_bit_for_bit(augment, test_views, bad_images):
    """In-memory images of one size (Fashion-MNIST, CIFAR, the built-in shapes): the loaders fetch a batch at once
    (_Transformed.__getitems__: the resize, and without random steps every step, on the whole batch), and each
    batch is the one the per-image pipeline gives, in every split, the crops, flips and colour noise included."""
    module = shapes_module(augment=augment, test_views=test_views, pca="data", bad_images=bad_images)
    module.setup("fit")
    count = 0
    for batch, image_by_image in batches_at_once_and_image_by_image(module):
        assert torch.equal(batch[0], image_by_image[0]) and torch.equal(batch[1], image_by_image[1])
        count += 1
    assert count == 240 // 16 + 2 * (60 // 16 + 1) + 40 // 16 + 1
    assert batch[0].shape[1:] == (10, 3, 28, 28)  # the test split: both views, whatever test_views names


def test_batches_of_images_of_several_sizes_are_the_per_image_pipeline_bit_for_bit(tmp_path):
    for index, name in enumerate(("a", "b")):
        write_images(tmp_path / name, 10, (24 + 5 * index, 40 - 3 * index), seed=index)
    for augment in ("none", "paper"):
        module = folder_module(tmp_path, augment=augment, decode="loader")
        module.setup("fit")
        pairs = list(batches_at_once_and_image_by_image(module))
        assert len(pairs) == 3 + 2 * 1 + 1
        for batch, image_by_image in pairs:
            assert torch.equal(batch[0], image_by_image[0]) and torch.equal(batch[1], image_by_image[1])


def test_decode_on_device_gives_the_loaders_batches(tmp_path):
    """data.decode=device (here the device is the CPU): the workers hand over file bytes, transfer_batch_to_device
    decodes (JPEGs in one decode_jpeg call, PNGs one by one) and augments the batch; every batch of every split is
    the one the workers' per-image pipeline gives, bit for bit, in two epochs."""
    for index, name in enumerate(("a", "b")):
        write_images(tmp_path / name, 10, (24 + 5 * index, 40 - 3 * index), seed=index)
    on_loader, on_device = (
        folder_module(tmp_path, decode="loader"),
        folder_module(tmp_path, decode="device", num_workers=2),
    )
    for module in (on_loader, on_device):
        module.setup("fit")
    assert not on_loader.decodes_on_device and on_device.decodes_on_device
    cpu = torch.device("cpu")

    def loaders_of(module, make_loader):  # val_dataloader gives the val and the train_eval loaders
        made = getattr(module, make_loader)()
        return made if isinstance(made, list) else [made]

    pairs = [
        (make_loader, loaders)
        for make_loader in ("train_dataloader", "val_dataloader", "test_dataloader")
        for loaders in zip(loaders_of(on_loader, make_loader), loaders_of(on_device, make_loader), strict=True)
    ]
    assert len(pairs) == 4
    for make_loader, loaders in pairs:
        for epoch in range(2 if make_loader == "train_dataloader" else 1):
            for loader in loaders:
                if hasattr(loader.sampler, "set_epoch"):
                    loader.sampler.set_epoch(epoch)
            count = 0
            for (x, y), encoded in zip(*loaders, strict=True):
                assert isinstance(encoded, EncodedBatch) and encoded.encoded[0].ndim == 1
                x_device, y_device = on_device.transfer_batch_to_device(encoded, cpu, 0)
                assert x.shape == x_device.shape and torch.equal(x, x_device) and torch.equal(y, y_device)
                count += 1
            assert count == len(loaders[0]) > 0
    assert x.shape == (4, 10, 3, 16, 16)  # the test split's ten crops


def test_decode_on_device_bad_images(tmp_path, caplog):
    for index, name in enumerate(("a", "b")):
        write_images(tmp_path / name, 10, (24, 40), seed=index)
    broken = tmp_path / "a" / "1.JPEG"
    broken.write_bytes(broken.read_bytes()[:200])
    paths = [str(tmp_path / "a" / "0.png"), str(broken), str(tmp_path / "a" / "3.JPEG")]
    items = [
        (read_file(path), label, path, draw) for path, label, draw in zip(paths, [0, 0, 1], [5, 6, 7], strict=True)
    ]
    batch = collate_encoded(items, "train")
    failing = folder_module(tmp_path, decode="device")
    failing.setup("fit")
    with pytest.raises(BadImageError, match=r"cannot decode the image .*1\.JPEG"):
        failing.transfer_batch_to_device(batch, torch.device("cpu"), 0)
    skipping = folder_module(tmp_path, decode="device", bad_images="skip")
    skipping.setup("fit")
    x, y = skipping.transfer_batch_to_device(batch, torch.device("cpu"), 0)
    assert x.shape == (2, 3, 16, 16) and y.tolist() == [0, 1]
    skipping.teardown("fit")
    assert "left out" in caplog.text and "1 image file(s) could not be decoded" in caplog.text


def test_decode_on_device_needs_files():
    module = shapes_module(decode="device")
    with pytest.raises(ValueError, match="holds decoded images; use data.decode=loader"):
        module.setup("fit")
    auto = shapes_module(decode="auto")
    auto.training_device = torch.device("cuda", 0)  # in-memory data stay with the loader even for a GPU
    auto.setup("fit")
    assert not auto.decodes_on_device


def test_crops_come_from_the_central_square_as_in_the_paper_or_from_the_whole_image():
    """A 2:1 image, bright only outside its central square: crops from the central square (the paper's) never
    see a bright pixel, crops from the whole resized image do; the ten test crops' corners likewise."""
    from alexlab.data.transforms import train_transform

    image = torch.zeros(3, 64, 128, dtype=torch.uint8)
    image[:, :, :32] = image[:, :, 96:] = 255  # the central 64x64 square is columns 32..95
    sizes = (32, 64, [0.0] * 3, [1.0] * 3)  # crops of 32 from a 64-pixel short side, no normalisation
    torch.manual_seed(0)
    brightest = {
        region: max(float(train_transform("flip_crop", *sizes, crop_region=region)(image).max()) for _ in range(50))
        for region in ("centre_square", "whole")
    }
    assert brightest == {"centre_square": 0.0, "whole": 1.0}
    ten = {
        region: eval_transform(*sizes, views="ten_crop", crop_region=region)(image)
        for region in ("centre_square", "whole")
    }
    assert ten["whole"].shape == ten["centre_square"].shape == (10, 3, 32, 32)
    assert float(ten["whole"][0].mean()) == 1.0 and float(ten["centre_square"].max()) == 0.0  # corners
    with pytest.raises(ValueError, match="crop_region"):
        train_transform("flip_crop", *sizes, crop_region="left")
