"""How much data each model needs: ``--train-size`` (a stratified subset), ``--exclude-classes`` (a held-out
class) and ``python -m generators sweep`` (a grid of runs), checked against known answers."""

from __future__ import annotations

import subprocess
from collections import Counter

import numpy as np
import pytest

from evaluation.heldout import held_out_share, wilson_interval
from generators.data import load_dataset, stratified_subset, training_subset
from generators.errors import UserError

from .helpers import assert_one_line_error, tiny_flags


def generators_cli(capsys, *argv: str) -> subprocess.CompletedProcess:
    """``python -m generators ARGV`` in this process (the same code and exit code, without a new interpreter)."""
    from generators.__main__ import main

    capsys.readouterr()
    code = main(list(argv))
    out, err = capsys.readouterr()
    return subprocess.CompletedProcess(argv, code, out, err)


@pytest.fixture(scope="module")
def mnist():
    return load_dataset("mnist5k")


@pytest.mark.parametrize("size", [500, 1000, 2000, 4500])
def test_a_train_size_keeps_every_class_share_exactly(mnist, size):
    subset = training_subset(mnist, size)
    assert len(subset.train) == size
    assert Counter(subset.train.labels.tolist()) == {digit: size // 10 for digit in range(10)}  # 450 of each
    assert subset.test is mnist.test  # scored on the whole held-out split


def test_uneven_classes_are_rounded_by_largest_remainder():
    labels = np.array([0] * 2 + [1] * 8 + [2] * 10)  # shares 10 %, 40 %, 50 %
    picked = stratified_subset(labels, 7, seed=3)  # exact 0.7, 2.8, 3.5 -> 1, 3, 3 (remainders .7, .8, .5)
    assert Counter(labels[picked].tolist()) == {0: 1, 1: 3, 2: 3}
    assert len(set(picked.tolist())) == 7


def test_the_subset_is_fixed_by_its_seed_and_nested(mnist):
    labels = mnist.train.labels.numpy()
    a, b = stratified_subset(labels, 500, seed=0), stratified_subset(labels, 500, seed=0)
    assert np.array_equal(a, b)
    assert not np.array_equal(a, stratified_subset(labels, 500, seed=1))
    assert set(a) <= set(stratified_subset(labels, 1000, seed=0))  # more data adds images, never swaps them
    first = training_subset(mnist, 500).train.images
    assert first.equal(training_subset(mnist, 500).train.images)


def test_excluded_classes_are_gone_from_training_only(mnist):
    subset = training_subset(mnist, 900, exclude_classes=[9])
    assert Counter(subset.train.labels.tolist()) == {digit: 100 for digit in range(9)}
    assert 9 in subset.test.labels.tolist()
    with pytest.raises(UserError, match="between 1 and 4050"):
        training_subset(mnist, 4051, exclude_classes=[9])
    with pytest.raises(UserError, match="does not exist"):
        training_subset(mnist, None, exclude_classes=[10])


@pytest.mark.parametrize(
    ("flags", "mentions"),
    [
        (["--train-size", "0"], "--train-size"),
        (["--train-size", "-5"], "--train-size"),
        (["--train-size", "4501"], "between 1 and 4500"),
        (["--exclude-classes", "9", "--train-size", "4051"], "without the excluded classes"),
        (["--exclude-classes", "12"], "--exclude-classes"),
    ],
)
def test_bad_subset_values_exit_2_and_leave_nothing(tmp_path, capsys, flags, mentions):
    result = generators_cli(capsys, "train", "vae", "--steps", "1", "--out-dir", str(tmp_path), "--quiet", *flags)
    assert_one_line_error(result, mentions=mentions)
    assert list(tmp_path.iterdir()) == []


def test_a_run_stores_its_subset_and_resume_keeps_it(tmp_path, capsys):
    from generators.checkpoints import read_run_info

    base = [capsys, "train", "vae", *tiny_flags("vae"), "--out-dir", str(tmp_path), "--run", "r", "--quiet"]
    assert generators_cli(*base, "--steps", "2", "--train-size", "300", "--exclude-classes", "9", "7").returncode == 0
    stored = read_run_info(tmp_path / "r")["train_config"]
    assert stored["train_size"] == 300 and stored["exclude_classes"] == [7, 9]
    assert_one_line_error(
        generators_cli(*base, "--steps", "4", "--resume", "--train-size", "400"), mentions="keeps its data"
    )
    assert generators_cli(*base, "--steps", "4", "--resume").returncode == 0
    assert read_run_info(tmp_path / "r")["train_config"]["train_size"] == 300


def test_the_held_out_share_and_its_wilson_interval():
    """No 9 among 100 samples: the Wilson upper bound is z² / (n + z²) (a known closed form)."""
    row = {"class_histogram": [0.1] * 9 + [0.0], "n_fake": 100, "seeds": [0]}
    result = held_out_share(row, {"train_config": {"exclude_classes": [9]}})
    z2 = 1.959963984540054**2
    assert result["held_out_share"] == 0.0 and result["held_out_share_ci_low"] == pytest.approx(0.0, abs=1e-12)
    assert result["held_out_share_ci_high"] == pytest.approx(z2 / (100 + z2))
    both = held_out_share(row, {"train_config": {"exclude_classes": [8, 9]}})
    assert both["held_out_share"] == pytest.approx(0.1)
    assert set(held_out_share(row, {"train_config": {}}).values()) == {None}  # a run trained on every class
    low, high = wilson_interval(0.5, 400)  # near 1/2 it matches the normal interval 0.5 ± 1.96 * 0.025
    assert low == pytest.approx(0.5 - 1.959963984540054 * 0.025, abs=1e-3) and high == pytest.approx(1 - low)


def weights_of(run_dir):
    from safetensors.torch import load_file

    return load_file(run_dir / "model.safetensors")


def losses_of(run_dir):
    import pandas as pd

    return pd.read_csv(run_dir / "history.csv").drop(columns=["seconds"])


def sweep_cli(capsys, out, *args):
    return generators_cli(capsys, "sweep", "vae", *tiny_flags("vae"), "--out-root", str(out), "--quiet", *args)


def test_a_sweep_of_one_point_equals_the_single_run(tmp_path, capsys):
    single = generators_cli(
        capsys, "train", "vae", *tiny_flags("vae"), "--beta", "2", "--steps", "3", "--seed", "1",
        "--train-size", "400", "--out-dir", str(tmp_path), "--run", "single", "--quiet",
    )  # fmt: skip
    assert single.returncode == 0, single.stderr
    swept = sweep_cli(capsys, tmp_path, "--set", "beta=2", "--seeds", "1", "--steps", "3", "--train-size", "400")
    assert swept.returncode == 0, swept.stderr
    point = tmp_path / "vae-sweep-beta2-seed1"
    one, other = weights_of(tmp_path / "single"), weights_of(point)
    assert one.keys() == other.keys() and all(one[k].equal(other[k]) for k in one)
    assert losses_of(tmp_path / "single").equals(losses_of(point))


def test_a_sweep_resumes_unfinished_points_and_skips_finished_ones(tmp_path, capsys):
    grid = ["--set", "train_size=300,600", "--seeds", "0"]
    assert sweep_cli(capsys, tmp_path, *grid, "--steps", "2").returncode == 0
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["vae-sweep-train_size300-seed0", "vae-sweep-train_size600-seed0"]
    stamps = {name: (tmp_path / name / "model.safetensors").stat().st_mtime_ns for name in names}
    again = sweep_cli(capsys, tmp_path, *grid, "--steps", "2")
    assert again.returncode == 0 and "2 were finished" in again.stdout
    assert stamps == {name: (tmp_path / name / "model.safetensors").stat().st_mtime_ns for name in names}
    longer = sweep_cli(capsys, tmp_path, *grid, "--steps", "4")
    assert longer.returncode == 0 and longer.stderr.count("resuming") == 2
    for name in names:
        assert losses_of(tmp_path / name)["step"].tolist() == [1, 2, 3, 4]
    # the same names with another recipe: refused before anything trains, not taken for finished points
    other = sweep_cli(capsys, tmp_path, *grid, "--steps", "4", "--batch-size", "64")
    assert_one_line_error(other, mentions="batch_size")
    assert [losses_of(tmp_path / name)["step"].max() for name in names] == [4, 4]


@pytest.mark.parametrize(
    ("grid", "mentions"),
    [
        (["--set", "depth=1,2"], "unknown setting"),
        (["--set", "beta=1,x"], "beta=x"),
        (["--set", "train_size=300,9000"], "--train-size"),
        (["--set", "beta=1", "--beta", "2"], "--beta"),
        (["--set", "g_width=8"], "does not apply to vae"),
        (["--set", "beta=0.5,-1"], "--beta must be >= 0"),  # a model config check: before β = 0.5 trains
        (["--set", "beta=1,1.0"], "1 and 1.0 are the same value"),  # compared as numbers, not as text
        (["--set", "train_size=300,300"], "300 and 300 are the same value"),
    ],
)
def test_a_bad_grid_is_refused_before_any_point_trains(tmp_path, capsys, grid, mentions):
    assert_one_line_error(sweep_cli(capsys, tmp_path, *grid, "--steps", "1"), mentions=mentions)
    assert list(tmp_path.iterdir()) == []


def test_a_point_whose_model_is_too_large_is_refused_before_any_point_trains(tmp_path, capsys):
    """The model's size is checked with the data's image shape, for every point, before the first trains."""
    from .helpers import tiny_options

    widths = {key: value for key, value in tiny_options("vae").items() if key != "latent_dim"}
    small = [part for key, value in widths.items() for part in (f"--{key.replace('_', '-')}", str(value))]
    result = generators_cli(
        capsys, "sweep", "vae", *small, "--set", "latent_dim=4,100000000", "--steps", "1",
        "--out-root", str(tmp_path), "--quiet",
    )  # fmt: skip
    assert_one_line_error(result, mentions="latent_dim=100000000")
    assert list(tmp_path.iterdir()) == []


T975 = {2: 12.706204736174705, 3: 4.302652729911275}  # Student's t quantiles (0.975; 1 and 2 degrees of freedom)


def fake_run(tmp_path, name: str, fid: float | None = None, seed: int = 0, step: int = 100, **settings):
    """A run folder holding only what the sweeps read: its info (the committed VAE's, changed) and a metric row."""
    import copy
    import json

    from evaluation.runs import Run
    from generators.checkpoints import read_run_info

    from .helpers import ROOT

    info = copy.deepcopy(read_run_info(ROOT / "checkpoints" / "vae-mnist5k"))
    info["step"] = step
    info["train_config"]["seed"] = seed
    for key, value in settings.items():
        (info["train_config"] if key == "train_size" else info["model_config"])[key] = value
    run_dir = tmp_path / name
    run_dir.mkdir()
    if fid is not None:
        row = {"n_fake": 100, "sampler": "prior", "fid": fid, "fid_ci_low": fid - 1, "fid_ci_high": fid + 1}
        (run_dir / "metrics.json").write_text(json.dumps({"k": row}))
    return Run(name, run_dir, info)


def test_points_that_differ_in_a_second_setting_are_never_joined(tmp_path):
    from evaluation.sweeps import setting_sweeps, swept_settings

    runs = [
        fake_run(tmp_path, "a", train_size=500),
        fake_run(tmp_path, "b", train_size=1000),
        fake_run(tmp_path, "b1", train_size=1000, seed=1),  # another seed of the same point
        fake_run(tmp_path, "c", train_size=2000, beta=4.0),  # differs in β as well: its own sweep
        fake_run(tmp_path, "d", train_size=4500, step=200),  # and in the steps reached
    ]
    found = setting_sweeps(runs, "mnist5k", "train_size")
    as_names = [{value: [run.name for run in members] for value, members in s.points.items()} for s in found]
    assert as_names[0] == {500.0: ["a"], 1000.0: ["b", "b1"]}
    assert sorted(map(str, as_names[1:])) == ["{2000.0: ['c']}", "{4500.0: ['d']}"]
    assert swept_settings(runs, "mnist5k") == ["train_size"]  # c and d differ from every other run in two settings
    assert all(len(s.points) == 1 for s in setting_sweeps(runs, "mnist5k", "beta"))
    runs.append(fake_run(tmp_path, "e", train_size=2000))  # c's recipe at β = 1: a β sweep with c
    assert swept_settings(runs, "mnist5k") == ["beta", "train_size"]
    beta = setting_sweeps(runs, "mnist5k", "beta")[0]
    assert {value: [run.name for run in members] for value, members in beta.points.items()} == {1.0: ["e"], 4.0: ["c"]}


def test_the_interval_over_training_seeds_is_the_t_interval(tmp_path):
    from evaluation.sweeps import setting_sweeps, sweep_metric_figure, sweep_table

    fids = {500: [10.0, 12.0, 14.0], 1000: [8.0, 9.0]}
    runs = [
        fake_run(tmp_path, f"p{size}-s{seed}", fid, seed=seed, train_size=size)
        for size, values in fids.items()
        for seed, fid in enumerate(values)
    ]
    runs.append(fake_run(tmp_path, "p2000-s0", 7.0, train_size=2000))
    (sweep,) = setting_sweeps(runs, "mnist5k", "train_size")
    table = sweep_table(sweep, "fid").set_index("value")
    # 500: mean 12, sd 2, three seeds -> 12 ± t(2) * 2 / sqrt(3)
    assert table.loc[500.0, "mean"] == pytest.approx(12.0)
    assert table.loc[500.0, "high"] - 12.0 == pytest.approx(T975[3] * 2 / 3**0.5)
    # 1000: mean 8.5, sd sqrt(0.5), two seeds -> 8.5 ± t(1) * sqrt(0.5) / sqrt(2) = 8.5 ± t(1) / 2
    assert (table.loc[1000.0, "low"], table.loc[1000.0, "high"]) == pytest.approx(
        (8.5 - T975[2] / 2, 8.5 + T975[2] / 2)
    )
    # one seed: no spread over seeds to measure; its own interval over samples is shown, and says so
    assert (table.loc[2000.0, "low"], table.loc[2000.0, "high"]) == (6.0, 8.0)
    assert table.loc[2000.0, "interval"].startswith("one training seed")
    assert table["seeds"].tolist() == [3, 2, 1]
    figure = sweep_metric_figure(sweep, "fid")
    assert list(figure.data[0].x) == [500.0, 1000.0, 2000.0] and list(figure.data[0].y) == pytest.approx([12, 8.5, 7])
    assert figure.layout.xaxis.type is None  # 500 .. 2000 spans a factor of 4: a linear axis
    assert [trace.name for trace in figure.data] == ["mean over training seeds", "each training seed"]
    assert list(figure.data[1].y) == [10.0, 12.0, 14.0, 8.0, 9.0, 7.0]
    assert "3 training seeds per point" in figure.layout.title.text
    assert "bars: 95 % interval over seeds, over samples where one seed)" in figure.layout.title.text


def test_any_metric_against_beta_has_the_log_beta_axis_of_the_rate_distortion_figures(tmp_path):
    """β is a multiplicative weight: FID against β is drawn on a log axis, so the metric chart beside it must be
    too, also when the chosen β values span less than a factor of 8."""
    from evaluation.sweeps import setting_sweeps, sweep_metric_figure

    runs = [fake_run(tmp_path, f"b{beta:g}", fid, beta=beta) for beta, fid in ((0.5, 9.0), (1.0, 8.0), (2.0, 10.0))]
    (sweep,) = setting_sweeps(runs, "mnist5k", "beta")
    axis = sweep_metric_figure(sweep, "fid").layout.xaxis
    assert axis.type == "log" and list(axis.ticktext) == ["0.5", "1", "2"]
    figure = sweep_metric_figure(sweep, "fid")  # one seed per β: the line is the runs' values, the bars theirs
    assert [trace.name for trace in figure.data] == ["the run's value"]
    assert "(one training seed per point; bars: 95 % interval over samples)" in figure.layout.title.text
    assert list(figure.data[0].error_y.array) == pytest.approx([1.0, 1.0, 1.0])
    assert figure.data[0].text[0] == "one training seed: its interval over samples: [8, 10]"  # hover: the numbers


def size_sweep_runs(tmp_path, model: str, fids: dict[int, list[float]]):
    """Runs of one recipe of ``model`` at several training-set sizes, one per seed, with the given FIDs."""
    import copy

    from evaluation.runs import Run
    from generators.checkpoints import read_run_info

    from .helpers import ROOT

    source = read_run_info(ROOT / "checkpoints" / f"{model}-mnist5k")
    runs = []
    for size, values in fids.items():
        for seed, fid in enumerate(values):
            run = fake_run(tmp_path, f"{model}-{size}-s{seed}", fid, seed=seed, train_size=size)
            info = copy.deepcopy(source)
            info["train_config"].update(seed=seed, train_size=size)
            runs.append(Run(run.name, run.run_dir, info))
    return runs


STILL_IMPROVING = {500: [80, 82], 1000: [60, 61], 2000: [40, 41]}  # clearly better at every larger size
FLAT = {500: [30, 31], 1000: [30, 30.5], 2000: [30, 31]}  # at its best from 500 on
IMPROVING_TOO = {500: [90, 92], 1000: [70, 71], 2000: [50, 51]}


@pytest.mark.parametrize(
    ("gan", "vae", "verdict"),
    [
        (STILL_IMPROVING, FLAT, "supported"),
        (FLAT, STILL_IMPROVING, "contradicted"),
        (STILL_IMPROVING, IMPROVING_TOO, "no clear difference"),  # both need every image they get
    ],
)
def test_the_data_finding_compares_where_each_model_stops_improving(tmp_path, gan, vae, verdict):
    from evaluation.findings import gan_needs_more_data

    runs = size_sweep_runs(tmp_path, "dcgan", gan) + size_sweep_runs(tmp_path, "vae", vae)
    finding = gan_needs_more_data(runs, {})
    assert finding.verdict == verdict, finding.evidence


def test_the_data_finding_needs_both_sweeps(tmp_path):
    from evaluation.findings import gan_needs_more_data

    only_vae = size_sweep_runs(tmp_path, "vae", {500: [30, 31], 1000: [30, 30.5]})
    assert gan_needs_more_data(only_vae, {}).verdict == "not measured yet"


def test_evaluation_reports_the_held_out_share_of_a_run_trained_without_a_class(tmp_path):
    from evaluation.runner import evaluate_run

    from .helpers import ROOT, train_tiny_run

    train_tiny_run("vae", tmp_path / "no9", 2, exclude_classes=[9], train_size=400)
    row = evaluate_run(
        tmp_path / "no9",
        n=100,
        bootstrap=10,
        iwae_k=2,
        inversion_steps=2,
        cache_dir=ROOT / "checkpoints" / "_extractors",
    )
    assert row["held_out_classes"] == [9]
    assert row["held_out_share"] == pytest.approx(row["class_histogram"][9])  # the classifier's share of 9s
    low, high = wilson_interval(row["held_out_share"], 100)
    assert (row["held_out_share_ci_low"], row["held_out_share_ci_high"]) == pytest.approx((low, high))


COPIED_FIDS = {(500, 0): 40.0, (500, 1): 44.0, (1000, 0): 30.0, (1000, 1): 31.0}


def copied_size_sweep(folder) -> None:
    """Four copies of the committed VAE in ``folder``, stored as a training-set-size sweep of two seeds with the
    FIDs of ``COPIED_FIDS``."""
    import json
    import shutil

    from safetensors.torch import load_file

    from evaluation.store import weights_sha256
    from generators.checkpoints import read_run_info, save_weights

    from .helpers import ROOT

    for (size, seed), fid in COPIED_FIDS.items():
        run_dir = folder / f"vae-sweep-train_size{size}-seed{seed}"
        shutil.copytree(ROOT / "checkpoints" / "vae-mnist5k", run_dir)
        info = read_run_info(run_dir)
        info["train_config"].update(train_size=size, seed=seed)
        save_weights(run_dir, load_file(run_dir / "model.safetensors"), info)
        rows = json.loads((run_dir / "metrics.json").read_text())
        for row in rows.values():
            row.update(fid=fid, weights_sha256=weights_sha256(run_dir))
        (run_dir / "metrics.json").write_text(json.dumps(rows))


def test_the_sweeps_tab_plots_a_metric_against_the_training_set_size(tmp_path, monkeypatch):
    """The tab offers the swept setting and draws the mean FID over the seeds at each size."""
    import json

    from streamlit.testing.v1 import AppTest

    from dashboard import PAGE
    from dashboard.state import CHECKPOINTS_ENV, VIEW_KEY
    from dashboard.tabs import TAB_TITLES

    from .test_app import plotly_values

    copied_size_sweep(tmp_path)
    monkeypatch.setenv(CHECKPOINTS_ENV, str(tmp_path))
    at = AppTest.from_file(str(PAGE), default_timeout=300).run()
    at.session_state[VIEW_KEY] = "Sweeps"
    at.run()
    assert at.selectbox(key="sweep_setting").options == ["β", "training-set size"]
    at.selectbox(key="sweep_setting").set_value("train_size").run()
    assert not at.exception and not at.error
    (chart,) = at.tabs[TAB_TITLES.index("Sweeps")].get("plotly_chart")
    means = json.loads(chart.proto.spec)["data"][0]
    assert plotly_values(means["x"]) == [500.0, 1000.0]
    assert plotly_values(means["y"]) == pytest.approx([42.0, 30.5])


def test_the_fairness_table_says_what_each_run_trained_on():
    from evaluation.fairness import training_images

    assert training_images({"batch_size": 128}) == "the whole train split"
    assert training_images({"train_size": 500}) == "500"
    assert training_images({"train_size": 900, "exclude_classes": [9]}) == "900, without class 9"
    assert training_images({"exclude_classes": [7, 9]}) == "the whole train split, without classes 7, 9"


def test_the_report_draws_the_largest_training_set_size_sweep(tmp_path):
    from evaluation.bundle import report_inputs
    from evaluation.runs import scan

    copied_size_sweep(tmp_path)
    runs, _ = scan(tmp_path)
    inputs = report_inputs(runs[:1], folder=tmp_path)
    sweep = inputs.size_sweep()
    assert sorted(sweep.points) == [500.0, 1000.0] and sweep.seeds == 2
    assert report_inputs(runs[:1], folder=tmp_path, pool=runs[:2]).size_sweep() is None  # one size: no sweep
