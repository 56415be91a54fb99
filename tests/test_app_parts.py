"""Unit tests of the dashboard's pure parts: interpolation paths, GIFs, findings verdicts, the report zip."""

from __future__ import annotations

import io
import math
import zipfile

import pytest
import torch
from PIL import Image

from dashboard import findings
from dashboard.images import gif_bytes, to_pil
from dashboard.interpolation import path
from dashboard.jobs import unique_run_name
from dashboard.state import Run
from generators.checkpoints import write_history


def test_linear_path_hits_both_endpoints_and_the_midpoint():
    z0, z1 = torch.tensor([0.0, 2.0]), torch.tensor([4.0, -2.0])
    frames = path(z0, z1, 5, spherical=False)
    assert frames.shape == (5, 2)
    torch.testing.assert_close(frames[0], z0)
    torch.testing.assert_close(frames[-1], z1)
    torch.testing.assert_close(frames[2], torch.tensor([2.0, 0.0]))


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
    column = "g_loss" if model == "dcgan" else "loss"
    write_history(run_dir, [{"step": i + 1, column: v} for i, v in enumerate(losses or [])])
    return Run(name, run_dir, {"model": model, "model_config": {"beta": beta} if model == "vae" else {}})


def test_findings_follow_the_numbers(tmp_path):
    vae = fake_run(tmp_path, "v", "vae", losses=[100, 99, 100, 99, 100, 99, 100, 99])
    vae4 = fake_run(tmp_path, "v4", "vae", beta=4.0)
    ae = fake_run(tmp_path, "a", "ae")
    gan = fake_run(tmp_path, "g", "dcgan", losses=[1, 5, 0.5, 6, 0.2, 7, 0.1, 8])
    rows = [
        {
            "run": "v",
            "sharpness": 0.5,
            "recall": 0.6,
            "modes": 10,
            "smoothness": 0.1,
            "fid": 20.0,
            "recon_mse": 0.01,
            "active_units": 12,
        },
        {"run": "v4", "recon_mse": 0.03, "active_units": 5},
        {"run": "a", "smoothness": 0.4, "fid": 90.0},
        {"run": "g", "sharpness": 0.9, "recall": 0.2, "modes": 6},
    ]
    found = {f.claim: f for f in findings.assess([vae, vae4, ae, gan], rows)}
    assert [f.verdict for f in found.values()] == [findings.SUPPORTED] * 6
    assert "0.9" in found["GAN samples are sharper than VAE samples."].evidence

    flipped = [{**rows[0], "sharpness": 1.5, "recall": 0.1, "modes": 3}, rows[1], rows[2], rows[3]]
    found = {f.claim: f.verdict for f in findings.assess([vae, vae4, ae, gan], flipped)}
    assert found["GAN samples are sharper than VAE samples."] == findings.NOT_SUPPORTED
    assert found["The VAE covers more modes of the data than the GAN."] == findings.NOT_SUPPORTED


def test_findings_without_numbers_say_not_measured_yet(tmp_path):
    vae, gan = fake_run(tmp_path, "v", "vae"), fake_run(tmp_path, "g", "dcgan")
    found = findings.assess([vae, gan], [])
    assert {f.verdict for f in found} == {findings.NOT_MEASURED}
    markdown = findings.to_markdown(found, [vae, gan])
    assert markdown.startswith("# Findings") and markdown.count("not measured yet") == 6


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
    assert {"metrics.csv", "metrics.md", "metrics.tex", "findings.md", "figures/plotly.min.js"} <= names
    assert {f"grids/{run.name}-samples-seed3.png" for run in runs} <= names
    assert {"figures/fid.html", "figures/precision_recall.html"} <= names
    assert {f"figures/training_{run.name}.html" for run in runs} <= names
    assert 'src="plotly.min.js"' in archive.read("figures/fid.html").decode()
    grid = Image.open(io.BytesIO(archive.read(f"grids/{runs[0].name}-samples-seed3.png")))
    assert grid.size == (2 * (4 * 30 + 2), 2 * (4 * 30 + 2))
    assert archive.read("metrics.csv").decode().count("\n") >= len(runs)
