"""Known-answer tests of the evaluation package: every metric against a value it must take."""

from __future__ import annotations

import io
import json
import math
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from safetensors.torch import save_file

from evaluation import evaluate_run, load_metrics, report
from evaluation.__main__ import main as evaluation_main
from evaluation.features import accuracy, extractor_path, get_extractor
from evaluation.fid import fid_floor, frechet_distance, kernel_distance
from evaluation.inversion import invert
from evaluation.likelihood import latent_usage, likelihood_bounds
from evaluation.modes import mode_stats
from evaluation.prdc import prdc
from evaluation.reconstruction import reconstruction_scores
from evaluation.sharpness import sharpness_ratio
from evaluation.smoothness import interpolation_smoothness
from generators.data import load_dataset
from generators.registry import build_model
from tests.helpers import ROOT, assert_one_line_error, run_cli, tiny_options, train_tiny_run

ACCURACY_FLOOR = 0.97


@pytest.fixture(scope="session")
def mnist5k():
    return load_dataset("mnist5k")


@pytest.fixture(scope="session")
def extractor_dir(tmp_path_factory, mnist5k):
    """The default extractor in a temp cache (never written into the repo's checkpoints/): a copy of the
    committed one when it is there, else trained once per test session."""
    cache = tmp_path_factory.mktemp("extractors")
    committed = extractor_path(ROOT / "checkpoints" / "_extractors", "mnist5k", mnist5k.image_shape)
    if committed.is_file():
        target = extractor_path(cache, "mnist5k", mnist5k.image_shape)
        target.parent.mkdir(parents=True)
        shutil.copyfile(committed, target)
    get_extractor("mnist5k", mnist5k.image_shape, cache_dir=cache, data=mnist5k)
    return cache


@pytest.fixture(scope="session")
def extractor(extractor_dir, mnist5k):
    return get_extractor("mnist5k", mnist5k.image_shape, cache_dir=extractor_dir)


