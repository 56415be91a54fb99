"""Unit tests of the dashboard's pure parts: interpolation paths, GIFs, findings verdicts, the report zip."""

from __future__ import annotations

import io
import math
import zipfile

import pytest
import torch
from PIL import Image

from dashboard.images import gif_bytes, to_pil
from dashboard.interpolation import path
from dashboard.jobs import unique_run_name
from dashboard.latent import principal_components
from evaluation import findings
from evaluation.runs import Run
from generators.checkpoints import write_history


def test_linear_path_hits_both_endpoints_and_the_midpoint():
    z0, z1 = torch.tensor([0.0, 2.0]), torch.tensor([4.0, -2.0])
    frames = path(z0, z1, 5, spherical=False)
    assert frames.shape == (5, 2)
    torch.testing.assert_close(frames[0], z0)
    torch.testing.assert_close(frames[-1], z1)
    torch.testing.assert_close(frames[2], torch.tensor([2.0, 0.0]))


def test_principal_components_find_the_known_axes_and_variance_shares():
    """Codes spread with standard deviations 3, 2, 1 along three orthogonal directions of a rotated 3-D space:
    the map's axes are the first two directions, holding 9/14 and 4/14 of the variance."""
    import numpy as np

    generator = np.random.default_rng(0)
    spread = generator.standard_normal((20_000, 3))
    spread = (spread - spread.mean(0)) / spread.std(0) * np.array([3.0, 2.0, 1.0])
    rotation, _ = np.linalg.qr(generator.standard_normal((3, 3)))
    xy, shares = principal_components(spread @ rotation.T + 5.0)
    np.testing.assert_allclose(shares, [9 / 14, 4 / 14], atol=0.01)
    np.testing.assert_allclose(np.abs(xy), np.abs(spread[:, :2]), atol=0.05)
    flipped, _ = principal_components(-(spread @ rotation.T))
    np.testing.assert_allclose(np.abs(flipped), np.abs(xy), atol=1e-6)


def test_slerp_keeps_the_norm_between_codes_of_equal_norm():
    z0, z1 = torch.tensor([3.0, 0.0, 0.0]), torch.tensor([0.0, 0.0, 3.0])
    frames = path(z0, z1, 7, spherical=True)
    torch.testing.assert_close(frames.norm(dim=1), torch.full((7,), 3.0))
    torch.testing.assert_close(frames[3], torch.tensor([3 / math.sqrt(2), 0.0, 3 / math.sqrt(2)]))
    torch.testing.assert_close(frames[-1], z1)


def test_slerp_of_parallel_codes_falls_back_to_a_line():
    z0 = torch.tensor([1.0, 1.0])
    frames = path(z0, 2 * z0, 3, spherical=True)
    torch.testing.assert_close(frames[1], 1.5 * z0)


def test_grid_and_gif_have_the_expected_size_and_frames():
    images = torch.rand(6, 1, 28, 28)
    grid = to_pil(images, nrow=3, scale=2)
    assert grid.size == (2 * (3 * 30 + 2), 2 * (2 * 30 + 2))  # make_grid pads 2 px around every image
    frames = [to_pil(image[None], nrow=1) for image in images]
    gif = Image.open(io.BytesIO(gif_bytes(frames)))
    assert gif.n_frames == 6 + 4  # forwards, then back without repeating the two ends


def test_run_names_are_unique_even_within_one_second():
    names = {unique_run_name("vae", "mnist5k") for _ in range(50)}
    assert len(names) == 50 and all(name.startswith("vae-mnist5k-") for name in names)


def fake_run(tmp_path, name: str, model: str, beta: float = 1.0, losses: list[float] | None = None) -> Run:
    run_dir = tmp_path / name
    run_dir.mkdir()
    column = "d_loss" if model == "dcgan" else "loss"  # each model's own objective
    write_history(run_dir, [{"step": i + 1, column: v} for i, v in enumerate(losses or [])])
    config = {"beta": beta} if model == "vae" else {}
    return Run(name, run_dir, {"model": model, "model_config": config, "dataset": "mnist5k", "step": 400})


def measured(**values) -> dict:
    """A row whose every value has a 95 % interval of ±5 % around it."""
    row = {}
    for key, value in values.items():
        row.update({key: value, f"{key}_ci_low": value * 0.95, f"{key}_ci_high": value * 1.05})
    return row


def test_findings_follow_the_numbers(tmp_path):
    steady = [100 + 0.5 * (i % 2) for i in range(400)]  # the VAE's loss barely moves; the GAN's D loss swings
    vae = fake_run(tmp_path, "v", "vae", losses=steady)
    vae4 = fake_run(tmp_path, "v4", "vae", beta=4.0)
    ae = fake_run(tmp_path, "a", "ae")
    gan = fake_run(tmp_path, "g", "dcgan", losses=[1 + 0.8 * (i % 2) for i in range(400)])
    rows = [
        {"run": "v", **measured(sharpness=0.5, recall=0.6, coverage=0.7, smoothness=1.1, fid=20.0, recon_mse=0.01)},
        {"run": "v4", **measured(recon_mse=0.03, fid=15.0)},
        {"run": "a", **measured(smoothness=1.6, fid=90.0)},
        {"run": "g", **measured(sharpness=0.9, recall=0.2, coverage=0.3)},
    ]
    found = {f.claim: f for f in findings.assess([vae, vae4, ae, gan], rows)}
    assert [f.verdict for f in found.values()][:6] == [findings.SUPPORTED] * 6, found
    assert "95 % interval" in found["GAN samples are sharper than VAE samples."].evidence

    flipped = [{**rows[0], **measured(sharpness=1.5, recall=0.1, coverage=0.1)}, *rows[1:]]
    found = {f.claim: f.verdict for f in findings.assess([vae, vae4, ae, gan], flipped)}
    assert found["GAN samples are sharper than VAE samples."] == findings.CONTRADICTED
    assert found["The VAE covers more modes of the data than the GAN (higher recall and coverage)."] == (
        findings.CONTRADICTED
    )


