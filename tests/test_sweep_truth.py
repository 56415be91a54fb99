"""The β sweep compares one model and one recipe that differ only in β (known answers on the committed runs'
configurations, and on variations of them)."""

from __future__ import annotations

import copy
import dataclasses
import math
from pathlib import Path

import pytest

from dashboard.sweep import train_args
from evaluation.runs import Run
from evaluation.sweeps import DISTORTION_TITLES, largest_sweep, recipe_of, sweep_figures, sweeps
from generators.__main__ import build_parser, model_option_fields
from generators.checkpoints import read_run_info

CHECKPOINTS = Path(__file__).resolve().parents[1] / "checkpoints"


def committed(name: str) -> Run:
    return Run(name, CHECKPOINTS / name, read_run_info(CHECKPOINTS / name))


def variant(run: Run, name: str, **model_config) -> Run:
    info = copy.deepcopy(run.info)
    info["model_config"].update(model_config)
    return Run(name, CHECKPOINTS / name, info)


@pytest.fixture(scope="module")
def runs() -> list[Run]:
    return [committed(name) for name in ("ae-mnist5k", "cvae-mnist5k", "vae-beta4-mnist5k", "vae-mnist5k")]


def test_the_committed_sweep_is_the_two_vaes_not_the_conditional_one(runs):
    by_beta = largest_sweep(runs, "mnist5k")
    assert {beta: run.name for beta, run in by_beta.items()} == {1.0: "vae-mnist5k", 4.0: "vae-beta4-mnist5k"}
    found = sweeps(runs, "mnist5k")
    assert [sorted(run.name for run in sweep.runs.values()) for sweep in found] == [
        ["vae-beta4-mnist5k", "vae-mnist5k"],
        ["cvae-mnist5k"],
    ]


def test_every_point_of_a_sweep_has_one_model_and_one_recipe_but_beta(runs):
    vae = runs[-1]
    candidates = [
        *runs,
        variant(vae, "a-vae-beta2", beta=2.0),  # same recipe: joins the VAE sweep
        variant(vae, "b-vae-z16-beta2", beta=2.0, latent_dim=16),  # another recipe
        variant(vae, "c-vae-lr-beta8", beta=8.0, lr=3e-4),  # another recipe
    ]
    for sweep in sweeps(candidates, "mnist5k"):
        recipes = {str(recipe_of(run)) for run in sweep.runs.values()}
        assert len(recipes) == 1, [run.name for run in sweep.runs.values()]
        assert {run.model_name for run in sweep.runs.values()} == {sweep.model}
        assert sorted(sweep.runs) == sorted({run.beta for run in sweep.runs.values()})
    main = sweeps(candidates, "mnist5k")[0]
    assert {beta: run.name for beta, run in main.runs.items()} == {
        1.0: "vae-mnist5k",
        2.0: "a-vae-beta2",
        4.0: "vae-beta4-mnist5k",
    }


@pytest.mark.parametrize("name", ["vae-mnist5k", "cvae-mnist5k"])
def test_another_point_is_trained_with_the_sweeps_own_recipe(runs, name):
    """'Train another point' parses, with the real CLI, to the recipe of the sweep's runs with the new β."""
    sweep = next(s for s in sweeps(runs, "mnist5k") if name in {r.name for r in s.runs.values()})
    args = build_parser().parse_args(["train", *train_args(sweep, 0.5)])
    run = committed(name)
    assert args.model == run.model_name and args.dataset == run.info["dataset"]
    assert args.steps == run.info["step"]
    stored = run.info["train_config"]
    assert args.batch_size == stored["batch_size"] and args.seed == stored["seed"]
    assert (args.precision or "fp32") == (stored.get("precision") or "fp32")
    assert args.lr_schedule == stored.get("lr_schedule")
    given = {field: getattr(args, field) for field in model_option_fields() if getattr(args, field) is not None}
    offered = set(model_option_fields())  # the rest (image shape, a conditional model's classes) come from the data
    expected = {k: v for k, v in run.info["model_config"].items() if k in offered}
    assert given == {**expected, "beta": 0.5}


def test_the_sweep_label_names_its_recipe(runs):
    sweep = sweeps(runs, "mnist5k")[0]
    steps = committed("vae-mnist5k").info["step"]
    assert "z = 8" in sweep.label and f"{steps} steps" in sweep.label and "β 1, 4" in sweep.label
    assert dataclasses.is_dataclass(sweep)
    assert "decoder" not in sweep.label and "recon" not in sweep.label  # options at their defaults are not named


def test_sweeps_of_two_decoders_carry_different_labels(runs):
    """Runs that differ in a text option (the decoder) form two sweeps; each label names its choice when it is not
    the default, so two sweeps at the same steps never read the same."""
    vae = runs[-1]
    broadcast = [variant(vae, f"sbd-beta{b:g}", beta=b, decoder="broadcast") for b in (1.0, 4.0)]
    found = sweeps([*runs, *broadcast], "mnist5k")
    labels = [sweep.label for sweep in found]
    assert len(set(labels)) == len(labels)
    (sbd,) = [sweep for sweep in found if "sbd-beta1" in {run.name for run in sweep.runs.values()}]
    assert "decoder broadcast" in sbd.label and "β 1, 4" in sbd.label


def _with_history(run: Run, folder: Path, kl: float, recon: float) -> Run:
    """A copy of ``run``'s record whose history.csv logs a constant KL and reconstruction loss (nats/image)."""
    folder.mkdir()
    lines = ["step,loss,recon,kl,beta"] + [f"{step},{recon + kl},{recon},{kl},1.0" for step in range(1, 11)]
    (folder / "history.csv").write_text("\n".join(lines) + "\n")
    return Run(folder.name, folder, copy.deepcopy(run.info))


def test_the_rate_distortion_chart_counts_the_rate_in_bits(tmp_path):
    """A run whose training history logs a KL of k nats per image is drawn at k / ln 2 bits per image."""
    vae = committed("vae-mnist5k")
    by_beta = {
        1.0: _with_history(vae, tmp_path / "b1", 20.0, 90.0),
        4.0: _with_history(vae, tmp_path / "b4", 6.0, 130.0),
    }
    figure = sweep_figures(by_beta)["beta_rate_distortion"]
    (points,) = figure.data
    assert list(points.x) == pytest.approx([6.0 / math.log(2), 20.0 / math.log(2)])
    assert list(points.y) == pytest.approx([130.0, 90.0]) and list(points.text) == ["β=4", "β=1"]
    assert "bits/image" in figure.layout.xaxis.title.text and "nats" not in figure.layout.xaxis.title.text
    recon = vae.info["model_config"]["recon"]
    assert figure.layout.yaxis.title.text == DISTORTION_TITLES[recon]
    assert "training batches" in figure.layout.title.text and "not the test split" in figure.layout.title.text
