"""Evaluation with hostile or broken inputs: non-finite models, native crashes in a child process, degenerate
datasets, stale or malformed stored results. Each case must end in one clear error (exit 2 from the CLI) or in a
result that says what it is, never a crash or a traceback."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors import safe_open
from safetensors.torch import save_file

from evaluation import evaluate_run, load_metrics
from evaluation.features import extractor_path
from evaluation.isolated import evaluate_isolated
from evaluation.store import METRICS_FILE, is_current
from generators.data import load_dataset
from generators.errors import UserError
from tests.helpers import ROOT, assert_one_line_error, run_cli, train_tiny_run

N = 120  # samples per evaluation: enough for every metric, quick on a CPU
QUICK = {"n": N, "iwae_k": 2, "inversion_steps": 2, "bootstrap": 20}


@pytest.fixture(scope="module")
def extractor_dir(tmp_path_factory):
    """The committed mnist5k extractor, copied into a temp cache (training one takes minutes)."""
    committed = extractor_path(ROOT / "checkpoints" / "_extractors", "mnist5k", (1, 28, 28))
    if not committed.is_file():
        pytest.skip("the committed extractor checkpoints/_extractors/mnist5k is missing")
    cache = tmp_path_factory.mktemp("extractors")
    target = extractor_path(cache, "mnist5k", (1, 28, 28))
    target.parent.mkdir(parents=True)
    shutil.copyfile(committed, target)
    return cache


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs")
    train_tiny_run("vae", out / "vae", 3, batch_size=16)
    train_tiny_run("dcgan", out / "dcgan", 3, options={"latent_dim": 8}, batch_size=16)
    return out


def with_weights(source: Path, target: Path, value: float) -> Path:
    """A copy of run ``source`` whose floating-point weights are all ``value`` (metadata kept)."""
    shutil.copytree(source, target, ignore=shutil.ignore_patterns(METRICS_FILE))
    path = str(source / "model.safetensors")
    with safe_open(path, framework="pt") as fh:
        metadata, tensors = fh.metadata(), {k: fh.get_tensor(k) for k in fh.keys()}
    filled = {k: torch.full_like(v, value) if v.is_floating_point() else v for k, v in tensors.items()}
    save_file(filled, str(target / "model.safetensors"), metadata=metadata)
    return target


# --- non-finite models --------------------------------------------------------------------------------------


@pytest.mark.parametrize("model", ["vae", "dcgan"])
@pytest.mark.parametrize("value", [float("nan"), 1e30], ids=["nan", "huge"])
def test_a_non_finite_model_is_one_clear_error(model, value, runs, extractor_dir, tmp_path):
    """NaN weights, or finite ones so large that the network overflows, used to die with SIGSEGV in the
    FID's matrix routines (exit 139). Now: exit 2, one line naming the run."""
    run = with_weights(runs / model, tmp_path / f"broken-{model}", value)
    result = run_cli(
        "evaluation", str(run), "--n", str(N), "--bootstrap", "5", "--iwae-k", "2", "--inversion-steps", "2",
        "--extractor-dir", str(extractor_dir),
    )  # fmt: skip
    assert_one_line_error(result, mentions=run.name)
    assert not (run / METRICS_FILE).exists()


# --- native crashes stay in a child process ----------------------------------------------------------------


def segfault(run_dir, *, progress, **options):
    """A target that reports progress and then crashes in native code, as a LAPACK routine fed NaN did."""
    import ctypes

    progress(0.5, "about to crash")
    ctypes.string_at(0)


def refuse(run_dir, *, progress, **options):
    raise UserError(f"run {Path(run_dir).name} is not acceptable")