@pytest.fixture(scope="session")
def tiny_runs(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs")
    train_tiny_run("vae", out / "vae", 10)
    train_tiny_run("dcgan", out / "dcgan", 10, options={"latent_dim": 8})
    return out


def gaussian_with_exact_moments(n: int, mean: torch.Tensor, std: torch.Tensor, seed: int) -> torch.Tensor:
    """n points whose sample mean and (unbiased) sample covariance are exactly ``mean`` and diag(std^2)."""
    x = torch.randn(n, len(mean), generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    x = x - x.mean(0)
    x = x @ torch.linalg.inv(torch.linalg.cholesky(torch.cov(x.T))).T  # whiten: covariance exactly I
    return mean + x * std


def eigenvalue_frechet(a: np.ndarray, b: np.ndarray) -> float:
    """Independent float64 reference: Tr sqrt(S_a^1/2 S_b S_a^1/2) from symmetric eigendecompositions."""
    mu_a, mu_b = a.mean(0), b.mean(0)
    s_a, s_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    vals, vecs = np.linalg.eigh(s_a)
    root_a = vecs @ np.diag(np.sqrt(np.clip(vals, 0, None))) @ vecs.T
    cross = np.sqrt(np.clip(np.linalg.eigvalsh(root_a @ s_b @ root_a), 0, None)).sum()
    return float(((mu_a - mu_b) ** 2).sum() + np.trace(s_a) + np.trace(s_b) - 2 * cross)


# --- FID and KID -------------------------------------------------------------------------------------------


def test_fid_of_a_set_with_itself_is_zero():
    feats = torch.randn(500, 16, generator=torch.Generator().manual_seed(0)) * 3 + 1
    assert abs(frechet_distance(feats, feats)) < 1e-8 * feats.var(0).sum().item()


def test_fid_of_two_gaussians_matches_the_closed_form():
    mu_a, mu_b = torch.tensor([0.0, 1.0, -2.0, 0.5]).double(), torch.tensor([1.0, 1.0, 0.0, 0.0]).double()
    sd_a, sd_b = torch.tensor([1.0, 2.0, 0.5, 1.0]).double(), torch.tensor([2.0, 1.0, 0.5, 3.0]).double()
    a = gaussian_with_exact_moments(400, mu_a, sd_a, seed=1)
    b = gaussian_with_exact_moments(300, mu_b, sd_b, seed=2)
    closed_form = ((mu_a - mu_b) ** 2).sum() + ((sd_a - sd_b) ** 2).sum()  # diagonal covariances
    assert frechet_distance(a, b) == pytest.approx(closed_form.item(), rel=1e-9)


def test_frechet_distance_equals_an_independent_eigenvalue_implementation():
    gen = torch.Generator().manual_seed(3)
    mixing = torch.randn(32, 32, generator=gen)
    a = torch.randn(2000, 32, generator=gen) @ mixing
    b = torch.randn(1500, 32, generator=gen) @ (mixing + 0.3 * torch.randn(32, 32, generator=gen)) + 0.5
    expected = eigenvalue_frechet(a.double().numpy(), b.double().numpy())
    assert frechet_distance(a, b) == pytest.approx(expected, rel=1e-6)


def test_fid_floor_uses_disjoint_halves_of_the_requested_size():
    feats = torch.randn(1000, 8, generator=torch.Generator().manual_seed(4))
    floor, half = fid_floor(feats, n=300)
    assert half == 300 and floor > 0
    assert fid_floor(feats, n=5000)[1] == 500  # more than half the pool: the largest equal halves


def test_kid_is_near_zero_for_one_distribution_and_large_for_two():
    gen = torch.Generator().manual_seed(5)
    a, b = torch.randn(800, 16, generator=gen), torch.randn(800, 16, generator=gen)
    same_mean, same_std, subset = kernel_distance(a, b)
    shifted_mean = kernel_distance(a, b + 2)[0]
    assert subset == 400  # half of n below 2 000 samples
    assert abs(same_mean) < 3 * same_std
    assert shifted_mean > 100 * max(abs(same_mean), same_std)


# --- PRDC and modes ----------------------------------------------------------------------------------------


def test_prdc_of_one_distribution_is_near_one():
    gen = torch.Generator().manual_seed(6)
    scores = prdc(torch.randn(2000, 4, generator=gen), torch.randn(2000, 4, generator=gen), k=5)
    assert scores["precision"] > 0.9 and scores["recall"] > 0.9 and scores["coverage"] > 0.9
    assert scores["density"] == pytest.approx(1.0, abs=0.15)


def test_prdc_of_disjoint_distributions_is_zero():
    gen = torch.Generator().manual_seed(7)
    scores = prdc(torch.randn(1500, 4, generator=gen), torch.randn(1500, 4, generator=gen) + 100, k=5, chunk=256)
    assert scores == {"precision": 0.0, "recall": 0.0, "density": 0.0, "coverage": 0.0}


def test_mode_stats_count_the_classes_present():
    real = torch.arange(10).repeat(100)
    fake = torch.tensor([0, 1, 2, 3, 4]).repeat(200)
    stats = mode_stats(fake, real, 10)
    assert stats["modes"] == 5
    assert stats["mode_kl"] == pytest.approx(math.log(2))  # uniform over 5 of 10 classes
    assert mode_stats(real, real, 10)["mode_kl"] == pytest.approx(0.0)


def test_extractor_reaches_its_accuracy_floor(extractor, mnist5k):
    assert extractor.test_accuracy >= ACCURACY_FLOOR
    assert accuracy(extractor, mnist5k.test.images, mnist5k.test.labels) == pytest.approx(extractor.test_accuracy)
    assert extractor.id.startswith("cnn-mnist5k-") and extractor.num_classes == 10


def test_real_images_of_five_classes_give_five_modes(extractor, mnist5k):
    keep = mnist5k.train.labels < 5  # 2 250 digits 0-4: too few errors to put 1 % in any other class
    stats = mode_stats(extractor.classify(mnist5k.train.float_images()[keep]), mnist5k.train.labels, 10)
    assert stats["modes"] == 5
    assert sum(stats["class_histogram"][5:]) < 0.02


def test_extractor_cache_is_reused_and_a_label_free_dataset_is_refused(extractor_dir, mnist5k, tmp_path):
    from generators.data import ImageData, ImageSplit
    from generators.errors import UserError

    first = get_extractor("mnist5k", mnist5k.image_shape, cache_dir=extractor_dir)
    second = get_extractor("mnist5k", mnist5k.image_shape, cache_dir=extractor_dir)
    assert first.id == second.id
    images = mnist5k.train.images[:20]
    unlabeled = ImageData("folder:x", ImageSplit(images, None), ImageSplit(images, None), None)
    with pytest.raises(UserError, match="no class labels"):
        get_extractor("folder:x", images.shape[1:], cache_dir=tmp_path, data=unlabeled, epochs=1)


# --- reconstruction, inversion, likelihood -----------------------------------------------------------------


def test_psnr_and_ssim_of_identical_images_are_inf_and_one():
    images = torch.rand(8, 1, 28, 28, generator=torch.Generator().manual_seed(8))
    scores = reconstruction_scores(images, images)
    assert scores["recon_psnr"] == math.inf
    assert scores["recon_ssim"] == pytest.approx(1.0)
    assert scores["recon_mse"] == 0.0
    half = reconstruction_scores(torch.full_like(images, 0.5), torch.zeros_like(images))
    assert half["recon_psnr"] == pytest.approx(10 * math.log10(1 / 0.25))
    assert half["recon_bce"] == pytest.approx(math.log(2), rel=1e-5)


def test_reconstruction_intervals_have_the_width_of_the_mean_of_per_image_errors():
    """1 000 images whose per-pixel error is a known constant per image: the MSE interval is the standard
    error of a mean of those constants (sd / sqrt(n) * 1.96 each side), and holds the estimate."""
    generator = torch.Generator().manual_seed(0)
    errors = torch.rand(1000, generator=generator) * 0.2  # per-image |recon - target|, one value per image
    target = torch.zeros(1000, 1, 28, 28)
    recon = errors.view(-1, 1, 1, 1).expand_as(target).clone()
    scores = reconstruction_scores(recon, target, bootstrap=400, seed=1)
    per_image_mse = errors.double().pow(2)
    assert scores["recon_mse"] == pytest.approx(per_image_mse.mean().item(), rel=1e-5)
    half_width = (scores["recon_mse_ci_high"] - scores["recon_mse_ci_low"]) / 2
    assert half_width == pytest.approx(1.96 * per_image_mse.std().item() / math.sqrt(1000), rel=0.2)
    for key in ("recon_mse", "recon_bce", "recon_psnr", "recon_ssim"):
        assert scores[f"{key}_ci_low"] <= scores[key] <= scores[f"{key}_ci_high"], key
    assert "recon_mse_ci_low" not in reconstruction_scores(recon, target)  # no bootstrap asked, no interval


def test_gan_inversion_recovers_images_generated_from_a_known_z():
    torch.manual_seed(0)
    model = build_model("dcgan", tiny_options("dcgan", latent_dim=8)).eval()
    with torch.no_grad():
        targets = model.decode(torch.randn(6, 8, generator=torch.Generator().manual_seed(9)))
    z, recon = invert(model, targets, steps=300, restarts=3, lr=0.05, generator=torch.Generator().manual_seed(10))
    assert z.shape == (6, 8)
    assert (recon - targets).square().mean().item() < 1e-3
    assert all(p.grad is None for p in model.parameters())


def test_elbo_is_at_most_the_iwae_bound_and_equal_for_one_sample():
    torch.manual_seed(0)
    model = build_model("vae", tiny_options("vae")).eval()
    images = torch.rand(20, 1, 28, 28, generator=torch.Generator().manual_seed(11))
    bounds = likelihood_bounds(model, images, k=50, generator=torch.Generator().manual_seed(12))
    assert bounds["elbo_nats"] <= bounds["iwae_nats"]
    assert bounds["iwae_bits_per_dim"] == pytest.approx(-bounds["iwae_nats"] / (784 * math.log(2)))
    single = likelihood_bounds(model, images, k=1, generator=torch.Generator().manual_seed(12))
    assert single["elbo_nats"] == pytest.approx(single["iwae_nats"])
    assert "Bernoulli" in bounds["likelihood"]


class _StubPosterior:
    """A 'VAE' whose posterior mean varies with the image in 3 of 5 latent dimensions only."""

    device = torch.device("cpu")

    def posterior(self, x):
        mu = torch.zeros(len(x), 5)
        mu[:, :3] = x.flatten(1)[:, :3] * 10
        return mu, torch.zeros_like(mu)


def test_active_units_count_the_latents_the_posterior_uses():
    usage = latent_usage(_StubPosterior(), torch.rand(100, 1, 4, 4, generator=torch.Generator().manual_seed(13)))
    assert usage["active_units"] == 3
    assert usage["kl_per_dim"][3] == 0.0 and usage["kl_per_dim"][0] > 1


# --- sharpness and smoothness ------------------------------------------------------------------------------


def test_sharpness_is_one_for_the_data_and_below_one_when_blurred():
    images = torch.rand(16, 1, 28, 28, generator=torch.Generator().manual_seed(14))
    blurred = torch.nn.functional.avg_pool2d(images, 3, stride=1, padding=1)
    assert sharpness_ratio(images, images) == pytest.approx(1.0)
    assert sharpness_ratio(blurred, images) < 0.2


class _LinearModel:
    """decode is linear in z, so features along a latent line move in equal steps."""

    device = torch.device("cpu")

    def decode(self, z):
        return (z @ torch.ones(z.shape[1], 16) / 10 + 0.5).view(-1, 1, 4, 4)


class _FlattenExtractor:
    def features_and_logits(self, images):
        return images.flatten(1), None


def test_smoothness_of_an_even_path_is_one():
    draw = lambda n, generator=None: torch.randn(n, 3, generator=generator)  # noqa: E731
    value = interpolation_smoothness(
        _LinearModel(), _FlattenExtractor(), draw, pairs=10, steps=6, generator=torch.Generator().manual_seed(15)
    )
    assert value == pytest.approx(1.0)


def test_smoothness_paths_run_between_test_images_codes_for_a_model_with_an_encoder():
    """An autoencoder's codes are not tied to N(0, I): its paths must join codes of real images (here a stub whose
    codes spread ~100x wider than N(0, I)), while a model without an encoder keeps its sampler's latents."""
    from types import SimpleNamespace

    from evaluation.runner import smoothness_endpoints
    from generators.base import Capabilities

    class WideEncoder:
        device = torch.device("cpu")
        capabilities = Capabilities("stub", (2,), encoder=True)

        def encode(self, x):
            return x.flatten(1)[:, 300:302] * 100

    data = load_dataset("mnist5k")
    ctx = SimpleNamespace(data=data)
    codes = smoothness_endpoints(ctx, WideEncoder(), draw=None)(500, torch.Generator().manual_seed(0))
    every_code = data.test.float_images()[:, 0].flatten(1)[:, 300:302] * 100
    assert (codes[:, None] == every_code[None]).all(-1).any(1).all()  # each end is some test image's code
    assert codes.std() > 10  # where the codes are, not N(0, I)
    gan = SimpleNamespace(capabilities=Capabilities("stub", (2,)))
    sampler = lambda n, generator=None: torch.zeros(n, 2)  # noqa: E731
    assert smoothness_endpoints(ctx, gan, sampler) is sampler


# --- the whole run, the tables, the CLI --------------------------------------------------------------------


def test_evaluate_run_fills_every_row_key_and_caches_the_row(tiny_runs, extractor_dir):
    row = evaluate_run(tiny_runs / "vae", n=300, seeds=(0, 1), iwae_k=5, cache_dir=extractor_dir)
    for key in (
        "fid",
        "fid_floor",
        "fid_ratio",
        "kid_mean",
        "precision",
        "recall",
        "density",
        "coverage",
        "modes",
        "recon_mse",
        "recon_psnr",
        "elbo_nats",
        "iwae_nats",
        "active_units",
        "sharpness",
        "smoothness",
    ):
        assert isinstance(row[key], (int, float)), key
    assert row["fid_std"] >= 0 and row["seeds"] == [0, 1] and row["n_fake"] == 300 and row["n_real"] == 300
    assert row["recon_method"] == "encode-decode" and row["elbo_nats"] <= row["iwae_nats"]
    assert row["fid_ratio"] == pytest.approx(row["fid"] / row["fid_floor"])
    assert len(row["kl_per_dim"]) == 4 and len(row["class_histogram"]) == 10
    assert any("2048" in w for w in row["warnings"])
    for key in ("fid_test", "fid_test_floor", "copy_rate"):
        assert isinstance(row[key], float), key
    for key in ("fid", "kid_mean", "precision", "recall", "density", "coverage"):
        assert row[f"{key}_ci_low"] <= row[key] <= row[f"{key}_ci_high"], key
    assert row["fid_curve"][-1]["n"] == 300 and row["protocol"]["bootstrap"] == 200
    assert row["protocol"]["n_fake"] == 300 and row["protocol"]["run_step"] == 10
    assert row["weights_sha256"] and row["capabilities"]["posterior"] is True
    stored = load_metrics(tiny_runs / "vae")
    assert list(stored.values()) == [json.loads(json.dumps(row))]
    again = evaluate_run(tiny_runs / "vae", n=300, seeds=(0, 1), iwae_k=5, cache_dir=extractor_dir)
    assert again == stored[next(iter(stored))]


def test_gan_rows_reconstruct_by_inversion_and_have_no_likelihood(tiny_runs, extractor_dir):
    row = evaluate_run(tiny_runs / "dcgan", n=200, inversion_steps=5, cache_dir=extractor_dir)
    assert row["recon_method"] == "latent inversion (Adam, 2 restarts, 5 steps)"
    assert row["recon_mse"] > 0 and row["elbo_nats"] is None and row["active_units"] is None
    tables = [report.to_markdown([row]), report.to_latex([row]), report.to_csv([row]), report.to_json([row])]
    assert "| dcgan |" in tables[0] and r"\toprule" in tables[1] and "Warnings" in tables[0]
    frame = pd.read_csv(io.StringIO(tables[2]))
    assert frame.loc[0, "fid"] == pytest.approx(row["fid"])
    assert json.loads(tables[3])[0]["run"] == "dcgan"


def test_cli_writes_every_format(tiny_runs, extractor_dir, tmp_path, capsys):
    files = {fmt: tmp_path / f"table.{fmt}" for fmt in ("json", "markdown", "latex", "csv")}
    argv = [
        str(tiny_runs / "vae"),
        "--n",
        "300",
        "--seeds",
        "0",
        "1",
        "--iwae-k",
        "5",
        "--extractor-dir",
        str(extractor_dir),
    ]
    for fmt, path in files.items():
        argv += [f"--{fmt}", str(path)]
    assert evaluation_main(argv) == 0
    assert "FID" in capsys.readouterr().out
    assert all(path.is_file() and path.stat().st_size > 0 for path in files.values())
    assert " ± " in files["markdown"].read_text()


def test_an_output_asked_as_dash_goes_to_stdout_alone(tiny_runs, extractor_dir, tmp_path, capsys, monkeypatch):
    """``--json -`` pipes: stdout holds the JSON and nothing else (the table goes to stderr), the same rows as
    ``--json FILE``, and no file named ``-`` appears."""
    monkeypatch.chdir(tmp_path)
    argv = [str(tiny_runs / "vae"), "--n", "300", "--extractor-dir", str(extractor_dir)]
    assert evaluation_main([*argv, "--json", "-", "--csv", "table.csv"]) == 0
    out, err = capsys.readouterr()
    rows = json.loads(out)
    assert [row["run"] for row in rows] == ["vae"] and "FID" in err and "wrote csv to table.csv" in err
    assert pd.read_csv(tmp_path / "table.csv").loc[0, "fid"] == pytest.approx(rows[0]["fid"])
    assert not (tmp_path / "-").exists()
    assert evaluation_main([*argv, "--json", "-", "--markdown", "-"]) == 2
    assert "only one output can go to standard output" in capsys.readouterr().err


def test_cli_bad_input_exits_2_with_one_line(tmp_path):
    assert_one_line_error(run_cli("evaluation", str(tmp_path / "missing")), mentions="does not exist")


@pytest.mark.parametrize(
    "case",
    ["n_zero", "out_folder", "corrupt_run", "bad_sampler", "gmm_without_encoder", "bootstrap", "sanity_out_folder"],
)
def test_cli_bad_input_in_process(case, tiny_runs, tmp_path, capsys):
    run = str(tiny_runs / "vae")
    if case == "corrupt_run":
        (tmp_path / "broken").mkdir()
        (tmp_path / "broken" / "model.safetensors").write_bytes(b"not a safetensors file")
        argv, mention = [str(tmp_path / "broken")], "corrupt"
    elif case == "n_zero":
        argv, mention = [run, "--n", "0"], "--n"
    elif case == "out_folder":
        argv, mention = [run, "--csv", str(tmp_path / "nowhere" / "t.csv")], "does not exist"
    elif case == "gmm_without_encoder":
        argv, mention = [str(tiny_runs / "dcgan"), "--sampler", "gmm"], "encoder"
    elif case == "bootstrap":
        argv, mention = [run, "--bootstrap", "-1"], "--bootstrap"
    elif case == "sanity_out_folder":
        argv, mention = ["sanity", "--json", str(tmp_path / "nowhere" / "p.json")], "does not exist"
    else:
        argv, mention = [run, "--sampler", "best"], "--sampler"
    assert evaluation_main(argv) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and mention in lines[0]


@pytest.fixture
def offline_hub(tmp_path, monkeypatch):
    """An empty torch hub cache in tmp_path and a network that is down: Inception weights can come only
    from a file the user put in the cache, as the offline message tells them to."""
    import urllib.error

    import torch.hub

    from evaluation.features import inception_extractor

    def no_network(url, *args, **kwargs):
        raise urllib.error.URLError("network is unreachable")

    old_dir = torch.hub.get_dir()
    torch.hub.set_dir(str(tmp_path / "hub"))
    monkeypatch.setattr(torch.hub, "download_url_to_file", no_network)
    inception_extractor.cache_clear()
    yield Path(torch.hub.get_dir()) / "checkpoints"
    inception_extractor.cache_clear()
    torch.hub.set_dir(old_dir)


def test_inception_offline_says_where_the_weights_go(tiny_runs, capsys, offline_hub):
    from evaluation.features import INCEPTION_WEIGHTS

    assert evaluation_main([str(tiny_runs / "vae"), "--extractor", "inception", "--n", "50"]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "offline" in lines[0]
    assert str(offline_hub / INCEPTION_WEIGHTS) in lines[0]


def test_inception_scores_offline_from_weights_in_the_hub_cache(tiny_runs, tmp_path, capsys, offline_hub, monkeypatch):
    """The path the offline message describes, end to end. Untrained Inception weights stand in for the real
    file (which cannot be downloaded here): the plumbing is under test, not Inception's features."""
    from torch_fidelity import feature_extractor_inceptionv3 as fidelity

    from evaluation import runner
    from evaluation.features import INCEPTION_WEIGHTS

    with monkeypatch.context() as patch:  # build an untrained network without any weights file
        patch.setattr(fidelity.FeatureExtractorInceptionV3, "load_state_dict", lambda self, state: None)
        patch.setattr(fidelity, "load_state_dict_from_url", lambda *args, **kwargs: None)
        untrained = fidelity.FeatureExtractorInceptionV3("inception-v3-compat", ["2048"])
    offline_hub.mkdir(parents=True)
    torch.save(untrained.state_dict(), offline_hub / INCEPTION_WEIGHTS)
    monkeypatch.setattr(runner, "SMOOTHNESS_PAIRS", 2)  # 299 x 299 Inception passes are slow on a CPU

    out = tmp_path / "table.json"
    code = evaluation_main(
        [
            str(tiny_runs / "dcgan"),
            "--extractor",
            "inception",
            "--n",
            "24",
            "--no-cache",
            "--inversion-steps",
            "5",
            "--json",
            str(out),
        ]
    )
    assert code == 0, capsys.readouterr().err
    row = json.loads(out.read_text())[0]
    assert row["extractor_id"] == "inception-v3-compat" and row["extractor_test_acc"] is None
    assert math.isfinite(row["fid"]) and row["fid"] >= 0 and math.isfinite(row["fid_floor"])
    assert 0 <= row["coverage"] <= 1 and row["modes"] is None and row["recon_method"].startswith("latent inversion")
    assert any("feature dimension 2048" in w for w in row["warnings"])
    assert any("mode counts need the classifier extractor" in w for w in row["warnings"])


def test_an_unreadable_extractor_cache_is_rebuilt(tmp_path, mnist5k):
    tiny = {"epochs": 1, "width": 4}
    path = extractor_path(tmp_path, "mnist5k", mnist5k.image_shape, **tiny)
    path.parent.mkdir(parents=True)
    save_file({"junk": torch.zeros(1)}, str(path), metadata={"extractor": "{}"})
    rebuilt = get_extractor("mnist5k", mnist5k.image_shape, cache_dir=tmp_path, data=mnist5k, **tiny)
    assert rebuilt.test_accuracy is not None and rebuilt.width == 4
    assert get_extractor("mnist5k", mnist5k.image_shape, cache_dir=tmp_path, **tiny).id == rebuilt.id


# counts and settings in a row: numbers that are not scores
NON_METRIC_NUMBERS = {
    "extractor_test_acc", "n_real", "n_fake", "n_test", "fid_floor_n", "fid_test_n_fake", "copy_n_train",
    "kid_subset_size", "recon_n", "anomaly_n", "likelihood_n", "iwae_k", "bootstrap", "run_step", "seconds",
}  # fmt: skip


def test_every_numeric_metric_in_a_row_is_declared_once(tiny_runs, extractor_dir):
    from evaluation.metric_specs import METRICS

    row = evaluate_run(tiny_runs / "dcgan", n=200, inversion_steps=5, cache_dir=extractor_dir)
    assert row in load_metrics(tiny_runs / "dcgan").values()  # a GAN's row (no likelihood) reads back as stored
    numeric = {k for k, v in row.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
    strip = lambda k: next(
        (k.removesuffix(s) for s in ("_ci_low", "_ci_high", "_std") if k.removesuffix(s) in METRICS), k
    )  # noqa: E731
    scores = {strip(k) for k in numeric}
    assert scores - NON_METRIC_NUMBERS <= set(METRICS), scores - NON_METRIC_NUMBERS - set(METRICS)
    for key, spec in METRICS.items():
        assert (f"{key}_ci_low" in row) == spec.interval, key


def test_evaluation_never_names_a_model():
    from generators.registry import MODELS

    for path in (ROOT / "evaluation").glob("*.py"):
        text = path.read_text()
        for name in MODELS:
            assert f'"{name}"' not in text and f"'{name}'" not in text, (path.name, name)
