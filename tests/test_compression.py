"""Compression (evaluation/compression.py) against known answers: the bits of a discretised Gaussian in closed
form, a code rounded to a huge step costs nothing and decodes the prior's mode, a posterior equal to the prior costs
0 bits, JPEG at quality 100 beats quality 10, PNG is lossless and its bits are its file's; and the command."""

from __future__ import annotations

import copy
import dataclasses
import io
import json
import math
import shutil
from pathlib import Path

import pandas as pd
import pytest
import torch
from PIL import Image
from scipy.stats import norm
from torchmetrics.functional.image import peak_signal_noise_ratio

from evaluation import compression
from evaluation.runs import Run
from generators.base import Capabilities
from generators.data import load_dataset
from tests.helpers import ROOT, assert_one_line_error, run_cli

CHECKPOINTS = ROOT / "checkpoints"
HUGE_STEP = 1e6
N = 40


@pytest.fixture(scope="module")
def test_images():
    """N uint8 test images of mnist5k and their labels, as the evaluation picks them."""
    return compression.test_subset(load_dataset("mnist5k"), N)


def test_a_cell_around_zero_costs_minus_log2_of_its_mass():
    for step in (1e-3, 0.5, 1.0, 4.0, HUGE_STEP):
        expected = -math.log2(math.erf(step / (2 * math.sqrt(2))))  # P(|z| < step/2) for z ~ N(0, 1)
        bits = compression.gaussian_cell_bits(torch.zeros(1, 1), step).item()
        assert bits == pytest.approx(expected, rel=1e-9, abs=1e-12)
    assert compression.gaussian_cell_bits(torch.zeros(1, 16), HUGE_STEP).item() == pytest.approx(0.0, abs=1e-9)


def test_far_tail_cells_keep_their_precision_and_are_symmetric():
    cells = torch.tensor([[-40.0], [40.0], [-7.0], [7.0]])
    bits = compression.gaussian_cell_bits(cells, 1.0)
    low, high = 39.5, 40.5  # the mass of [39.5, 40.5] from scipy's log survival function (no cancellation)
    expected = -(norm.logsf(low) + math.log1p(-math.exp(norm.logsf(high) - norm.logsf(low)))) / math.log(2)
    assert torch.isfinite(bits).all()
    assert bits[0].item() == pytest.approx(expected, rel=1e-9) and bits[1].item() == pytest.approx(expected, rel=1e-9)
    assert bits[2].item() == pytest.approx(bits[3].item(), rel=1e-12)


