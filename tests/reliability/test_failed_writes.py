"""Every write path when the disk refuses: train ``--resume`` on a read-only run folder, the lock, ``sample --out``
in a read-only folder, the evaluation tables. One clear line, nothing left behind, and still one line when the
cleanup fails too. Tests run as root, where chmod protects nothing, so ``os.open``, ``open``, ``os.replace`` and
``unlink`` are replaced with versions that fail (as in test_write_failures.py)."""

from __future__ import annotations

import builtins
import errno
import io
import os
import shutil
from pathlib import Path

import pytest

import evaluation.__main__ as evaluation_cli
import generators.__main__ as cli_module
from evaluation import report, runner
from generators import checkpoints
from generators.checkpoints import LOCK, TEMP_MARK, atomic_write_bytes
from generators.errors import UserError, WriteFailed

from .support import assert_one_line_error, cli_in_process, snapshot, tiny_flags, train_tiny


def oserror(code: int) -> OSError:
    return OSError(code, os.strerror(code))


@pytest.fixture
def run(made, tmp_path):
    shutil.copytree(made[1], tmp_path / "runs" / "r")
    return tmp_path / "runs" / "r"


def resume_cli(capsys, images, run_dir):
    return cli_in_process(
        capsys, "train", *tiny_flags("vae"), "--dataset", f"folder:{images}", "--steps", "4",
        "--out-dir", str(run_dir.parent), "--run", run_dir.name, "--resume",
    )  # fmt: skip


def test_resume_on_a_read_only_run_folder_is_one_line(made, run, capsys, monkeypatch):
    before = snapshot(run)
    real_open = os.open

    def read_only(path, flags, *args, **kwargs):
        if flags & os.O_CREAT and Path(path).parent == run:
            raise PermissionError(errno.EROFS, os.strerror(errno.EROFS), str(path))
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(checkpoints.os, "open", read_only)
    code, _, err = resume_cli(capsys, made[0], run)
    assert_one_line_error(code, err, str(run / LOCK), "Read-only file system")
    assert snapshot(run) == before


@pytest.mark.parametrize("cleanup_fails", [False, True], ids=["cleanup works", "cleanup fails too"])
def test_lock_that_cannot_be_written_is_one_line(made, run, capsys, monkeypatch, cleanup_fails):
    real_fdopen = os.fdopen

    class FullDisk(io.RawIOBase):
        def write(self, data):
            raise oserror(errno.ENOSPC)

    def fdopen(fd, mode="r", *args, **kwargs):  # the lock is the one file opened for text writing here
        return os.close(fd) or FullDisk() if mode == "w" else real_fdopen(fd, mode, *args, **kwargs)

    monkeypatch.setattr(checkpoints.os, "fdopen", fdopen)
    if cleanup_fails:
        real_unlink = Path.unlink
        monkeypatch.setattr(
            Path, "unlink", lambda self, *a, **k: (_ for _ in ()).throw(oserror(errno.EIO)) if self.name == LOCK
            else real_unlink(self, *a, **k),
        )  # fmt: skip
    code, _, err = resume_cli(capsys, made[0], run)
    assert_one_line_error(code, err, str(run / LOCK), "No space left on device")
    monkeypatch.undo()
    assert not (run / LOCK).exists() or cleanup_fails  # left only when its removal failed too: an empty lock,
    assert train_tiny(made[0], "vae", run, 4, resume=True)["step"] == 4  # which the next trainer takes over