def test_a_tie_is_no_clear_difference_and_no_interval_is_not_measured(tmp_path):
    vae, gan = fake_run(tmp_path, "v", "vae"), fake_run(tmp_path, "g", "dcgan")
    tie = [{"run": "v", **measured(sharpness=0.7)}, {"run": "g", **measured(sharpness=0.7)}]
    (sharper,) = [f for f in findings.assess([vae, gan], tie) if "sharper" in f.claim]
    assert sharper.verdict == findings.NO_CLEAR
    bare = [{"run": "v", "sharpness": 0.5}, {"run": "g", "sharpness": 0.9}]  # a difference, but no interval
    (sharper,) = [f for f in findings.assess([vae, gan], bare) if "sharper" in f.claim]
    assert sharper.verdict == findings.NOT_MEASURED


def test_findings_without_numbers_say_not_measured_yet(tmp_path):
    vae, gan = fake_run(tmp_path, "v", "vae"), fake_run(tmp_path, "g", "dcgan")
    found = findings.assess([vae, gan], [])
    assert {f.verdict for f in found} == {findings.NOT_MEASURED}
    markdown = findings.to_markdown(found, [vae, gan])
    assert markdown.startswith("# Findings") and markdown.count("not measured yet") == len(findings.CHECKS)


@pytest.fixture
def bare_streamlit(monkeypatch, dashboard_runs):
    """Call the tab helpers outside a page: the caches work in bare mode."""
    from dashboard.state import CHECKPOINTS_ENV

    monkeypatch.setenv(CHECKPOINTS_ENV, str(dashboard_runs))


def test_report_zip_holds_tables_grids_figures_and_findings(bare_streamlit):
    from dashboard.report import build_zip
    from dashboard.state import Selection, scan_runs

    runs, _ = scan_runs()
    archive = zipfile.ZipFile(io.BytesIO(build_zip(Selection(tuple(runs), seed=3, n_samples=16, scale=1))))
    names = set(archive.namelist())
    tables = {"tables/metrics.csv", "tables/metrics.md", "tables/summary.tex", "tables/fairness.csv"}
    assert tables | {"findings.md", "methods.md"} <= names
    assert {f"grids/{run.name}-samples-seed3.png" for run in runs} <= names
    for figure in ("fid", "precision_recall", "samples", *(f"training_{run.name}" for run in runs)):
        assert archive.read(f"figures/{figure}.png").startswith(b"\x89PNG"), figure
        assert archive.read(f"figures/{figure}.pdf").startswith(b"%PDF-"), figure
    assert r"\resizebox{\textwidth}" in archive.read("tables/summary.tex").decode()
    grid = Image.open(io.BytesIO(archive.read(f"grids/{runs[0].name}-samples-seed3.png")))
    assert grid.size == (2 * (4 * 30 + 2), 2 * (4 * 30 + 2))


def test_conditional_finding_tests_label_accuracy_against_chance(tmp_path):
    cvae = fake_run(tmp_path, "c", "cvae")
    claim = "A class-conditional model draws the class it is asked for."
    good = [{"run": "c", "label_accuracy": 0.97, "n_fake": 1000, "label_accuracy_per_class": [0.93] * 10}]
    found = {f.claim: f for f in findings.assess([cvae], good)}
    assert found[claim].verdict == findings.SUPPORTED and "worst class 0.930" in found[claim].evidence
    near_chance = [{"run": "c", "label_accuracy": 0.12, "n_fake": 100}]  # 0.12 ± 0.064 includes chance (0.1)
    assert {f.claim: f for f in findings.assess([cvae], near_chance)}[claim].verdict == findings.NO_CLEAR


def test_adding_a_finished_run_to_the_comparison_switches_to_its_data_set(monkeypatch):
    from dashboard import sidebar

    state = {"dataset": "mnist5k", "runs": ["vae-mnist5k", "ae-mnist5k"]}
    monkeypatch.setattr(sidebar.st, "session_state", state)
    sidebar.compare("dcgan-mnist5k", "mnist5k")  # the same data set: added to the runs shown
    assert state == {"dataset": "mnist5k", "runs": ["vae-mnist5k", "ae-mnist5k", "dcgan-mnist5k"]}
    sidebar.compare("vae-sprites", "sprites")  # another data set: the page switches to it, never mixes them
    assert state == {"dataset": "sprites", "runs": ["vae-sprites"]}
    sidebar.compare("vae-sprites", "sprites")  # twice: still once
    assert state["runs"] == ["vae-sprites"]
