"""Training-seed groups: one command trains a recipe under several seeds; a group row is their mean ± std and
keeps the per-run values so the findings can test a claim across training runs."""

from __future__ import annotations

import pytest

from evaluation.comparison import BETTER, NO_CLEAR_DIFFERENCE, compare
from evaluation.groups import group_name, group_rows, recipe_key
from generators.checkpoints import read_run_info
from tests.helpers import run_cli, tiny_flags


def info(seed: int, steps: int = 100, beta: float = 1.0) -> dict:
    return {
        "model": "m",
        "model_config": {"latent_dim": 8, "beta": beta},
        "dataset": "d",
        "step": steps,
        "train_config": {"seed": seed, "steps": steps, "batch_size": 64, "device": "cpu"},
    }


def test_recipe_key_ignores_only_the_seed():
    assert recipe_key(info(0)) == recipe_key(info(7))
    assert recipe_key(info(0)) != recipe_key(info(0, steps=200))
    assert recipe_key(info(0)) != recipe_key(info(0, beta=4.0))


def test_group_row_is_the_mean_and_std_over_training_seeds():
    rows = [{"run": f"vae-s{i}", "fid": v, "recall": 0.5} for i, v in enumerate((1.0, 2.0, 3.0))]
    rows.append({"run": "other", "fid": 9.0, "recall": 0.1})
    infos = {f"vae-s{i}": info(i) for i in range(3)} | {"other": info(0, steps=5)}
    (group,) = group_rows(rows, infos)
    assert group["run"] == "vae (3 seeds)" and group["group_n"] == 3
    assert group["fid"] == pytest.approx(2.0) and group["fid_std"] == pytest.approx(1.0)
    assert group["fid_replicates"] == [1.0, 2.0, 3.0] and group["recall_std"] == 0.0


def test_one_runs_sampler_rows_are_not_seeds_and_each_sampler_groups_apart():
    """A run evaluated with the prior, GMM and two-stage samplers has three rows: not three training seeds."""
    rows = [{"run": "vae", "sampler": s, "fid": v} for s, v in (("prior", 6.0), ("gmm", 2.0), ("two-stage", 4.0))]
    assert group_rows(rows, {"vae": info(0)}) == []
    rows = [
        {"run": f"vae-s{i}", "sampler": sampler, "fid": fid + i}
        for i in range(2)
        for sampler, fid in (("prior", 6.0), ("gmm", 2.0))
    ]
    groups = group_rows(rows, {f"vae-s{i}": info(i) for i in range(2)})
    assert {(g["sampler"], g["group_n"], g["fid"]) for g in groups} == {("prior", 2, 6.5), ("gmm", 2, 2.5)}


def test_groups_are_compared_across_training_seeds():
    far = {"fid": 10.0, "fid_replicates": [9.8, 10.0, 10.2]}
    near = {"fid": 2.0, "fid_replicates": [1.9, 2.0, 2.1]}
    assert compare(near, far, "fid").outcome == BETTER
    noisy = {"fid": 3.0, "fid_replicates": [0.5, 3.0, 5.5]}
    assert compare(near, noisy, "fid").outcome == NO_CLEAR_DIFFERENCE
    assert "training seeds" in compare({**near, "fid_replicates_of": "training seeds"}, far, "fid").test


def test_group_name_of_unrelated_names_is_their_common_prefix():
    assert group_name(["beta-a", "beta-b"]) == "beta (2 seeds)"


def test_train_seeds_makes_one_run_per_seed(tmp_path):
    result = run_cli(
        "generators",
        "train",
        "ae",
        "--seeds",
        "3",
        "5",
        "--steps",
        "2",
        "--batch-size",
        "16",
        "--out-dir",
        str(tmp_path),
        "--run",
        "grp",
        *tiny_flags("ae"),
    )
    assert result.returncode == 0, result.stderr
    seeds = {name: read_run_info(tmp_path / name)["seed"] for name in ("grp-s3", "grp-s5")}
    assert seeds == {"grp-s3": 3, "grp-s5": 5}
    assert recipe_key(read_run_info(tmp_path / "grp-s3")) == recipe_key(read_run_info(tmp_path / "grp-s5"))
    again = run_cli("generators", "train", "ae", "--seeds", "3", "3", "--out-dir", str(tmp_path))
    assert again.returncode == 2 and "distinct" in again.stderr
