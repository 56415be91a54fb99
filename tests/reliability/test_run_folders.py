"""Further cases a careful user hits with run folders: resuming the wrong thing, a name that is a file or
not a run, an unwritable location, leftovers of a killed writer, a run folder copied elsewhere."""

from __future__ import annotations

import errno
import json
import os
import shutil
from pathlib import Path

import pytest

import generators.__main__ as cli_module
from generators.checkpoints import HISTORY, WEIGHTS, load_run, read_run_info
from generators.errors import UserError
from generators.training import run_training

from .support import TINY, assert_one_line_error, cli_in_process, make_image_folder, tiny_config, tiny_flags, train_tiny


@pytest.fixture
def images(tmp_path):
    return make_image_folder(tmp_path / "images")


def test_resume_with_nothing_to_resume(images, tmp_path):
    with pytest.raises(UserError, match=f"nothing to resume: {tmp_path / 'r' / WEIGHTS} does not exist$"):
        train_tiny(images, "vae", tmp_path / "r", 2, resume=True)
    assert not (tmp_path / "r").exists()


def test_run_killed_before_its_first_checkpoint_says_to_overwrite(images, tmp_path):
    (tmp_path / "r").mkdir()
    (tmp_path / "r" / HISTORY).write_text("step\n")  # what a kill between the first two writes leaves
    with pytest.raises(UserError, match="never reached its first checkpoint: use --overwrite"):
        train_tiny(images, "vae", tmp_path / "r", 2, resume=True)
    train_tiny(images, "vae", tmp_path / "r", 2, overwrite=True)
    assert load_run(tmp_path / "r")[1]["step"] == 2


def test_resume_of_a_different_model_is_refused(images, tmp_path):
    train_tiny(images, "vae", tmp_path / "r", 2)
    with pytest.raises(UserError, match="holds a vae run, not ae"):
        train_tiny(images, "ae", tmp_path / "r", 4, resume=True)


def test_resume_with_a_different_model_option_is_refused_not_ignored(images, tmp_path, capsys):
    train_tiny(images, "vae", tmp_path / "r", 2)
    base = [
        "train",
        *tiny_flags("vae"),
        "--dataset",
        f"folder:{images}",
        "--out-dir",
        str(tmp_path),
        "--run",
        "r",
        "--resume",
        "--steps",
        "4",
    ]
    code, _, err = cli_in_process(capsys, *base, "--beta", "4")
    assert_one_line_error(code, err, "--beta 1.0, not 4.0", "keeps its settings")
    assert read_run_info(tmp_path / "r")["step"] == 2
    code, _, err = cli_in_process(capsys, *base, "--beta", "1")  # the same value is fine
    assert code == 0, err
    assert read_run_info(tmp_path / "r")["step"] == 4


def test_existing_run_without_a_flag_is_left_alone(images, tmp_path):
    train_tiny(images, "vae", tmp_path / "r", 2)
    before = (tmp_path / "r" / WEIGHTS).read_bytes()
    with pytest.raises(UserError, match="already exists: pick another --run, or add --resume or --overwrite"):
        train_tiny(images, "vae", tmp_path / "r", 2)
    assert (tmp_path / "r" / WEIGHTS).read_bytes() == before


def test_run_name_that_is_a_file(images, tmp_path):
    (tmp_path / "r").write_text("my notes")
    with pytest.raises(UserError, match="is a file, not a run folder"):
        train_tiny(images, "vae", tmp_path / "r", 2)
    assert (tmp_path / "r").read_text() == "my notes"


def test_overwrite_never_empties_a_folder_that_is_not_a_run(images, tmp_path, capsys):
    (tmp_path / "thesis").mkdir()
    (tmp_path / "thesis" / "chapter1.tex").write_text("precious")
    code, _, err = cli_in_process(
        capsys,
        "train",
        *tiny_flags("vae"),
        "--dataset",
        f"folder:{images}",
        "--steps",
        "2",
        "--out-dir",
        str(tmp_path),
        "--run",
        "thesis",
        "--overwrite",
    )
    assert_one_line_error(code, err, "is not a run folder", "would delete")
    assert (tmp_path / "thesis" / "chapter1.tex").read_text() == "precious"


def test_unwritable_output_folder(images, tmp_path, monkeypatch):
    """Tests run as root, so the permission error is simulated."""

    def refuse(self, *args, **kwargs):
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(self))

    monkeypatch.setattr(Path, "mkdir", refuse)
    with pytest.raises(UserError, match=f"cannot create the run folder {tmp_path / 'runs' / 'r'} .Permission denied"):
        train_tiny(images, "vae", tmp_path / "runs" / "r", 2)


def test_unwritable_sample_output(images, tmp_path, monkeypatch, capsys):
    train_tiny(images, "ae", tmp_path / "r", 2)

    def refuse(path, *args, **kwargs):
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(path))

    monkeypatch.setattr(cli_module, "open", refuse, raising=False)
    code, _, err = cli_in_process(capsys, "sample", str(tmp_path / "r"), "--n", "4", "--out", str(tmp_path / "s.npy"))
    assert_one_line_error(code, err, str(tmp_path / "s.npy"), "Permission denied")


def test_temp_files_of_a_killed_writer_are_cleared_on_resume(images, tmp_path):
    train_tiny(images, "vae", tmp_path / "r", 2)
    leftovers = [tmp_path / "r" / f".{WEIGHTS}.tmp-999999", tmp_path / "r" / ".resume.pt.tmp-999998"]
    for path in leftovers:
        path.write_bytes(b"half a file")
    train_tiny(images, "vae", tmp_path / "r", 4, resume=True)
    assert not any(path.exists() for path in leftovers)


def test_run_folder_copied_elsewhere_loads_and_resumes(images, tmp_path):
    """A classmate's run: nothing in the folder depends on where it was made."""
    train_tiny(images, "vae", tmp_path / "mine" / "r", 2)
    shutil.copytree(tmp_path / "mine" / "r", tmp_path / "theirs" / "r")
    shutil.rmtree(tmp_path / "mine")
    assert load_run(tmp_path / "theirs" / "r")[1]["step"] == 2
    run_training(
        "vae", TINY["vae"], tiny_config(images, steps=4), tmp_path / "theirs" / "r", resume=True, show_progress=False
    )
    assert load_run(tmp_path / "theirs" / "r")[1]["step"] == 4


def test_progress_file_inside_the_new_run_folder_is_accepted(images, tmp_path, capsys):
    """The dashboard asks for RUN_DIR/progress.json before the run folder exists."""
    progress = tmp_path / "runs" / "r" / "progress.json"
    code, _, err = cli_in_process(
        capsys,
        "train",
        *tiny_flags("ae"),
        "--dataset",
        f"folder:{images}",
        "--steps",
        "2",
        "--out-dir",
        str(tmp_path / "runs"),
        "--run",
        "r",
        "--progress-json",
        str(progress),
    )
    assert code == 0, err
    assert json.loads(progress.read_text())["step"] == 2
