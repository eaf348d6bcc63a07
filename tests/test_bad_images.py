"""A folder data set with a truncated JPEG and a text file named .png: data.bad_images=fail stops the run with one
line naming the file, data.bad_images=skip trains without them and its log names and counts them."""

import re

import pytest
import torch
from helpers.commands import run_alexlab
from torchvision.io import write_jpeg

# every image read once an epoch (batch 1, all batches), by two loader workers (the count crosses processes)
FOLDER = ("experiment=smoke", "logger=none", "data=imagefolder", "data.num_classes=2", "data.image_size=32")
FOLDER += ("data.resize_size=36", "model.input_size=32", "data.val_size=2", "data.batch_size=1", "data.num_workers=2")
FOLDER += ("trainer.max_epochs=1", "trainer.limit_train_batches=null")


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("images")
    for label in range(2):
        (root / f"class{label}").mkdir()
        for i in range(8):
            write_jpeg(
                torch.full((3, 40, 40), 60 + 100 * label + i, dtype=torch.uint8), str(root / f"class{label}/{i}.jpg")
            )
    jpeg = (root / "class0/0.jpg").read_bytes()
    (root / "class0/0.jpg").write_bytes(jpeg[: len(jpeg) // 2])
    (root / "class1/notes.png").write_text("not an image\n")
    return root


def test_fail_names_the_file_in_one_line(tmp_path, folder):
    result = run_alexlab(*FOLDER, f"data.source.root={folder}", f"paths.output_root={tmp_path}", cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert re.fullmatch(
        r"alexlab: error: cannot decode the image .*(class0/0\.jpg \(Image is incomplete or truncated\)|"
        r"class1/notes\.png \(Unsupported image file\)): replace or delete the file, or set data\.bad_images=skip "
        r"to leave such files out",
        last,
    ), last
    assert "Traceback" not in result.stdout + result.stderr


def test_skip_leaves_them_out_and_counts_them(tmp_path, folder):
    run_dir = tmp_path / "run"
    result = run_alexlab(
        *FOLDER, f"data.source.root={folder}", "data.bad_images=skip", f"hydra.run.dir={run_dir}", cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    log = (run_dir / "alexlab.log").read_text()  # the workers' lines too
    assert re.search(r"data.bad_images=skip: left out \S+class0/0\.jpg \(Image is incomplete or truncated\)", log)
    assert re.search(r"data.bad_images=skip: left out \S+class1/notes\.png \(Unsupported image file\)", log)
    counts = re.findall(r"data.bad_images=skip: (\d+) image file\(s\) could not be decoded and were left out", log)
    assert counts[-1] == "2", log
