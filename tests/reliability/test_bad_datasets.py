"""Case 8: messy datasets. Empty or image-less folders, corrupt files, every PIL mode and size, a missing
folder, an offline download: a clear one-line error or a correct conversion, never a traceback."""

from __future__ import annotations

import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from generators.data import load_dataset
from generators.errors import UserError

from .support import assert_one_line_error, make_image_folder, run_cli, tiny_flags, train_tiny


def test_empty_folder_is_one_line_from_the_command(tmp_path):
    (tmp_path / "empty").mkdir()
    result = run_cli(
        "train",
        *tiny_flags("vae"),
        "--dataset",
        f"folder:{tmp_path / 'empty'}",
        "--steps",
        "2",
        "--out-dir",
        str(tmp_path / "runs"),
    )
    assert_one_line_error(result.returncode, result.stderr, "no readable images", str(tmp_path / "empty"))
    assert not (tmp_path / "runs").exists()  # the dataset is loaded before anything is made on disk


def test_folder_without_images_is_refused(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    (tmp_path / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1")
    (tmp_path / "._photo.png").write_bytes(b"\x00\x05\x16\x07 AppleDouble")  # macOS resource fork: not an image
    with pytest.raises(UserError, match="no readable images"):
        load_dataset(f"folder:{tmp_path}")


@pytest.mark.parametrize("what", ["missing", "a file"])
def test_missing_folder_is_refused(tmp_path, what):
    path = tmp_path / "photos"
    if what == "a file":
        path.write_text("x")
    with pytest.raises(UserError, match="does not exist or is not a folder"):
        load_dataset(f"folder:{path}")


def test_corrupt_image_is_skipped_with_a_warning_naming_it(tmp_path, capsys):
    make_image_folder(tmp_path, n=4)
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40)
    data = load_dataset(f"folder:{tmp_path}", image_size=16, channels=1)
    assert len(data.train) + len(data.test) == 4
    expected = f"warning: skipped 1 unreadable or too large image file(s) in {tmp_path}, e.g. broken.png"
    assert capsys.readouterr().err.strip() == expected


def decompression_bomb(path) -> None:
    """A valid 16x16 PNG whose header claims 60000x60000 pixels (3.6 gigapixels)."""
    Image.new("L", (16, 16)).save(path)
    data = bytearray(path.read_bytes())
    data[16:24] = struct.pack(">II", 60000, 60000)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    path.write_bytes(bytes(data))


def test_decompression_bomb_is_skipped_not_decoded(tmp_path, capsys):
    make_image_folder(tmp_path, n=3)
    decompression_bomb(tmp_path / "bomb.png")
    data = load_dataset(f"folder:{tmp_path}", image_size=16, channels=1)
    assert len(data.train) + len(data.test) == 3
    assert "bomb.png" in capsys.readouterr().err


# (mode, size, fill, grey value expected after conversion to 1 channel, RGB expected after conversion to 3)
MODES = {
    "L": ("L", (20, 30), 200, 200, (200, 200, 200)),
    "RGB": ("RGB", (40, 24), (255, 0, 0), 76, (255, 0, 0)),
    "RGBA": ("RGBA", (16, 16), (0, 0, 255, 128), 29, (0, 0, 255)),
    "P": ("P", (50, 20), None, 150, (0, 255, 0)),
    "LA": ("LA", (18, 18), (100, 255), 100, (100, 100, 100)),
    "1": ("1", (64, 64), 1, 255, (255, 255, 255)),
    "CMYK": ("CMYK", (20, 20), (0, 255, 255, 0), 76, (255, 0, 0)),
    "I;16": ("I;16", (20, 20), 128 * 257, 128, (128, 128, 128)),
}


def mode_image(mode, size, fill) -> Image.Image:
    if mode == "P":  # a palette image whose only colour is pure green
        image = Image.new("P", size, 0)
        image.putpalette([0, 255, 0] * 256)
        return image
    if mode == "I;16":
        return Image.fromarray(np.full(size[::-1], fill, dtype=np.uint16))
    return Image.new(mode, size, fill)


@pytest.fixture
def mixed_folder(tmp_path):
    """One class folder per mode, so each image's label says which one it is."""
    for name, (mode, size, fill, _, _) in MODES.items():
        (tmp_path / name).mkdir()
        suffix = ".jpg" if mode == "CMYK" else ".tif" if mode == "I;16" else ".png"
        mode_image(mode, size, fill).save(
            tmp_path / name / f"image{suffix}", **({"quality": 100} if mode == "CMYK" else {})
        )
    return tmp_path


@pytest.mark.parametrize("channels", [1, 3])
def test_mixed_modes_and_sizes_convert_correctly(mixed_folder, channels):
    data = load_dataset(f"folder:{mixed_folder}", image_size=16, channels=channels)
    assert data.image_shape == (channels, 16, 16) and len(data.test) == 0  # one image per class: all train
    for image, label in zip(data.train.images, data.train.labels):
        name = data.class_names[label]
        expected = MODES[name][3] if channels == 1 else MODES[name][4]
        got = image.float().mean((1, 2))
        assert np.allclose(got.numpy(), np.broadcast_to(expected, (channels,)), atol=2), (name, got)


def test_single_image_is_refused(tmp_path):
    make_image_folder(tmp_path, n=1)
    with pytest.raises(UserError, match="only one image"):
        load_dataset(f"folder:{tmp_path}")


def test_batch_norm_model_on_a_one_image_training_split_is_refused(tmp_path):
    images = make_image_folder(tmp_path / "images", n=2)  # 1 train + 1 test image
    with pytest.raises(UserError, match="batch norm, which needs batches of at least 2"):
        train_tiny(images, "dcgan", tmp_path / "r", 2)


@pytest.mark.parametrize("name", ["mnist", "cifar10"])
def test_offline_download_says_where_to_put_the_files(tmp_path, name):
    with pytest.raises(UserError) as caught:
        load_dataset(name, tmp_path / "cache")
    assert str(tmp_path / "cache") in str(caught.value) and "mnist5k" in str(caught.value)


def test_garbage_in_the_download_cache_is_a_clear_error(tmp_path):
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for stem in (
        "train-images-idx3-ubyte",
        "train-labels-idx1-ubyte",
        "t10k-images-idx3-ubyte",
        "t10k-labels-idx1-ubyte",
    ):
        (raw / stem).write_bytes(b"not an idx file")
    with pytest.raises(UserError, match="could not load or download mnist"):
        load_dataset("mnist", tmp_path)
