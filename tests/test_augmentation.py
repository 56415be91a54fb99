"""The augmentation experiment against known answers: copies of the classifier's own real images add nothing,
labelled noise does not help, more real images help, the subset is stratified and seeded, the interval is
Student's t, bad input is one line, stored results are read back, and the finding follows the stored intervals."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

from evaluation import augmentation, findings
from evaluation.runs import Run
from generators.data import load_dataset
from generators.errors import UserError
from tests.helpers import ROOT, assert_one_line_error, run_cli

STEPS, WIDTH = 64, 8  # a fraction of the default recipe: each classifier trains in about a second
SEEDS = (0, 1, 2)


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Small classifiers train faster on one thread than on two fighting over a busy machine's cores."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def data():
    return load_dataset("mnist5k")


@pytest.fixture(scope="module")
def baseline():
    """Real-only accuracies shared by the tests of this module (they do not depend on the generator)."""
    return {}


def measured(data, generate, k, baseline, seeds=SEEDS, m=90) -> dict:
    entries = augmentation.measure(
        data, generate, [(k, s) for s in seeds], generated_per_class=m, steps=STEPS, width=WIDTH, baseline=baseline
    )
    (row,) = augmentation.summarise(entries)
    return row


def test_the_subset_has_k_images_of_every_class_and_is_seeded(data):
    labels = data.train.labels
    first = augmentation.stratified_subset(labels, 7, seed=3)
    assert torch.bincount(labels[first]).tolist() == [7] * data.num_classes
    assert len(set(first.tolist())) == len(first)  # no image twice
    assert torch.equal(first, augmentation.stratified_subset(labels, 7, seed=3))
    assert not torch.equal(first, augmentation.stratified_subset(labels, 7, seed=4))
    with pytest.raises(UserError, match="more than class"):
        augmentation.stratified_subset(labels, 451, seed=0)  # mnist5k's train split has 450 per class


def test_t_interval_is_students_t_over_seeds():
    mean, low, high = augmentation.t_interval([1.0, 2.0, 3.0])  # sd 1, t(0.975, 2) = 4.303
    assert mean == 2.0 and high - mean == pytest.approx(4.302653 / 3**0.5, rel=1e-5) and low == 4.0 - high
    assert augmentation.t_interval([0.5]) == (0.5, None, None)
    assert augmentation.t_interval([0.9, 1.0], 0.0, 1.0)[2] == 1.0  # an accuracy's interval stops at 1


def test_copies_of_the_classifiers_own_real_images_gain_nothing(data, baseline):
    """A generator that hands back the very real images the classifier already has (a memorising generator on
    exactly this subset) adds no information; with the steps fixed, the gain is noise."""

    def copies(per_class: int, seed: int):
        idx = augmentation.stratified_subset(data.train.labels, 10, seed)
        idx = idx.view(data.num_classes, 10).repeat_interleave(per_class // 10, dim=1).flatten()
        return data.train.images[idx].float() / 255, data.train.labels[idx]

    row = measured(data, copies, 10, baseline)
    assert row["gain_ci_low"] <= 0 <= row["gain_ci_high"] or abs(row["gain"]) < 0.02, row
    assert abs(row["gain"]) < 0.05, row


def test_labelled_noise_does_not_help(data, baseline):
    def noise(per_class: int, seed: int):
        generator = torch.Generator().manual_seed(seed)
        n = per_class * data.num_classes
        images = torch.rand(n, *data.image_shape, generator=generator)
        return images, torch.randint(data.num_classes, (n,), generator=generator)

    row = measured(data, noise, 100, baseline, seeds=(0, 1))
    assert row["gain"] < 0.01 and not row["gain_ci_low"] > 0, row


def test_more_real_images_give_a_better_classifier(data):
    def real_only(k: int) -> float:
        idx = augmentation.stratified_subset(data.train.labels, k, 0)
        images, labels = data.train.images[idx].float() / 255, data.train.labels[idx]
        return augmentation.test_accuracy(images, labels, data, 0, STEPS, WIDTH)

    few, many = real_only(10), real_only(100)
    assert many > few + 0.02, (few, many)


def test_a_positive_control_unseen_real_images_help_at_few_real_ones(data, baseline):
    """Real images the classifier has not got (the rest of the train split) are the best a generator could give:
    the experiment must see their gain at k = 10."""

    def unseen(per_class: int, seed: int):
        taken = set(augmentation.stratified_subset(data.train.labels, 10, seed).tolist())
        rest = torch.tensor([i for i in range(len(data.train)) if i not in taken])
        idx = rest[augmentation.stratified_subset(data.train.labels[rest], per_class, seed)]
        return data.train.images[idx].float() / 255, data.train.labels[idx]

    row = measured(data, unseen, 10, baseline, m=200)
    assert row["gain_ci_low"] > 0, row


@pytest.fixture
def cvae_copy(tmp_path):
    run_dir = shutil.copytree(ROOT / "checkpoints" / "cvae-mnist5k", tmp_path / "cvae-mnist5k")
    (run_dir / augmentation.RESULTS_FILE).unlink(missing_ok=True)
    return run_dir


def test_results_are_stored_beside_the_run_and_read_back(cvae_copy, monkeypatch, capsys):
    from evaluation.__main__ import main

    monkeypatch.setattr(augmentation, "STEPS", 8)
    monkeypatch.setattr(augmentation, "WIDTH", 4)
    argv = ["augment", str(cvae_copy), "--real-per-class", "5", "--seeds", "0", "1", "--generated-per-class", "5"]
    assert main(argv) == 0
    first = capsys.readouterr().out
    (header,) = [line for line in first.splitlines() if "per class (k)" in line]  # one block: never wrapped
    assert header.split()[0] == "run" and header.endswith("classifier seeds")
    stored = json.loads((cvae_copy / augmentation.RESULTS_FILE).read_text())["entries"]
    assert sorted(e["seed"] for e in stored.values()) == [0, 1] and {e["k"] for e in stored.values()} == {5}

    def no_training(*args, **kwargs):
        raise AssertionError("a rerun with the same settings must read the stored results")

    monkeypatch.setattr(augmentation, "test_accuracy", no_training)
    assert main(argv) == 0
    assert capsys.readouterr().out == first
    assert "+" in first and "5" in first


@pytest.mark.parametrize(
    "args, mentions",
    [
        (["checkpoints/no-such-run"], "no-such-run"),
        (["checkpoints/cvae-mnist5k", "--real-per-class", "0"], "--real-per-class"),
        (["checkpoints/cvae-mnist5k", "--real-per-class", "10", "451"], "more than class"),
        (["checkpoints/cvae-mnist5k", "--json", "checkpoints/cvae-mnist5k/metrics.json"], "inside the run folder"),
    ],
)
def test_bad_input_is_one_error_line(args, mentions, monkeypatch, capsys):
    from evaluation.__main__ import main

    monkeypatch.chdir(ROOT)
    before = (ROOT / "checkpoints/cvae-mnist5k/metrics.json").read_bytes()
    assert main(["augment", *args]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("error: ") and mentions in line, line
    assert (ROOT / "checkpoints/cvae-mnist5k/metrics.json").read_bytes() == before


def test_an_unconditional_run_is_refused_in_one_line():
    """As a user types it: labelling a plain model's samples with the evaluation's classifier would leak labels."""
    result = run_cli("evaluation", "augment", "checkpoints/vae-mnist5k", "checkpoints/cvae-mnist5k")
    assert_one_line_error(result, mentions="not class-conditional")
    assert not (ROOT / "checkpoints/vae-mnist5k" / augmentation.RESULTS_FILE).exists()


def _store_gains(run_dir, gains: list[float], k: int = 10) -> None:
    from evaluation.store import weights_sha256

    entries = [
        {"k": k, "generated_per_class": 450, "seed": seed, "steps": 200, "width": 16}
        | {"real_accuracy": 0.8, "augmented_accuracy": 0.8 + gain}
        for seed, gain in enumerate(gains)
    ]
    augmentation.store_entries(run_dir, entries, weights_sha256(run_dir))


def _verdict(run_dir) -> findings.Finding:
    return findings.generated_images_help([Run.read(run_dir)], {})


@pytest.mark.parametrize(
    "gains, verdict",
    [
        ([0.05, 0.06, 0.07], findings.SUPPORTED),
        ([-0.05, -0.06, -0.07], findings.CONTRADICTED),
        ([0.05, -0.04, 0.01], findings.NO_CLEAR),
        ([0.05], findings.NOT_MEASURED),  # one seed: no interval
    ],
)
def test_the_finding_follows_the_stored_gain_interval(cvae_copy, gains, verdict):
    assert _verdict(cvae_copy).verdict == findings.NOT_MEASURED  # nothing stored yet
    _store_gains(cvae_copy, gains)
    _store_gains(cvae_copy, [-0.1, -0.1, -0.1], k=100)  # a larger k never decides a claim about few real images
    assert _verdict(cvae_copy).verdict == verdict


def test_results_of_other_weights_are_ignored(cvae_copy):
    _store_gains(cvae_copy, [0.05, 0.06, 0.07])
    path = cvae_copy / augmentation.RESULTS_FILE
    body = json.loads(path.read_text())
    for entry in body["entries"].values():
        entry["weights_sha256"] = "0" * 64  # made before the run was trained further
    path.write_text(json.dumps(body))
    assert augmentation.stored_results(Run.read(cvae_copy)) == []
    assert _verdict(cvae_copy).verdict == findings.NOT_MEASURED


def test_figure_draws_accuracy_against_k_with_the_intervals(cvae_copy):
    _store_gains(cvae_copy, [0.05, 0.06, 0.07], k=10)
    _store_gains(cvae_copy, [0.0, 0.01, -0.01], k=100)
    rows = augmentation.stored_results(Run.read(cvae_copy))
    figure = augmentation.augmentation_figure({"a": rows, "b": rows})
    names = [trace.name for trace in figure.data]
    assert names == ["real only", "real + 450 generated per class (a)", "real + 450 generated per class (b)"]
    assert figure.layout.xaxis.type == "log" and list(figure.data[0].x) == [10, 100]
    augmented = figure.data[1]
    assert augmented.y[0] == pytest.approx(0.86) and augmented.y[1] == pytest.approx(0.8)
    assert augmented.error_y.array[0] == pytest.approx(rows[0]["augmented_ci_high"] - rows[0]["augmented"])


def test_the_metrics_tab_part_computes_and_draws_the_results(tmp_path, dashboard_runs, monkeypatch):
    """The Augmentation part says why an unconditional run is left out, computes a conditional run's missing
    results with its button, and then draws them (figure and table)."""
    from dashboard import augmentation as part_module
    from tests.test_app import assert_clean, open_app, part

    checkpoints = tmp_path / "checkpoints"
    for name in ("ae-mnist5k", "_extractors"):
        shutil.copytree(dashboard_runs / name, checkpoints / name)
    shutil.copytree(ROOT / "checkpoints" / "cvae-mnist5k", checkpoints / "cvae-mnist5k")
    (checkpoints / "cvae-mnist5k" / augmentation.RESULTS_FILE).unlink(missing_ok=True)
    monkeypatch.setattr(augmentation, "STEPS", 4)
    monkeypatch.setattr(augmentation, "WIDTH", 4)
    monkeypatch.setattr(part_module, "QUICK_REAL_PER_CLASS", (2, 4))
    at = open_app(checkpoints, monkeypatch)
    at.multiselect(key="runs").set_value(["ae-mnist5k", "cvae-mnist5k"]).run()
    metrics = part(at, "Metrics", "metrics_part", "Augmentation")
    assert any("unconditional" in c.value and "ae-mnist5k" in c.value for c in metrics.caption)
    assert not metrics.get("plotly_chart")
    metrics.button(key="augmentation_compute").click().run()
    assert_clean(at)
    metrics = part(at, "Metrics", "metrics_part", "Augmentation")
    (chart,) = metrics.get("plotly_chart")
    names = [trace["name"] for trace in json.loads(chart.proto.spec)["data"]]
    assert names == ["real only", "real + 450 generated per class (cvae-mnist5k)"]
    entries = json.loads((checkpoints / "cvae-mnist5k" / augmentation.RESULTS_FILE).read_text())["entries"]
    assert sorted((e["k"], e["seed"]) for e in entries.values()) == [(k, s) for k in (2, 4) for s in SEEDS]
    (shown,) = metrics.dataframe  # a real table with readable column names, one row per k
    assert shown.value.columns[:3].tolist() == ["run", "real images per class (k)", "generated per class"]
    assert shown.value["real images per class (k)"].tolist() == [2, 4] and not metrics.code


def test_the_methods_describe_the_experiment_exactly_when_the_report_draws_it(cvae_copy):
    """methods.md gets the classifier recipe, k, m, seeds and interval of the stored results, and only when the
    report's figures include the augmentation figure."""
    from evaluation import bundle
    from evaluation.store import weights_sha256

    shutil.copytree(ROOT / "checkpoints" / "_extractors", cvae_copy.parent / "_extractors")

    def report() -> tuple[bool, str]:
        run = Run.read(cvae_copy)
        inputs = bundle.report_inputs([run], n_samples=16, folder=cvae_copy.parent, pool=[run])
        return "augmentation" in bundle.report_figures(inputs, []), bundle.tables(inputs, [])["methods.md"]

    drawn, methods = report()
    assert not drawn and "Augmentation" not in methods
    entries = [
        {"k": k, "generated_per_class": 90, "seed": seed, "steps": 37, "width": 6}
        | {"real_accuracy": 0.5, "augmented_accuracy": 0.6 + seed / 100}
        for k in (10, 40)
        for seed in (0, 1, 2)
    ]  # a recipe other than the code's defaults: the text must be read from the stored results
    augmentation.store_entries(cvae_copy, entries, weights_sha256(cvae_copy))
    drawn, methods = report()
    (line,) = [line for line in methods.splitlines() if "**Augmentation.**" in line]
    assert drawn and "cvae-mnist5k" in line
    assert "(6 channels in its first convolution, 37 gradient steps" in line
    assert "k = 10, 40 real training images per class" in line and "m = 90 generated images per class" in line
    assert f"classifier seeds 0, 1, 2 with a 95 % interval ({augmentation.INTERVAL_METHOD})" in line


def test_the_note_says_what_each_generator_was_trained_on():
    """A conditional generator passes on what its own labels taught it: the finding says how much it saw."""
    from types import SimpleNamespace

    from evaluation.augmentation import generator_note

    def run(name, size):
        return SimpleNamespace(name=name, info={"train_config": {"train_size": size}})

    note = generator_note([run("a", None), run("b", 100), run("c", None)])
    assert "a, c: the whole labelled training split" in note and "b: 100 labelled training images" in note
    assert "not that k images alone can be augmented" in note
