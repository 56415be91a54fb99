"""Case 5: damaged run folders. Each damage gives one line that names the file (or folder) at fault; the
good runs beside it still list and load."""

from __future__ import annotations

import json
import os
import shutil

import pytest
from safetensors import safe_open
from safetensors.torch import load_file, save

from generators.checkpoints import HISTORY, RESUME, WEIGHTS, load_resume_state, load_run, read_history
from generators.errors import UserError

from .support import assert_one_line_error, cli_in_process, make_image_folder, run_cli, train_tiny


@pytest.fixture(scope="module")
def good_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("good")
    train_tiny(make_image_folder(root / "images"), "vae", root / "run", 2)
    return root / "run"


@pytest.fixture
def damaged(good_run, tmp_path):
    """A fresh copy of the good run to damage."""
    run_dir = tmp_path / "run"
    shutil.copytree(good_run, run_dir)
    return run_dir


def rewrite_config(run_dir, change) -> None:
    """Store new config metadata (``change(info)`` edits it, or returns the raw text) beside the same weights."""
    path = run_dir / WEIGHTS
    with safe_open(str(path), framework="pt") as fh:
        info = json.loads(fh.metadata()["config"])
    text = change(info)
    path.write_bytes(save(load_file(str(path)), metadata={"config": text if text is not None else json.dumps(info)}))


def truncate(fraction):
    def cut(run_dir):
        data = (run_dir / WEIGHTS).read_bytes()
        (run_dir / WEIGHTS).write_bytes(data[: int(len(data) * fraction)])

    return cut


DAMAGE = {
    "truncated-in-header": truncate(0.001),
    "truncated-in-half": truncate(0.5),
    "truncated-by-one-byte": lambda d: (d / WEIGHTS).write_bytes((d / WEIGHTS).read_bytes()[:-1]),
    "random-bytes": lambda d: (d / WEIGHTS).write_bytes(os.urandom(4096)),
    "empty-file": lambda d: (d / WEIGHTS).write_bytes(b""),
    "no-config-metadata": lambda d: (d / WEIGHTS).write_bytes(save(load_file(str(d / WEIGHTS)))),
    "config-not-json": lambda d: rewrite_config(d, lambda info: "{not json"),
    "config-not-an-object": lambda d: rewrite_config(d, lambda info: "[1, 2]"),
    "wrong-latent-size": lambda d: rewrite_config(d, lambda info: info["model_config"].update(latent_dim=5)),
    "wrong-image-channels": lambda d: rewrite_config(
        d, lambda info: info["model_config"].update(image_shape=[3, 16, 16])
    ),
    "wrong-image-size": lambda d: rewrite_config(d, lambda info: info["model_config"].update(image_shape=[1, 32, 32])),
    "unknown-model-name": lambda d: rewrite_config(d, lambda info: info.update(model="gan")),
    "config-of-another-model": lambda d: rewrite_config(d, lambda info: info.update(model="ae")),
    "config-field-of-wrong-type": lambda d: rewrite_config(
        d, lambda info: info["model_config"].update(latent_dim="two")
    ),
    "missing-weights-file": lambda d: (d / WEIGHTS).unlink(),
}


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_damaged_weights_file_is_one_line_naming_it(damaged, damage):
    DAMAGE[damage](damaged)
    with pytest.raises(UserError) as caught:
        load_run(damaged)
    message = str(caught.value)
    assert str(damaged / WEIGHTS) in message and "\n" not in message, message


@pytest.mark.parametrize("where", ["missing", "a file"])
def test_run_folder_missing_or_a_file_is_named(tmp_path, where):
    path = tmp_path / "run"
    if where == "a file":
        path.write_text("not a folder")
    with pytest.raises(UserError, match="does not exist" if where == "missing" else "is a file"):
        load_run(path)


def test_torn_resume_file_is_named_and_refused(damaged):
    (damaged / RESUME).write_bytes((damaged / RESUME).read_bytes()[:100])
    with pytest.raises(UserError, match=str(damaged / RESUME)):
        load_resume_state(damaged)


def test_malformed_history_is_named(damaged):
    (damaged / HISTORY).write_text("step,loss\n1,0.5\ntwo,zebra\n")
    with pytest.raises(UserError, match=str(damaged / HISTORY)):
        read_history(damaged)


def test_sample_from_a_truncated_run_is_one_line_from_the_command(damaged, tmp_path):
    truncate(0.5)(damaged)
    result = run_cli("sample", str(damaged), "--n", "4", "--out", str(tmp_path / "s.npy"))
    assert_one_line_error(result.returncode, result.stderr, str(damaged / WEIGHTS), "truncated or corrupt")
    assert not (tmp_path / "s.npy").exists()


def test_list_warns_about_the_broken_run_and_shows_the_good_one(good_run, tmp_path, capsys):
    shutil.copytree(good_run, tmp_path / "good")
    shutil.copytree(good_run, tmp_path / "broken")
    truncate(0.5)(tmp_path / "broken")
    code, out, err = cli_in_process(capsys, "list", "--out-dir", str(tmp_path))
    assert code == 0 and "Traceback" not in err
    assert err.strip().splitlines() == [err.strip()] and err.startswith(f"warning: skipped {tmp_path / 'broken'}")
    listed = [line.split()[0] for line in out.strip().splitlines()[1:]]
    assert listed == ["good"]
