"""``--overwrite`` never loses the good run. The new run is built in a hidden sibling folder and swapped in only
after its first good checkpoint that follows a training step; every failure before that (bad options, a dataset
too small, a diverging first step, NaN weights, a failed write, a signal) leaves the old run byte-identical
(every file hashed) and no hidden folder behind."""

from __future__ import annotations

import errno
import os
import shutil
import signal
from pathlib import Path

import pytest

from generators import checkpoints, run_folder
from generators.checkpoints import LOCK, load_run, read_run_info
from generators.errors import UserError, WriteFailed
from generators.training import Diverged, Interrupted

from .support import (
    STEPS_PER_EPOCH,
    assert_one_line_error,
    cli_in_process,
    hidden_leftovers,
    make_image_folder,
    poison_vae_steps,
    snapshot,
    tiny_flags,
    train_tiny,
)


@pytest.fixture(scope="module")
def templates(tmp_path_factory):
    """A finished VAE and DCGAN run (4 steps), copied fresh into each test."""
    root = tmp_path_factory.mktemp("overwrite")
    images = make_image_folder(root / "images")
    for model in ("vae", "dcgan"):
        train_tiny(images, model, root / "runs" / model, 2 * STEPS_PER_EPOCH)
    return root


@pytest.fixture
def old(templates, tmp_path):
    """(images, out_dir, {model: (run_dir, snapshot)}) with copies of the template runs."""
    out = tmp_path / "runs"
    shutil.copytree(templates / "runs", out)
    return templates / "images", out, {m: (out / m, snapshot(out / m)) for m in ("vae", "dcgan")}


def overwrite_cli(capsys, images, out, model, *extra):
    return cli_in_process(
        capsys,
        "train",
        *tiny_flags(model),
        "--dataset",
        f"folder:{images}",
        "--steps",
        "6",
        "--out-dir",
        str(out),
        "--run",
        model,
        "--overwrite",
        *extra,
    )


def assert_untouched(out: Path, run_dir: Path, before: dict) -> None:
    assert snapshot(run_dir) == before
    assert hidden_leftovers(out) == []
    assert read_run_info(run_dir)["step"] == 2 * STEPS_PER_EPOCH


BAD_OPTIONS = {  # model, extra flags, words of the one error line
    "lr nan": ("vae", ["--lr", "nan"], ["--lr", "finite"]),
    "beta nan": ("vae", ["--beta", "nan"], ["--beta", "finite"]),
    "beta inf": ("vae", ["--beta", "inf"], ["--beta"]),
    "adam beta1 of 1": ("dcgan", ["--beta1", "1"], ["--beta1", "[0, 1)"]),
    "latent 10**9": ("vae", ["--latent-dim", str(10**9)], ["--latent-dim", "1024"]),
    "huge widths": (
        "dcgan",
        ["--latent-dim", "1024", "--g-width", "1024", "--d-width", "1024"],
        ["parameters", "allowed"],
    ),
    "seed past 64 bits": ("vae", ["--seed", str(2**64)], ["--seed"]),
    "device meta": ("vae", ["--device", "meta"], ["'meta' is not supported"]),
    "batch size too large": ("vae", ["--batch-size", str(10**6)], ["--batch-size"]),
}


@pytest.mark.parametrize("case", list(BAD_OPTIONS))
def test_bad_option_leaves_the_old_run_byte_identical(old, capsys, case):
    images, out, runs = old
    model, extra, mentions = BAD_OPTIONS[case]
    code, _, err = overwrite_cli(capsys, images, out, model, *extra)
    assert_one_line_error(code, err, *mentions)
    assert_untouched(out, *runs[model])


@pytest.mark.parametrize("files", [0, 1, 2], ids=["empty folder", "one image", "two images (batch norm)"])
def test_too_small_folder_dataset_leaves_the_old_run(old, capsys, tmp_path, files):
    _, out, runs = old
    small = make_image_folder(tmp_path / "small", n=files)
    code, _, err = overwrite_cli(capsys, small, out, "dcgan")
    assert_one_line_error(code, err, str(small) if files < 2 else "batch norm")
    assert_untouched(out, *runs["dcgan"])


