"""Smaller faults: SIGTERM while sampling, control characters in run names, ``--device meta``, ``--dataset folder:``
with no path, images too large to decode, unreadable entries in a dataset folder and ``--progress-json`` naming a
folder."""

from __future__ import annotations

import errno
import os
import shutil
import signal
import struct
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from generators import data as data_module
from generators.checkpoints import TEMP_MARK
from generators.data import load_dataset
from generators.errors import UserError

from .support import (
    assert_one_line_error,
    cli_in_process,
    make_image_folder,
    start_cli,
    tiny_flags,
)


def test_sigterm_while_sampling_leaves_no_temp_file(made, tmp_path):
    out = tmp_path / "s.npy"
    process = start_cli("sample", str(made[1]), "--n", "1000000", "--batch-size", "500", "--out", str(out))
    deadline = time.monotonic() + 120
    while not [p for p in tmp_path.iterdir() if TEMP_MARK in p.name]:  # sampling has started writing
        assert process.poll() is None, process.stderr.read()
        assert time.monotonic() < deadline
        time.sleep(0.02)
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 128 + signal.SIGTERM, err
    assert err.strip().splitlines() == [f"interrupted by SIGTERM: nothing was written to {out}"]
    assert list(tmp_path.iterdir()) == []


def train_args(images, out, *extra):
    return ["train", *tiny_flags("vae"), "--dataset", f"folder:{images}", "--steps", "1", "--out-dir", str(out), *extra]


@pytest.mark.parametrize("name", ["a\nb", "tab\there", "esc\x1b[31mred", "bell\x07", "x" * 201])
def test_run_name_with_control_characters_is_refused(made, tmp_path, capsys, name):
    code, _, err = cli_in_process(capsys, *train_args(made[0], tmp_path / "runs", "--run", name))
    assert_one_line_error(code, err, "--run", "control characters")
    assert not (tmp_path / "runs").exists()


def test_list_prints_hostile_names_on_one_line(made, tmp_path, capsys):
    """Folders made by other means (a copied archive) may still carry such names; `list` escapes them."""
    for name in ("good", "evil\nname", "esc\x1b[2J"):
        shutil.copytree(made[1], tmp_path / name)
    code, out, err = cli_in_process(capsys, "list", "--out-dir", str(tmp_path))
    assert code == 0 and err == ""
    rows = out.strip().splitlines()
    assert len(rows) == 4 and sorted(r.split()[0] for r in rows[1:]) == ["esc\\x1b[2J", "evil\\nname", "good"]
    assert "\x1b" not in out


def test_device_meta_and_other_non_compute_devices_are_refused(made, tmp_path, capsys):
    for device in ("meta", "xla", "cpu:abc", "cuda\n"):
        code, _, err = cli_in_process(capsys, *train_args(made[0], tmp_path / "runs", "--device", device))
        assert_one_line_error(code, err, "is not supported", "cpu")
    assert not (tmp_path / "runs").exists()


def test_folder_dataset_without_a_path_is_refused(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(make_image_folder(tmp_path / "cwd"))  # images here must not be trained on
    for dataset in ("folder:", "folder:  "):
        code, _, err = cli_in_process(
            capsys, "train", "vae", "--dataset", dataset, "--steps", "1", "--out-dir", str(tmp_path / "runs")
        )
        assert_one_line_error(code, err, "folder: needs a path")
    assert not (tmp_path / "runs").exists()


def png_header_only(path: Path, width: int, height: int) -> None:
    """A PNG whose header claims ``width`` x ``height`` grey pixels, with no pixel data at all."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b""))


def test_image_over_the_pixel_cap_is_skipped_before_decoding(tmp_path, capsys, monkeypatch):
    """100 megapixels: under PIL's own bomb error (179 M), over the project's cap (64 M); never decoded."""
    images = make_image_folder(tmp_path / "images", n=4)
    png_header_only(images / "bomb.png", 10_000, 10_000)
    decoded = []
    real_load = Image.Image.load
    monkeypatch.setattr(Image.Image, "load", lambda self: decoded.append(self.size) or real_load(self))
    data = load_dataset(f"folder:{images}", image_size=16, channels=1)
    assert len(data.train) + len(data.test) == 4 and (10_000, 10_000) not in decoded
    assert "bomb.png" in capsys.readouterr().err


def test_pixel_cap_applies_to_real_images(tmp_path, capsys, monkeypatch):
    images = make_image_folder(tmp_path / "images", n=4)
    Image.fromarray(np.zeros((40, 40), np.uint8)).save(images / "large.png")
    monkeypatch.setattr(data_module, "MAX_IMAGE_PIXELS", 1000)  # 40 x 40 = 1600 pixels, 16 x 16 = 256
    data = load_dataset(f"folder:{images}", image_size=16, channels=1)
    assert len(data.train) + len(data.test) == 4
    assert capsys.readouterr().err.strip().endswith("e.g. large.png")


def test_unreadable_entries_in_a_dataset_folder_are_skipped(tmp_path, capsys, monkeypatch):
    """EACCES on one image (and on the stat of another): skipped with one warning, the others load."""
    images = make_image_folder(tmp_path / "images", n=5)
    real_open, real_is_file = Image.open, Path.is_file

    def refuse_open(path, *args, **kwargs):
        if Path(path).name == "00.png":
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(path))
        return real_open(path, *args, **kwargs)

    def refuse_stat(self):
        if self.name == "01.png":
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(self))
        return real_is_file(self)

    monkeypatch.setattr(Image, "open", refuse_open)
    monkeypatch.setattr(Path, "is_file", refuse_stat)
    data = load_dataset(f"folder:{images}", image_size=16, channels=1)
    assert len(data.train) + len(data.test) == 3
    assert "skipped 2 unreadable" in capsys.readouterr().err


def test_unreadable_dataset_folder_is_one_line(tmp_path, capsys, monkeypatch):
    images = make_image_folder(tmp_path / "images", n=4)
    real_iterdir = Path.iterdir

    def refuse(self):
        if self == images:
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(self))
        return real_iterdir(self)

    monkeypatch.setattr(Path, "iterdir", refuse)
    with pytest.raises(UserError, match=f"cannot list the dataset folder {images} .Permission denied"):
        load_dataset(f"folder:{images}", image_size=16, channels=1)


def test_progress_json_naming_a_folder_is_refused_before_anything(made, tmp_path, capsys):
    (tmp_path / "progress").mkdir()
    code, _, err = cli_in_process(
        capsys, *train_args(made[0], tmp_path / "runs", "--progress-json", str(tmp_path / "progress"))
    )
    assert_one_line_error(code, err, "--progress-json", "is a folder")
    assert not (tmp_path / "runs").exists()