def test_a_segfault_in_the_child_becomes_a_user_error_and_the_parent_goes_on(tmp_path):
    seen = []
    with pytest.raises(UserError, match=r"evaluation of somerun crashed \(signal SEGV\)"):
        evaluate_isolated(
            tmp_path / "somerun", progress=lambda f, m: seen.append((f, m)), target=f"{__name__}:segfault"
        )
    assert seen == [(0.5, "about to crash")]  # progress reached the parent before the crash
    with pytest.raises(UserError, match="somerun is not acceptable"):  # the parent still works
        evaluate_isolated(tmp_path / "somerun", target=f"{__name__}:refuse")


def test_an_isolated_evaluation_returns_the_stored_row(runs, extractor_dir, tmp_path):
    run = Path(shutil.copytree(runs / "vae", tmp_path / "vae"))
    seen = []
    row = evaluate_isolated(run, progress=lambda f, m: seen.append(f), cache_dir=extractor_dir, **QUICK)
    assert isinstance(row, dict) and row["run"] == "vae" and row["n_fake"] == N
    assert list(load_metrics(run).values()) == [row]
    assert seen[-1] == 1.0 and all(0 <= f <= 1 for f in seen) and len(seen) > 3


# --- degenerate data ----------------------------------------------------------------------------------------


def image_folder(root: Path, per_class: int, pixels) -> str:
    """A folder dataset with two classes of ``per_class`` 28x28 grey images made by ``pixels(rng)``."""
    rng = np.random.default_rng(0)
    for label in ("a", "b"):
        (root / label).mkdir(parents=True)
        for i in range(per_class):
            Image.fromarray(pixels(rng)).save(root / label / f"{i}.png")
    return f"folder:{root}"


def folder_run(tmp_path: Path, per_class: int, pixels) -> Path:
    dataset = image_folder(tmp_path / "data", per_class, pixels)
    train_tiny_run("vae", tmp_path / "run", 2, batch_size=4, dataset=dataset, image_size=28, channels=1)
    return tmp_path / "run"


def test_an_all_black_dataset_is_a_clear_error(tmp_path):
    run = folder_run(tmp_path, 30, lambda rng: np.zeros((28, 28), np.uint8))
    extractors = tmp_path / "extractors"
    result = run_cli("evaluation", str(run), "--n", "20", "--extractor-dir", str(extractors))
    assert_one_line_error(result, mentions="blank")


def test_a_dataset_without_held_out_images_is_a_clear_error(tmp_path):
    run = folder_run(tmp_path, 4, lambda rng: rng.integers(0, 256, (28, 28), dtype=np.uint8))
    assert len(load_dataset(json.loads(json.dumps(f"folder:{tmp_path / 'data'}"))).test) == 0
    result = run_cli("evaluation", str(run), "--n", "20", "--extractor-dir", str(tmp_path / "extractors"))
    assert_one_line_error(result, mentions="held-out")


def test_an_extractor_dir_that_is_a_file_is_a_clear_error(runs, tmp_path):
    (tmp_path / "file").write_text("not a folder")
    for given in (tmp_path / "file", tmp_path / "file" / "below"):
        result = run_cli("evaluation", str(runs / "vae"), "--n", "20", "--extractor-dir", str(given))
        assert_one_line_error(result, mentions="--extractor-dir")


# --- stale and malformed stored results ---------------------------------------------------------------------


def test_rows_are_tied_to_the_weights_that_made_them(runs, extractor_dir, tmp_path):
    run = Path(shutil.copytree(runs / "vae", tmp_path / "vae"))
    first = evaluate_run(run, cache_dir=extractor_dir, **QUICK)
    assert is_current(first, run) and len(first["weights_sha256"]) == 64
    assert evaluate_run(run, cache_dir=extractor_dir, **QUICK) == first  # same weights: the stored row

    # new weights under the same step and creation time, as after a --resume that rewrote them
    with safe_open(str(run / "model.safetensors"), framework="pt") as fh:
        metadata, tensors = fh.metadata(), {k: fh.get_tensor(k) for k in fh.keys()}
    tensors = {k: v * 0.9 if v.is_floating_point() else v for k, v in tensors.items()}
    save_file(tensors, str(run / "model.safetensors"), metadata=metadata)
    assert not is_current(first, run)
    second = evaluate_run(run, cache_dir=extractor_dir, **QUICK)
    assert second["weights_sha256"] != first["weights_sha256"] and second["fid"] != first["fid"]
    assert is_current(second, run)