def test_fine_steps_cost_the_differential_entropy_minus_log2_of_the_step():
    """For z ~ N(0, 1) and a small step Δ, E[−log2 P(cell)] → h(z) − log2 Δ with h = ½ log2(2πe) bits."""
    z = torch.randn(200_000, 1, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    for step in (0.01, 0.05):
        prior = compression.CodePrior(torch.zeros(1, dtype=torch.float64), torch.ones(1, dtype=torch.float64), "")
        cells, _code = compression.quantise(z, prior, step)
        mean_bits = compression.gaussian_cell_bits(cells, step).mean().item()
        assert mean_bits == pytest.approx(0.5 * math.log2(2 * math.pi * math.e) - math.log2(step), abs=0.015)


def test_kl_bits_of_the_prior_itself_are_zero_and_of_a_shifted_mean_are_mu_squared_over_2_ln2():
    assert compression.kl_bits(torch.zeros(5, 8), torch.zeros(5, 8)).abs().max().item() == 0.0
    mu = torch.full((3, 4), 1.5)
    expected = 4 * 1.5**2 / 2 / math.log(2)
    assert compression.kl_bits(mu, torch.zeros(3, 4)).tolist() == pytest.approx([expected] * 3)


class MeanImageModel(torch.nn.Module):
    """A posterior model whose decoder draws the mean training image plus a small linear image of z: its prior mode
    z = 0 decodes to the mean image exactly."""

    def __init__(self, mean_image: torch.Tensor, dims: int = 4):
        super().__init__()
        self.capabilities = Capabilities(title="mean image", latent_shape=(dims,), encoder=True, posterior=True)
        self.mean_image = mean_image
        self.basis = torch.randn(dims, mean_image.numel(), generator=torch.Generator().manual_seed(1)) * 0.05
        self.dims = dims

    @property
    def device(self):
        return torch.device("cpu")

    def posterior(self, x):
        mu = (x.flatten(1) @ self.basis.T) * 20
        return mu, torch.full_like(mu, -2.0)

    def decode(self, z):
        return (self.mean_image + (z @ self.basis).view(-1, *self.mean_image.shape)).clamp(0, 1)


@dataclasses.dataclass
class FakeRun:
    name: str
    fake: object
    data: object

    def model(self):
        return self.fake

    def dataset(self):
        return self.data


def test_a_huge_step_costs_no_bits_and_gives_the_mean_image_psnr(test_images):
    data = load_dataset("mnist5k")
    mean_image = data.train.images.float().div(255).mean(0)
    images = test_images[0].float() / 255
    model = MeanImageModel(mean_image)
    (huge, fine, bits_back) = compression.model_rows(
        FakeRun("mean", model, data), images, None, steps=(HUGE_STEP, 1e-4), bootstrap=0
    )
    expected = peak_signal_noise_ratio(mean_image.expand_as(images), images, data_range=1.0).item()
    assert huge["bits"] == pytest.approx(0.0, abs=1e-6)
    assert huge["psnr"] == pytest.approx(expected, rel=1e-6)
    unquantised = peak_signal_noise_ratio(model.decode(model.posterior(images)[0]), images, data_range=1.0).item()
    assert fine["bits"] > model.dims * math.log2(1e4) and fine["psnr"] == pytest.approx(unquantised, rel=1e-4)
    assert bits_back["rate"] == compression.BITS_BACK_RATE and bits_back["bits"] > 0


def test_committed_runs_at_a_huge_step_decode_their_prior_mode_and_a_class_costs_log2_classes(test_images):
    images, labels = test_images[0].float() / 255, test_images[1]
    for name, label_bits in (("vae-mnist5k", 0.0), ("cvae-mnist5k", math.log2(10))):
        run = Run.read(CHECKPOINTS / name)
        (huge,) = compression.model_rows(run, images, labels, steps=(HUGE_STEP,), bootstrap=0)[:1]
        model = run.model()
        kw = {"labels": labels} if model.capabilities.conditional else {}
        with torch.inference_mode():
            mode = model.decode(torch.zeros(len(images), model.capabilities.latent_shape[-1]), **kw)
        assert huge["bits"] == pytest.approx(label_bits, abs=1e-6)
        assert huge["psnr"] == pytest.approx(peak_signal_noise_ratio(mode, images, data_range=1.0).item(), rel=1e-5)


def test_jpeg_at_quality_100_beats_quality_10_and_costs_more_bits(test_images):
    jpeg = dataclasses.replace(compression.CODECS[0], qualities=(10, 100))
    rows = compression.codec_rows(test_images[0], codecs=(jpeg,), bootstrap=100)
    low, high = (row for row in rows if row["rate"] == compression.FILE_RATE)
    assert high["psnr_ci_low"] > low["psnr_ci_high"] and high["mse"] < low["mse"]
    assert high["bits_ci_low"] > low["bits_ci_high"]
    assert all(0 < row["header_bits"] < row["bits"] for row in (low, high))


def test_png_is_lossless_and_costs_its_file_size(test_images):
    png = compression.CODECS[2]
    whole, shared = compression.codec_rows(test_images[0], codecs=(png,), bootstrap=0)
    sizes = []
    for image in test_images[0]:
        buffer = io.BytesIO()
        Image.fromarray(image[0].numpy()).save(buffer, "PNG", optimize=True)
        sizes.append(8 * len(buffer.getvalue()))
    assert whole["psnr"] == math.inf and whole["mse"] == 0.0 and whole["ssim"] == pytest.approx(1.0)
    assert whole["bits"] == pytest.approx(sum(sizes) / len(sizes))
    assert whole["header_bits"] == 8 * compression.PNG_HEADER_BYTES
    assert shared["bits"] == pytest.approx(whole["bits"] - whole["header_bits"])


def test_cli_bad_run_is_one_line(tmp_path, capsys):
    assert_one_line_error(run_cli("evaluation", "compress", str(tmp_path / "missing")))
    from evaluation.__main__ import main

    assert main(["compress", str(CHECKPOINTS / "dcgan-mnist5k")]) == 2  # no encoder: warned, then nothing to do
    *_warning, error = capsys.readouterr().err.strip().splitlines()
    assert error.startswith("error: ") and "encoder" in error


def copy_of_vae(run_dir: Path) -> Path:
    """A copy of the committed VAE run without the compression.json it was committed with: the tests measure and
    store their own rows (compress writes them into the run folder)."""
    shutil.copytree(CHECKPOINTS / "vae-mnist5k", run_dir)
    (run_dir / compression.RESULTS_FILE).unlink(missing_ok=True)
    return run_dir


@pytest.fixture
def vae_copy(tmp_path):
    return copy_of_vae(tmp_path / "runs" / "vae-mnist5k")


def test_cli_on_a_committed_run_writes_rows_and_the_figure_draws_them(tmp_path, vae_copy):
    out = tmp_path / "compress.json"
    result = run_cli("evaluation", "compress", str(vae_copy), "--n", "20", "--json", str(out))
    assert result.returncode == 0, result.stderr
    rows = json.loads(out.read_text())
    assert {row["name"] for row in rows} == {"vae-mnist5k", "JPEG", "WebP", "PNG"}
    assert all(row["n"] == 20 and row["dataset"] == "mnist5k" for row in rows)
    png = [row for row in rows if row["name"] == "PNG"]
    assert all(row["psnr"] is None and row["mse"] == 0.0 for row in png)  # infinite PSNR is null in JSON
    code = [row for row in rows if row["rate"] == compression.CODE_RATE]
    assert [row["param"] for row in code] == list(compression.STEPS)
    assert all(a["bits"] < b["bits"] for a, b in zip(code, code[1:]))  # a finer step costs more bits
    assert "vae-mnist5k" in result.stdout and "bits-back" in result.stdout
    figure = compression.compression_figure(rows)
    assert {trace.name for trace in figure.data} >= {"vae-mnist5k: quantised code", "JPEG: whole files"}
    assert any("PNG" in (shape.name or "") for shape in figure.layout.shapes)
    assert Path(out).stat().st_size > 0


def _stored(run_dir) -> dict:
    return json.loads((run_dir / compression.RESULTS_FILE).read_text())["entries"]


def test_rows_are_stored_in_the_run_and_read_back_without_recomputing(vae_copy, monkeypatch):
    run = Run.read(vae_copy)
    first = compression.compress_runs([run], N, steps=(HUGE_STEP, 1.0), bootstrap=10)
    (key,) = _stored(vae_copy)
    assert key == f"n={N}|steps=1e+06,1|bootstrap=10|seed=0|version={compression.VERSION}"
    assert compression.RESULTS_FILE in {path.name for path in vae_copy.iterdir()}

    def no_measuring(*args, **kwargs):
        raise AssertionError("stored rows were measured again")

    monkeypatch.setattr(compression, "model_rows", no_measuring)
    monkeypatch.setattr(compression, "codec_rows", no_measuring)
    assert compression.compress_runs([run], N, steps=(HUGE_STEP, 1.0), bootstrap=10) == first


def test_a_new_setting_is_measured_and_kept_beside_the_old_one(vae_copy):
    run = Run.read(vae_copy)
    compression.compress_runs([run], N, steps=(HUGE_STEP,), bootstrap=0)
    compression.compress_runs([run], N // 2, steps=(HUGE_STEP,), bootstrap=0)
    entries = _stored(vae_copy)
    assert sorted(entry["n"] for entry in entries.values()) == [N // 2, N]
    png = [row for entry in entries.values() for row in entry["codec_rows"] if row["name"] == "PNG"]
    assert png and all(row["psnr"] is None for row in png)  # stored as JSON stores it: null


def test_rows_of_other_weights_or_a_broken_file_are_recomputed(vae_copy, monkeypatch):
    run = Run.read(vae_copy)
    compression.compress_runs([run], N, steps=(HUGE_STEP,), bootstrap=0)
    path = vae_copy / compression.RESULTS_FILE
    stored = json.loads(path.read_text())
    ((key, entry),) = stored["entries"].items()
    assert set(compression.RESULTS.read(vae_copy)) == {key}
    for bad in ({"bits": "many"}, {"rate": "made up"}, {"header_bits": [1]}):
        broken = copy.deepcopy(stored)
        broken["entries"][key]["codec_rows"][0].update(bad)
        path.write_text(json.dumps(broken))
        assert compression.RESULTS.read(vae_copy) == {}, bad  # a hostile row: the entry is recomputed
    entry["weights_sha256"] = "0" * 64  # as if the weights were trained further since
    path.write_text(json.dumps(stored))
    assert compression.RESULTS.read(vae_copy) == {}
    calls = []
    measure = compression.model_rows
    monkeypatch.setattr(compression, "model_rows", lambda *a, **k: calls.append(1) or measure(*a, **k))
    compression.compress_runs([run], N, steps=(HUGE_STEP,), bootstrap=0)
    (vae_copy / compression.RESULTS_FILE).write_text("{not json")
    compression.compress_runs([run], N, steps=(HUGE_STEP,), bootstrap=0)
    assert len(calls) == 2 and len(_stored(vae_copy)) == 1


def test_stored_compression_takes_the_default_settings_at_the_largest_n(vae_copy):
    run = Run.read(vae_copy)
    assert compression.stored_compression([run]) == []
    compression.compress_runs([run], N, steps=(HUGE_STEP,), bootstrap=0)  # not the default settings: left out
    assert compression.stored_compression([run]) == []
    small = compression.compress_runs([run], N // 4)
    assert compression.stored_compression([run]) == small
    large = compression.compress_runs([run], N // 2)
    assert compression.stored_compression([run]) == large and {row["n"] for row in large} == {N // 2}


def test_the_cli_reads_stored_rows_back_and_no_cache_recomputes(vae_copy, monkeypatch, capsys):
    from evaluation.__main__ import main

    assert main(["compress", str(vae_copy), "--n", "10"]) == 0
    first = capsys.readouterr().out
    (header,) = [line for line in first.splitlines() if "model / codec" in line]  # one block: never wrapped
    assert "header bits" in header and not any(line.strip().startswith("header bits") for line in first.splitlines())
    before = (vae_copy / compression.RESULTS_FILE).stat().st_mtime_ns
    assert main(["compress", str(vae_copy), "--n", "10"]) == 0
    assert capsys.readouterr().out == first
    assert (vae_copy / compression.RESULTS_FILE).stat().st_mtime_ns == before  # read back, not written again
    assert main(["compress", str(vae_copy), "--n", "10", "--no-cache"]) == 0
    assert capsys.readouterr().out == first  # the same numbers, measured again (seeded)
    assert (vae_copy / compression.RESULTS_FILE).stat().st_mtime_ns > before


def test_reconstruction_tab_computes_on_a_click_then_shows_the_stored_figure(tmp_path, monkeypatch):
    from dashboard import reconstruction
    from tests.test_app import assert_clean, open_app, part

    checkpoints = tmp_path / "checkpoints"
    copy_of_vae(checkpoints / "vae-mnist5k")
    monkeypatch.setattr(reconstruction, "COMPRESSION_N", N)
    app = open_app(checkpoints, monkeypatch)
    section = part(app, "Reconstruction", "recon_part", "Compression")
    assert_clean(app)
    assert not section.get("plotly_chart") and any("bits-back" in text.value for text in section.markdown)
    app.button(key="compression_button").click().run()
    assert_clean(app)
    (chart,) = part(app, "Reconstruction", "recon_part", "Compression").get("plotly_chart")
    names = {trace.get("name") for trace in json.loads(chart.proto.spec)["data"]}
    assert {"vae-mnist5k: quantised code", "vae-mnist5k: bits-back bound", "JPEG: whole files"} <= names
    assert (checkpoints / "vae-mnist5k" / compression.RESULTS_FILE).is_file()
    fresh = open_app(checkpoints, monkeypatch)  # a new session: the stored rows are drawn without a click
    (again,) = part(fresh, "Reconstruction", "recon_part", "Compression").get("plotly_chart")
    assert json.loads(again.proto.spec)["data"] == json.loads(chart.proto.spec)["data"]
    assert not part(fresh, "Reconstruction", "recon_part", "Compression").get("button")


def test_the_report_zip_has_the_figure_caption_and_tables_only_when_rows_are_stored(tmp_path, monkeypatch):
    import zipfile

    from evaluation import bundle

    folder = tmp_path / "checkpoints"
    copy_of_vae(folder / "vae-mnist5k")
    shutil.copytree(CHECKPOINTS / "_extractors", folder / "_extractors")
    monkeypatch.setattr(bundle, "figure_bytes", lambda figure, fmt: f"figure {figure.layout.title.text}".encode())
    run = Run.read(folder / "vae-mnist5k")

    def report() -> zipfile.ZipFile:
        inputs = bundle.report_inputs([run], n_samples=16, folder=folder, pool=[run])
        return zipfile.ZipFile(io.BytesIO(bundle.build_zip(inputs)))

    bare = report()
    assert not [name for name in bare.namelist() if "compression" in name]
    readme = bare.read("README.md").decode()
    assert "Not included: the compression figure" in readme and "python -m evaluation compress" in readme
    assert "compression" not in bare.read("figures.md").decode()
    assert "**Compression.**" not in bare.read("methods.md").decode()

    rows = compression.compress_runs([run], N)
    archive = report()
    names = set(archive.namelist())
    assert {"figures/compression.png", "figures/compression.pdf"} <= names
    assert (
        archive.read("figures/compression.png").decode()
        == f"figure {compression.compression_figure(rows).layout.title.text}"
    )
    (caption,) = [line for line in archive.read("figures.md").decode().splitlines() if "compression.png" in line]
    assert f"n = {N} test images" in caption
    table = pd.read_csv(io.BytesIO(archive.read("tables/compression.csv")))
    assert len(table) == len(rows) and set(table["name"]) == {"vae-mnist5k", "JPEG", "WebP", "PNG"}
    assert table["bits"].tolist() == pytest.approx([row["bits"] for row in rows])
    markdown = archive.read("tables/compression.md").decode().splitlines()
    assert len(markdown) == 2 + len(rows) and "bits/image" in markdown[0]
    readme = archive.read("README.md").decode()
    assert "`tables/compression.csv`" in readme and "Not included: the compression" not in readme
    (method,) = [line for line in archive.read("methods.md").decode().splitlines() if "**Compression.**" in line]
    steps = ", ".join(f"{step:g}" for step in sorted(compression.STEPS))
    assert f"n = {N} held-out test images" in method and f"Δ = {steps} (in prior" in method
    qualities = ", ".join(map(str, sorted({q for codec in compression.CODECS for q in codec.qualities if q})))
    assert (
        f"JPEG, WebP and PNG (Pillow; the lossy ones at qualities {qualities})." in method
        and "bits-back bound" in method
    )


def test_the_compression_text_names_the_tab_that_holds_the_rate_distortion_chart():
    from dashboard.reconstruction import COMPRESSION_EXPLANATION
    from dashboard.tabs import TAB_TITLES

    text = " ".join(COMPRESSION_EXPLANATION.split())
    (tab,) = [title for title in TAB_TITLES if f"the {title} tab's β rate–distortion chart" in text]
    assert tab == "Sweeps"
