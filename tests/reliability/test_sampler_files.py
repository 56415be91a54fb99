"""Fitted-sampler files are untrusted and fits must work where the callers are.

A two-stage sampler file that carries the run's own weights hash is trusted (not refitted), so everything in
it is checked before a network is built from it: its sizes against bounds, every tensor's shape against those
sizes (on the meta device), every value finite. The fits themselves work inside ``torch.inference_mode()`` (the
dashboard's cached sampling runs there), and a GMM on fewer codes than components uses fewer components."""

from __future__ import annotations

import json
import math
import resource
import time

import numpy as np
import pytest
import torch
from safetensors.torch import save

from generators import samplers
from generators.checkpoints import load_run
from generators.errors import UserError
from generators.samplers import (
    GMM_FILE,
    METADATA_KEY,
    TWO_STAGE_FILE,
    GaussianMixtureSampler,
    TwoStageSampler,
    latent_sampler,
    weights_hash,
)

from .support import assert_one_line_error, cli_in_process, make_image_folder, snapshot, train_tiny

FAST_STEPS = 30


@pytest.fixture
def fast_two_stage(monkeypatch):
    fit = TwoStageSampler.fit.__func__
    monkeypatch.setattr(TwoStageSampler, "fit", classmethod(lambda cls, codes: fit(cls, codes, FAST_STEPS)))


def plant(run, tensors: dict, **meta) -> None:
    """A two-stage file that claims the run's current weights (so it is trusted, not refitted)."""
    meta = {"kind": "two-stage", "dim": 2, "hidden": 4, "depth": 1, "model_hash": weights_hash(run), **meta}
    data = save({k: v.contiguous() for k, v in tensors.items()}, metadata={METADATA_KEY: json.dumps(meta)})
    (run / TWO_STAGE_FILE).write_bytes(data)


def good_tensors(hidden: int = 4, depth: int = 1) -> dict:
    return {k: v.detach().clone() for k, v in TwoStageSampler(2, hidden, depth).state_dict().items()}


def sample(capsys, run, out, *flags):
    return cli_in_process(capsys, "sample", str(run), "--n", "4", "--out", str(out), "--sampler", "two-stage", *flags)


def test_a_tiny_file_claiming_a_huge_depth_is_refused_before_building(run, tmp_path, capsys):
    """Item 3: 212 bytes with depth 200 000 took a minute and 2.3 GB before failing."""
    plant(run, {"shift": torch.zeros(2)}, depth=200_000)
    before_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.monotonic()
    code, _, err = sample(capsys, run, tmp_path / "s.npy")
    assert_one_line_error(code, err, TWO_STAGE_FILE, "depth")
    assert time.monotonic() - start < 10
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before_rss < 200_000  # KiB: nothing was built
    assert not (tmp_path / "s.npy").exists()


@pytest.mark.parametrize(
    "meta, message",
    [
        ({"hidden": 10**7}, "hidden"),
        ({"hidden": True}, "hidden"),
        ({"depth": "2"}, "depth"),
        ({"depth": -1}, "depth"),
        ({"dim": 3}, "latent size"),
        ({"dim": 10**12}, "dim"),
        ({"hidden": 4096, "depth": 16}, "too large"),
    ],
    ids=["hidden 1e7", "hidden bool", "depth text", "depth -1", "other latent size", "dim 1e12", "too many params"],
)
def test_sizes_out_of_range_are_refused(run, meta, message):
    plant(run, {"shift": torch.zeros(2)}, **meta)
    with pytest.raises(UserError, match=message):
        TwoStageSampler.load(run / TWO_STAGE_FILE, 2)


def test_metadata_that_is_not_an_object_is_refused(run):
    data = save({"shift": torch.zeros(2)}, metadata={METADATA_KEY: "[1, 2]"})
    (run / TWO_STAGE_FILE).write_bytes(data)
    with pytest.raises(UserError, match="not a valid two-stage sampler file"):
        TwoStageSampler.load(run / TWO_STAGE_FILE, 2)