def test_stored_rows_with_wrong_types_are_dropped(tmp_path):
    good = {"run": "r", "fid": 1.5, "fid_ci_low": 1.0, "seeds": [0], "warnings": ["w"], "weights_sha256": "ab"}
    bad = {
        "fid_string": {**good, "fid": "1.5"},
        "bool_metric": {**good, "coverage": True},
        "seeds_text": {**good, "seeds": "0"},
        "warning_number": {**good, "warnings": [3]},
        "interval_list": {**good, "fid_ci_high": [2.0]},
        "protocol_text": {**good, "protocol": "n=5000"},
        "curve_of_text": {**good, "fid_curve": [{"n": "500", "fid": 1.0}]},
        "not_a_row": [1, 2],
    }
    (tmp_path / METRICS_FILE).write_text(json.dumps({"good": good, **bad}))
    assert load_metrics(tmp_path) == {"good": good}


@pytest.mark.parametrize("kind", ["dev_zero", "fifo", "folder", "huge", "deep", "not_json", "list"])
def test_special_or_malformed_metrics_files_read_as_empty(kind, tmp_path):
    path = tmp_path / METRICS_FILE
    if kind == "dev_zero":
        path.symlink_to("/dev/zero")
    elif kind == "fifo":
        os.mkfifo(path)  # opening it for reading would block forever
    elif kind == "folder":
        path.mkdir()
    elif kind == "huge":
        path.write_text(json.dumps({"k": {"run": "x" * (17 * 2**20)}}))
    elif kind == "deep":
        path.write_text("[" * 100_000 + "]" * 100_000)
    elif kind == "not_json":
        path.write_bytes(b"\xff\xfe garbage")
    else:
        path.write_text("[1, 2, 3]")
    assert load_metrics(tmp_path) == {}


def echo(run_dir, *, progress, **options):
    progress(1.0, "done")
    return {"run": Path(run_dir).name, **options}


def test_the_dashboards_compute_survives_a_crash_and_evaluates_the_other_runs(monkeypatch, tmp_path):
    """The dashboard's Compute button: a run whose evaluation crashes in native code becomes an error
    (shown in an error box by the tab), the other runs are still evaluated, and this process lives on."""
    from types import SimpleNamespace

    import evaluation.isolated as isolated
    from dashboard.compute import compute_metrics

    real, done = isolated.evaluate_isolated, []

    def with_target(run_dir, **options):
        target = f"{__name__}:segfault" if Path(run_dir).name == "bad" else f"{__name__}:echo"
        row = real(run_dir, target=target, **options)
        done.append(row["run"])
        return row

    monkeypatch.setattr(isolated, "evaluate_isolated", with_target)
    runs = [SimpleNamespace(name=name, run_dir=tmp_path / name) for name in ("bad", "good")]
    with pytest.raises(UserError, match=r"evaluation of bad crashed \(signal SEGV\)"):
        compute_metrics(runs, n=N, recompute=True)
    assert done == ["good"]


def test_the_gallery_of_a_run_pairs_each_sample_with_its_nearest_training_images(runs, extractor_dir):
    from evaluation.runner import run_gallery

    images, train, rows = run_gallery(runs / "vae", samples=4, k=2, cache_dir=extractor_dir)
    assert images.shape == (4, 1, 28, 28) and 0 <= images.min() and images.max() <= 1
    assert len(rows) == 4 and all(len(r["indices"]) == 2 and r["distances"] == sorted(r["distances"]) for r in rows)
    assert all(0 <= i < len(train) for r in rows for i in r["indices"])