def test_missing_dataset_and_empty_folder_path_leave_the_old_run(old, capsys):
    _, out, runs = old
    for dataset, words in (("folder:/nonexistent/x", ["/nonexistent/x"]), ("folder:", ["needs a path"])):
        code, _, err = overwrite_cli(capsys, "unused", out, "vae", "--dataset", dataset)
        assert_one_line_error(code, err, *words)
        assert_untouched(out, *runs["vae"])


def test_diverging_first_step_keeps_the_old_run_and_says_so(old, capsys, monkeypatch):
    images, out, runs = old
    poison_vae_steps(monkeypatch, at_step=1, weights=False)
    code, _, err = overwrite_cli(capsys, images, out, "vae")
    line = assert_one_line_error(code, err, "diverged", "left as it was", expected_code=1)
    assert "last good checkpoint" not in line
    assert_untouched(out, *runs["vae"])


def test_nan_weights_at_the_first_checkpoint_keep_the_old_run(old, monkeypatch):
    images, out, runs = old
    poison_vae_steps(monkeypatch, at_step=STEPS_PER_EPOCH, weights=True)  # the first checkpoint after a step
    with pytest.raises(Diverged, match="NaN or infinite") as caught:
        train_tiny(images, "vae", runs["vae"][0], 6, overwrite=True)
    assert caught.value.kept_previous
    assert_untouched(out, *runs["vae"])


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EACCES], ids=["ENOSPC", "EACCES"])
def test_failed_first_write_of_the_new_run_keeps_the_old_one(old, monkeypatch, code):
    images, out, runs = old
    real_replace = os.replace

    def replace(src, dst, *args, **kwargs):
        if ".new-" in str(dst):
            raise OSError(code, os.strerror(code))
        return real_replace(src, dst, *args, **kwargs)

    monkeypatch.setattr(checkpoints.os, "replace", replace)
    with pytest.raises(WriteFailed, match=os.strerror(code)):
        train_tiny(images, "vae", runs["vae"][0], 6, overwrite=True)
    assert_untouched(out, *runs["vae"])


def test_unwritable_output_folder_keeps_the_old_run(old, monkeypatch):
    images, out, runs = old
    real_mkdir = Path.mkdir

    def mkdir(self, *args, **kwargs):
        if ".new-" in self.name:
            raise OSError(errno.EACCES, os.strerror(errno.EACCES))
        return real_mkdir(self, *args, **kwargs)

    monkeypatch.setattr(Path, "mkdir", mkdir)
    with pytest.raises(UserError, match="Permission denied"):
        train_tiny(images, "vae", runs["vae"][0], 6, overwrite=True)
    assert_untouched(out, *runs["vae"])


def test_signal_after_a_step_swaps_in_the_new_run_which_resumes(old):
    """Ctrl-C after step 1: the new run's checkpoint is good, so it replaces the old one (and says --resume). A
    signal always lets the step in progress finish, so an interrupted run has at least one step to swap in."""
    images, out, runs = old
    run_dir = runs["vae"][0]

    def interrupt(progress):
        if progress["step"] == 1:
            os.kill(os.getpid(), signal.SIGINT)

    with pytest.raises(Interrupted):
        train_tiny(images, "vae", run_dir, 6, overwrite=True, callback=interrupt)
    # the signal raised in step 1's progress report is agreed (as all processes under torchrun do) at the end of
    # the next step, so the run stops after step 2
    assert read_run_info(run_dir)["step"] == 2 and hidden_leftovers(out) == [] and not (run_dir / LOCK).exists()
    assert train_tiny(images, "vae", run_dir, 6, resume=True)["step"] == 6


