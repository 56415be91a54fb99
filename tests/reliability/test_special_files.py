"""Special files where a run file belongs: a symlink to /dev/zero (endless), a FIFO (blocks whoever opens it for
reading), a folder. Every reader reads regular files only, with a size bound, and never blocks: one line naming
the file instead. A ``SIGALRM`` after 20 s turns a hang into a failure instead of a stuck suite."""

from __future__ import annotations

import os
import shutil
import signal
from pathlib import Path

import pytest

from generators import checkpoints
from generators.checkpoints import (
    HISTORY,
    LOCK,
    RESUME,
    WEIGHTS,
    list_runs,
    load_resume_state,
    load_run,
    read_history,
    read_json_file,
    read_regular_file,
    read_run_info,
)
from generators.data import load_dataset
from generators.errors import UserError
from generators.samplers import GMM_FILE, latent_sampler

from .support import assert_one_line_error, cli_in_process, make_image_folder, train_tiny


@pytest.fixture(autouse=True)
def no_hang():
    def hung(signum, frame):
        raise AssertionError("a reader blocked on a special file")

    previous = signal.signal(signal.SIGALRM, hung)
    signal.alarm(20)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, previous)


def make_special(path: Path, kind: str) -> None:
    if path.exists():
        path.unlink()
    if kind == "symlink to /dev/zero":
        path.symlink_to("/dev/zero")
    elif kind == "fifo":
        os.mkfifo(path)
    else:
        path.mkdir()


KINDS = ["symlink to /dev/zero", "fifo", "folder"]
READERS = {  # file -> how it is read
    WEIGHTS: lambda run_dir: load_run(run_dir),
    "run info": lambda run_dir: read_run_info(run_dir),
    RESUME: lambda run_dir: load_resume_state(run_dir),
    HISTORY: lambda run_dir: read_history(run_dir),
    GMM_FILE: lambda run_dir: latent_sampler(load_run(run_dir)[0], "gmm", run_dir),
}


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("name", list(READERS))
def test_special_file_is_refused_in_one_line(run, name, kind):
    target = WEIGHTS if name == "run info" else name
    make_special(run / target, kind)
    with pytest.raises(UserError, match="not a regular file") as caught:
        READERS[name](run)
    assert str(run / target) in str(caught.value) and "\n" not in str(caught.value)


@pytest.mark.parametrize("kind", KINDS)
def test_list_skips_a_run_whose_weights_are_special(made, tmp_path, capsys, kind):
    for name in ("good", "special"):
        shutil.copytree(made[1], tmp_path / name)
    make_special(tmp_path / "special" / WEIGHTS, kind)
    runs, broken = list_runs(tmp_path)
    assert [Path(r["run_dir"]).name for r in runs] == ["good"] and [p.name for p, _ in broken] == ["special"]


@pytest.mark.parametrize("kind", ["symlink to /dev/zero", "fifo"])
def test_special_lock_is_taken_over(made, run, kind):
    """A lock that is not a regular file holds no owner: it is replaced, and the run resumes."""
    make_special(run / LOCK, kind)
    assert train_tiny(made[0], "vae", run, 4, resume=True)["step"] == 4
    assert not (run / LOCK).exists() and Path("/dev/zero").exists()


def test_lock_that_is_a_folder_is_one_line(made, run, capsys):
    make_special(run / LOCK, "folder")
    with pytest.raises(UserError, match="is a folder, not a lock file"):
        train_tiny(made[0], "vae", run, 4, resume=True)
    assert (run / LOCK).is_dir()


def test_size_bound_stops_a_growing_file(tmp_path, monkeypatch):
    """A file that is larger than the bound is refused by its size; one read never takes more than the bound."""
    path = tmp_path / "big"
    path.write_bytes(b"x" * 100)
    with pytest.raises(UserError, match="more than"):
        read_regular_file(path, 99)
    assert read_regular_file(path, 100) == b"x" * 100
    monkeypatch.setattr(checkpoints, "check_regular_file", lambda path, max_bytes: None)  # grows after the check
    with pytest.raises(UserError, match="larger than"):
        read_regular_file(path, 50)


def test_special_files_in_a_dataset_folder_are_skipped(tmp_path):
    images = make_image_folder(tmp_path / "images", n=4)
    os.mkfifo(images / "pipe.png")
    (images / "zero.png").symlink_to("/dev/zero")
    data = load_dataset(f"folder:{images}", image_size=16, channels=1)
    assert len(data.train) + len(data.test) == 4


def test_sample_of_a_run_with_fifo_weights_is_one_line(run, tmp_path, capsys):
    make_special(run / WEIGHTS, "fifo")
    code, _, err = cli_in_process(capsys, "sample", str(run), "--n", "2", "--out", str(tmp_path / "s.npy"))
    assert_one_line_error(code, err, str(run / WEIGHTS), "not a regular file")


@pytest.mark.parametrize("kind", KINDS)
def test_json_of_a_run_that_is_special_is_refused(tmp_path, kind):
    make_special(tmp_path / "metrics.json", kind)
    with pytest.raises(UserError, match="not a regular file"):
        read_json_file(tmp_path / "metrics.json")


@pytest.mark.parametrize(
    "text, words",
    [("[" * 100_000 + "]" * 100_000, "not valid JSON"), ("{bad", "not valid JSON"), ("\udcff", "not valid JSON")],
    ids=["nested 100 000 deep", "not JSON", "not UTF-8"],
)
def test_json_of_a_run_that_is_malformed_is_one_line(tmp_path, text, words):
    (tmp_path / "metrics.json").write_bytes(text.encode("utf-8", "surrogateescape"))
    with pytest.raises(UserError, match=words) as caught:
        read_json_file(tmp_path / "metrics.json")
    assert "\n" not in str(caught.value)
    (tmp_path / "metrics.json").write_text('{"a": 1}')
    assert read_json_file(tmp_path / "metrics.json") == {"a": 1}