@pytest.mark.parametrize("cleanup_fails", [False, True], ids=["cleanup works", "cleanup fails too"])
def test_sample_into_a_read_only_folder_is_one_line(run, tmp_path, capsys, monkeypatch, cleanup_fails):
    out = tmp_path / "out"
    out.mkdir()
    real_open = builtins.open

    class Refusing:
        """Opens the temp file, then fails its first write of samples (the header was accepted)."""

        def __init__(self, path, mode):
            self.fh, self.writes = real_open(path, mode), 0

        def write(self, data):
            self.writes += 1
            if self.writes > 1:
                raise oserror(errno.EROFS)
            return self.fh.write(data)

        def __getattr__(self, name):
            return getattr(self.fh, name)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.fh.close()

    monkeypatch.setattr(cli_module, "open", Refusing, raising=False)
    if cleanup_fails:
        real_unlink = Path.unlink
        monkeypatch.setattr(
            Path, "unlink", lambda self, *a, **k: (_ for _ in ()).throw(oserror(errno.EROFS)) if TEMP_MARK in self.name
            else real_unlink(self, *a, **k),
        )  # fmt: skip
    code, _, err = cli_in_process(
        capsys, "sample", str(run), "--n", "8", "--batch-size", "2", "--out", str(out / "s.npy")
    )
    assert_one_line_error(code, err, str(out / "s.npy"), "Read-only file system")
    assert not (out / "s.npy").exists()
    monkeypatch.undo()
    leftovers = [p for p in out.iterdir() if TEMP_MARK in p.name]
    assert leftovers == [] or cleanup_fails  # a folder that refuses writes may refuse the removal too


def test_atomic_write_whose_cleanup_fails_is_still_one_line(tmp_path, monkeypatch):
    target = tmp_path / "table.json"
    target.write_text("old")
    monkeypatch.setattr(checkpoints.os, "replace", lambda *a: (_ for _ in ()).throw(oserror(errno.ENOSPC)))
    real_unlink = Path.unlink
    monkeypatch.setattr(
        Path, "unlink", lambda self, *a, **k: (_ for _ in ()).throw(oserror(errno.EROFS)) if TEMP_MARK in self.name
        else real_unlink(self, *a, **k),
    )  # fmt: skip
    with pytest.raises(WriteFailed) as caught:
        atomic_write_bytes(target, b"new")
    message = str(caught.value)
    assert "No space left on device" in message and "could not be removed" in message and "\n" not in message
    assert target.read_text() == "old"


@pytest.fixture
def stub_evaluation(monkeypatch):
    """The table writing of ``python -m evaluation`` without scoring anything: one fixed row."""
    monkeypatch.setattr(runner, "check_inputs", lambda *a, **k: {"dataset": "mnist5k"})  # the run info it checked
    monkeypatch.setattr(runner, "evaluate_run", lambda run_dir, **k: {"run": str(run_dir)})
    monkeypatch.setattr(report, "to_text", lambda rows, width=None: "table")
    for fmt in evaluation_cli.FORMATS:
        monkeypatch.setattr(report, f"to_{fmt}", lambda rows, fmt=fmt: f"new {fmt}")


@pytest.mark.parametrize("fmt", evaluation_cli.FORMATS)
@pytest.mark.parametrize("where", ["temp file", "os.replace"])
def test_evaluation_tables_are_written_atomically(stub_evaluation, tmp_path, capsys, monkeypatch, fmt, where):
    table, old = tmp_path / f"table.{fmt}", '["old table"]'  # an older table of the same kind may be replaced
    table.write_text(old)
    if where == "os.replace":
        monkeypatch.setattr(checkpoints.os, "replace", lambda *a: (_ for _ in ()).throw(oserror(errno.ENOSPC)))
    else:
        monkeypatch.setattr(checkpoints, "open", lambda *a, **k: (_ for _ in ()).throw(oserror(errno.ENOSPC)),
                            raising=False)  # fmt: skip
    capsys.readouterr()
    code = evaluation_cli.main(["run", f"--{fmt}", str(table)])
    assert_one_line_error(code, capsys.readouterr().err, str(table), "No space left on device")
    assert table.read_text() == old and sorted(p.name for p in tmp_path.iterdir()) == [table.name]
    monkeypatch.undo()


def test_evaluation_tables_are_written(stub_evaluation, tmp_path, capsys):
    paths = {fmt: tmp_path / f"t.{fmt}" for fmt in evaluation_cli.FORMATS}
    code = evaluation_cli.main(["run", *[a for fmt, p in paths.items() for a in (f"--{fmt}", str(p))]])
    assert code == 0 and all(p.read_text() == f"new {fmt}" for fmt, p in paths.items())


def test_write_failed_is_a_user_error():
    assert issubclass(WriteFailed, UserError) and issubclass(WriteFailed, OSError)