@pytest.mark.parametrize("atomic_exchange", [True, False], ids=["renameat2", "two renames"])
def test_successful_overwrite_replaces_the_run_and_leaves_nothing(old, monkeypatch, atomic_exchange):
    images, out, runs = old
    run_dir = runs["vae"][0]
    if not atomic_exchange:
        monkeypatch.setattr(run_folder, "_exchange", lambda a, b: False)
    result = train_tiny(images, "vae", run_dir, 6, overwrite=True)
    model, info = load_run(run_dir)
    assert result["step"] == info["step"] == 6
    assert hidden_leftovers(out) == [] and not (run_dir / LOCK).exists()
    assert sorted(p.name for p in run_dir.iterdir()) == sorted(
        ["history.csv", "model.safetensors", "preview.png", "resume.pt"]
    )
    assert max(r["step"] for r in checkpoints.read_history(run_dir)) == 6  # history continued in place after the swap


def test_old_run_is_listed_until_the_swap(old, monkeypatch):
    """What `generators list` and the dashboard see while the new run proves itself: the old run, nothing hidden."""
    images, out, runs = old
    seen = []

    def look(progress):
        if progress["step"] == 1:
            listed, broken = checkpoints.list_runs(out)
            seen.append(({r["run_dir"]: r["step"] for r in listed}, broken))

    train_tiny(images, "vae", runs["vae"][0], 6, overwrite=True, callback=look)
    listed, broken = seen[0]
    assert listed[str(runs["vae"][0])] == 2 * STEPS_PER_EPOCH and broken == []
    assert len(listed) == 2  # vae and dcgan, no hidden build folder


def test_leftovers_of_a_killed_overwrite_are_cleared(old, capsys):
    """kill -9 before the swap leaves `.r.new-PID`; between the two renames of the fallback, `.r.old-PID` and no
    run folder. The next training of that run puts the old run back and deletes the rest, before its checks: a
    plain `train` then refuses, since the run exists again."""
    images, out, runs = old
    run_dir, before = runs["vae"]
    dead = 2**22 + 12345  # above pid_max on Linux: never alive
    (out / f".vae.new-{dead}").mkdir()
    run_dir.rename(out / f".vae.old-{dead}")
    code, _, err = cli_in_process(capsys, "train", *tiny_flags("vae"), "--dataset", f"folder:{images}",
                                  "--steps", "1", "--out-dir", str(out), "--run", "vae")  # fmt: skip
    assert_one_line_error(code, err, "already exists")
    assert snapshot(run_dir) == before and hidden_leftovers(out) == []


def test_progress_file_inside_the_old_run_is_refused_with_overwrite(old, capsys):
    images, out, runs = old
    run_dir, before = runs["vae"]
    code, _, err = overwrite_cli(capsys, images, out, "vae", "--progress-json", str(run_dir / "p.json"))
    assert_one_line_error(code, err, "--progress-json", "outside the run folder")
    assert_untouched(out, run_dir, before)


def test_ctrl_c_during_the_swap_completes_it(old, monkeypatch):
    """SIGINT arriving in the middle of the swap only sets the harness's flag: the swap finishes, the run stops
    at its next check with a checkpoint in the new run, and nothing is left half-moved."""
    images, out, runs = old
    run_dir = runs["vae"][0]
    real_exchange = run_folder._exchange

    def exchange(a, b):
        os.kill(os.getpid(), signal.SIGINT)
        return real_exchange(a, b)

    monkeypatch.setattr(run_folder, "_exchange", exchange)
    with pytest.raises(Interrupted):
        train_tiny(images, "vae", run_dir, 50, overwrite=True)
    step = load_run(run_dir)[1]["step"]  # the new run: the old one is gone, the new one loads whole
    assert snapshot(run_dir) != runs["vae"][1] and max(r["step"] for r in checkpoints.read_history(run_dir)) == step
    assert hidden_leftovers(out) == [] and not (run_dir / LOCK).exists()