def test_a_nan_weight_is_refused_not_drawn_from(run, tmp_path, capsys):
    """Item 4: one NaN weight gave exit 0 and all-black images."""
    tensors = good_tensors()
    tensors["decoder.skip.weight"][0, 0] = math.nan
    plant(run, tensors)
    before = snapshot(run)
    code, _, err = sample(capsys, run, tmp_path / "s.npy")
    assert_one_line_error(code, err, TWO_STAGE_FILE, "NaN")
    assert not (tmp_path / "s.npy").exists() and snapshot(run) == before


@pytest.mark.parametrize("damage", ["inf gamma", "scale 0", "wrong shape", "missing tensor", "extra tensor", "ints"])
def test_damaged_tensors_are_refused(run, damage):
    tensors = good_tensors()
    if damage == "inf gamma":
        tensors["log_gamma"] = torch.tensor(math.inf)
    elif damage == "scale 0":
        tensors["scale"] = torch.zeros(2)
    elif damage == "wrong shape":
        tensors["encoder.skip.weight"] = torch.zeros(4, 3)
    elif damage == "missing tensor":
        del tensors["shift"]
    elif damage == "extra tensor":
        tensors["payload"] = torch.zeros(1)
    else:
        tensors = {k: v.to(torch.int32) for k, v in tensors.items()}
    plant(run, tensors)
    with pytest.raises(UserError, match=TWO_STAGE_FILE):
        TwoStageSampler.load(run / TWO_STAGE_FILE, 2)


def test_a_well_formed_planted_file_loads(run):
    plant(run, good_tensors(hidden=8, depth=2), hidden=8, depth=2)
    sampler = TwoStageSampler.load(run / TWO_STAGE_FILE, 2)
    assert torch.isfinite(sampler.sample(5, torch.Generator().manual_seed(0))).all()


@pytest.mark.parametrize("mode", ["inference_mode", "no_grad"])
def test_two_stage_fit_works_inside_inference_mode(run, fast_two_stage, mode):
    """The dashboard's cached sampling runs under inference_mode: the fit failed with 'element 0 of tensors does
    not require grad'."""
    model, _ = load_run(run)
    with getattr(torch, mode)():
        draw = latent_sampler(model, "two-stage", run)
        z = draw(16, torch.Generator().manual_seed(0))
        images = model.decode(z)
    assert z.shape == (16, 2) and torch.isfinite(z).all() and torch.isfinite(images).all()
    assert (run / TWO_STAGE_FILE).is_file()


def test_two_stage_fit_on_inference_tensors_directly():
    with torch.inference_mode():
        codes = torch.randn(50, 3)
        sampler = TwoStageSampler.fit(codes, steps=5)
        z = sampler.sample(8, torch.Generator().manual_seed(1))
    assert torch.isfinite(z).all()


def test_gmm_on_fewer_codes_than_components_uses_fewer(capsys):
    sampler = GaussianMixtureSampler.fit(torch.randn(3, 2, generator=torch.Generator().manual_seed(0)))
    assert len(sampler.weights) == 3
    assert "3 components instead of 10" in capsys.readouterr().err
    assert torch.isfinite(sampler.sample(20, torch.Generator().manual_seed(0))).all()


def test_gmm_and_two_stage_on_one_code_is_one_line():
    for cls in (GaussianMixtureSampler, TwoStageSampler):
        with pytest.raises(UserError, match="at least 2"):
            cls.fit(torch.zeros(1, 2))


def test_three_image_folder_samples_with_the_gmm(tmp_path, capsys):
    """Item 8: a 3-image folder trained, then `sample --sampler gmm` died with scikit-learn's
    `n_samples=2 < n_components=10` traceback."""
    images = make_image_folder(tmp_path / "images", n=3)
    run = tmp_path / "run"
    train_tiny(images, "vae", run, 2)
    code, _, err = cli_in_process(
        capsys, "sample", str(run), "--n", "6", "--out", str(tmp_path / "s.npy"), "--sampler", "gmm"
    )
    assert code == 0, err
    assert "components instead of 10" in err and "Traceback" not in err
    assert np.load(tmp_path / "s.npy").shape == (6, 1, 16, 16)
    assert (run / GMM_FILE).is_file()


def test_sampler_module_bounds_are_stated():
    assert samplers.MAX_TWO_STAGE_DEPTH <= 64 and samplers.MAX_TWO_STAGE_HIDDEN <= 16384
