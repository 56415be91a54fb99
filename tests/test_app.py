"""AppTest (streamlit.testing.v1) tests of the dashboard: every tab, seeds, sliders, training, broken folders."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from streamlit.testing.v1 import AppTest

from dashboard import PAGE
from dashboard.latent import TRAVERSAL_RANGE as LATENT_TRAVERSAL_RANGE
from dashboard.latent import TRAVERSAL_STEPS as LATENT_TRAVERSAL_STEPS
from dashboard.latent import TRAVERSALS as LATENT_TRAVERSALS
from dashboard.state import CHECKPOINTS_ENV, RENDER_COUNTS_ENV, VIEW_KEY
from dashboard.tabs import TAB_TITLES
from tests.conftest import METRICS_N, TINY_STEPS

APP = str(PAGE)
TIMEOUT = 180


def open_app(checkpoints: Path, monkeypatch) -> AppTest:
    monkeypatch.setenv(CHECKPOINTS_ENV, str(checkpoints))
    return AppTest.from_file(APP, default_timeout=TIMEOUT).run()


def assert_clean(at: AppTest) -> None:
    """No exception and no error box (the app turns bugs into st.error, so both must be checked)."""
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]


def dashboard_runs_dir(at: AppTest) -> Path:
    import os

    return Path(os.environ[CHECKPOINTS_ENV])


def tab(at: AppTest, title: str):
    """The tab ``title``, opened first if it is not (only the open tab runs, as in the browser)."""
    if VIEW_KEY not in at.session_state or at.session_state[VIEW_KEY] != title:
        at.session_state[VIEW_KEY] = title
        at.run()
    return at.tabs[TAB_TITLES.index(title)]


PART_KEYS = {"Latent space": "latent_part", "Reconstruction": "recon_part", "Metrics": "metrics_part"}


def part(at: AppTest, title: str, key: str, name: str):
    """The tab ``title`` with its part ``name`` open (a tab's parts are lazy tabs under ``key``)."""
    tab(at, title)
    if at.session_state[key] != name:
        at.session_state[key] = name
        at.run()
    return at.tabs[TAB_TITLES.index(title)]


def plotly_values(array) -> list:
    """A plotly JSON data array: a list, or (plotly 6+) a typed array {"dtype", "bdata": base64}."""
    if isinstance(array, dict):
        import base64

        import numpy as np

        return np.frombuffer(base64.b64decode(array["bdata"]), dtype=array["dtype"]).tolist()
    return list(array)


def image_urls(node) -> list[str]:
    return [img.url for element in node.get("image") for img in element.proto.imgs]


@pytest.fixture
def app(dashboard_runs, monkeypatch) -> AppTest:
    at = open_app(dashboard_runs, monkeypatch)
    assert_clean(at)
    return at


def test_page_has_the_eight_tabs_and_selects_the_default_runs(app):
    assert tuple(t.label for t in app.tabs) == TAB_TITLES
    assert app.multiselect(key="runs").value == ["vae-mnist5k", "vae-beta4-mnist5k", "ae-mnist5k", "dcgan-mnist5k"]


def test_samples_tab_shows_one_grid_and_png_download_per_run(app):
    samples = tab(app, "Samples")
    assert len(image_urls(samples)) == 4
    labels = [d.proto.label for d in samples.get("download_button")]
    assert labels == ["PNG"] * 4 + ["PNG", "PDF", "SVG"]  # one grid per run, then the labelled figure of all
    # the GAN has no encoder, so the fitted samplers are not offered — and the page says why
    assert any("deselect dcgan-mnist5k" in c.value for c in samples.caption)


def test_changing_the_seed_changes_the_images_and_going_back_restores_them(app):
    first = image_urls(tab(app, "Samples"))
    app.number_input(key="seed").set_value(7).run()
    assert_clean(app)
    changed = image_urls(tab(app, "Samples"))
    assert all(a != b for a, b in zip(first, changed))
    app.number_input(key="seed").set_value(0).run()
    assert image_urls(tab(app, "Samples")) == first


def test_regenerate_button_draws_new_samples(app):
    first = image_urls(tab(app, "Samples"))
    tab(app, "Samples").button[0].click().run()
    assert_clean(app)
    assert app.number_input(key="seed").value == 1
    assert image_urls(tab(app, "Samples")) != first


def test_interpolation_strips_frame_slider_and_downloads(app):
    interp = tab(app, "Interpolation")
    labels = [d.proto.label for d in interp.get("download_button")]
    assert labels.count("PNG strip") == 4 and labels.count("Animated GIF") == 4
    frame_captions = [img.caption for element in interp.get("image") for img in element.proto.imgs if img.caption]
    assert frame_captions and all(c.startswith("frame 4 ") for c in frame_captions)
    before = image_urls(interp)
    app.slider(key="interp_frame").set_value(0).run()
    assert_clean(app)
    interp = tab(app, "Interpolation")
    frame_captions = [img.caption for element in interp.get("image") for img in element.proto.imgs if img.caption]
    assert all(c.startswith("frame 0 (t = 0.00)") for c in frame_captions)
    after = image_urls(interp)
    assert after != before
    assert [u for u in after if u in before], "the strips themselves must not change with the frame slider"
    # the autoencoder's random strip (and only it) says how far its codes spread beyond N(0, I), recomputed here
    notes = [c.value for c in interp.caption if "nothing ties this model's codes to N(0, I)" in c.value]
    assert len(notes) == 1 and notes[0].startswith("ae-mnist5k")
    from dashboard.latent import MAP_POINTS
    from evaluation.runs import Run
    from generators.data import load_dataset

    ae = Run.read(dashboard_runs_dir(app) / "ae-mnist5k").model()
    with torch.no_grad():
        codes = ae.encode(load_dataset("mnist5k").test.float_images(MAP_POINTS))
    assert f"standard deviation of {float(codes.std(0, unbiased=False).mean()):.1f} per dimension" in notes[0]


def test_interpolation_between_real_images_uses_encoder_and_inversion(app):
    tab(app, "Interpolation")
    app.radio(key="interp_source").set_value("real").run()
    assert_clean(app)
    interp = tab(app, "Interpolation")
    labels = [d.proto.label for d in interp.get("download_button")]
    assert labels.count("PNG strip") == 4 and labels.count("Animated GIF") == 4
    names = [d.proto.url for d in interp.get("download_button")]  # settings are in the file names
    captions = [img.caption for element in interp.get("image") for img in element.proto.imgs if img.caption]
    assert any("the two originals" in c for c in captions)
    a, b = app.number_input(key="interp_a").value, app.number_input(key="interp_b").value
    assert a != b and names
    # under every strip: how far its end frames are from the two images (recomputed here for the VAE), and whether
    # the data set's classifier reads each end frame as its image's class (recomputed for every run)
    notes = [c.value for c in interp.caption if c.value.startswith("End frames against the originals")]
    assert len(notes) == 4
    from evaluation.features import extractor_path, load_extractor
    from evaluation.runs import Run
    from generators.data import load_dataset

    data = load_dataset("mnist5k")
    originals, labels = data.test.float_images()[[a, b]], data.test.labels[[a, b]]
    runs = dashboard_runs_dir(app)
    classifier = load_extractor(extractor_path(runs / "_extractors", "mnist5k", data.image_shape))
    assert classifier is not None  # the tiny runs were scored, which trained it
    for note, name in zip(notes, ["vae-mnist5k", "vae-beta4-mnist5k", "ae-mnist5k", "dcgan-mnist5k"]):
        model = Run.read(runs / name).model()
        if name != "dcgan-mnist5k":
            with torch.no_grad():
                ends = model.decode(model.encode(originals))
            errors = [f"{float((ends[k] - originals[k]).pow(2).mean()):.4f}" for k in (0, 1)]
            assert f"MSE {errors[0]} (#{a}) and {errors[1]} (#{b})" in note
            read = classifier.classify(ends).tolist()
            assert ("reads both as their images' classes" in note) == (read == labels.tolist()), note
        assert ("reads both" in note) != ("did not reproduce that image's class" in note), note


def test_latent_tab_has_maps_traversals_and_kl_bars(app):
    latent = tab(app, "Latent space")
    (spec,) = [chart.proto.spec for chart in latent.get("plotly_chart")]  # one figure, a panel per encoder run
    layout = json.loads(spec)["layout"]
    titles = [layout[axis]["title"]["text"] for axis in ("xaxis", "xaxis2", "xaxis3")]
    assert all(title.startswith("PC1 (") for title in titles) and "xaxis4" not in layout
    assert any("has no map" in i.value for i in latent.info)  # the GAN: said why
    app.radio(key="latent_method").set_value("t-SNE").run()
    assert_clean(app)
    (spec,) = [chart.proto.spec for chart in tab(app, "Latent space").get("plotly_chart")]
    assert json.loads(spec)["layout"]["xaxis3"]["title"]["text"] == "t-SNE 1"
    # every run a labelled traversal figure, the 2 VAEs a KL-per-dimension chart
    specs = [c.proto.spec for c in part(app, "Latent space", "latent_part", LATENT_TRAVERSALS).get("plotly_chart")]
    assert_clean(app)
    assert len(specs) == 4 + 2 and sum("active units" in spec for spec in specs) == 2


def test_reconstruction_tab_has_errors_denoising_and_anomaly_auc(app):
    recon = tab(app, "Reconstruction")
    assert len(image_urls(recon)) == 1 + 3  # originals + the encoder runs; the GAN's inversion is opt-in
    app.checkbox(key="recon_invert").check().run()
    assert_clean(app)
    recon = tab(app, "Reconstruction")
    errors = recon.table[0].value
    assert list(errors.index) == ["vae-mnist5k", "vae-beta4-mnist5k", "ae-mnist5k", "dcgan-mnist5k"]
    assert (errors.to_numpy() >= 0).all() and len(errors.columns) == 8  # one column per test image
    assert len(image_urls(recon)) == 1 + 4  # originals + 4 reconstructions
    recon = part(app, "Reconstruction", "recon_part", "Denoising")
    assert_clean(app)
    assert len(image_urls(recon)) == 2 + 3  # clean targets and noisy inputs + 3 denoised outputs
    denoising = [c.value for c in recon.caption if "noisy input —" in c.value]
    assert len(denoising) == 3 and all("closer" in text or "further" in text for text in denoising)
    recon = part(app, "Reconstruction", "recon_part", "Anomaly detection")
    assert_clean(app)
    assert len(recon.get("plotly_chart")) == 4  # one anomaly histogram per run
    assert sum(b.proto.id.endswith("-pdf") for b in recon.get("download_button")) == 4  # each one for a report
    assert sum("ROC AUC" in c.value for c in recon.caption) == 4
    # the caption counts the test images scored (mnist5k's test split: 500), not the cap of 2 000
    from evaluation.diagnostics import ANOMALY_IMAGES
    from generators.data import load_dataset

    scored = min(len(load_dataset("mnist5k").test), ANOMALY_IMAGES)
    histogram = json.loads(recon.get("plotly_chart")[0].proto.spec)["data"][0]
    assert scored == 500 and len(plotly_values(histogram["x"])) == scored
    assert any(c.value.startswith(f"{scored} test images against as many odd inputs") for c in recon.caption)
    # at seed 0 the page's AUCs are the metric rows' (the same test images, odd inputs and scores)
    from evaluation import load_metrics

    titles = [json.loads(chart.proto.spec)["layout"]["title"]["text"] for chart in recon.get("plotly_chart")]
    for name, title in zip(["vae-mnist5k", "vae-beta4-mnist5k", "ae-mnist5k", "dcgan-mnist5k"], titles):
        (row, *_) = load_metrics(dashboard_runs_dir(app) / name).values()
        assert title.startswith(name) and title.endswith(f": ROC AUC {row['anomaly_auc_noise']:.3f}"), title


def test_metrics_tab_shows_headline_and_full_tables_fairness_and_charts(app):
    metrics = tab(app, "Metrics")
    summary = metrics.table[0].value
    assert len(summary) == 4
    assert any("FID" in column and "↓" in column for column in summary.columns)
    assert not metrics.dataframe  # the full table is built only when its expander is opened
    app.session_state["metrics_full_table"] = True
    app.run()
    assert_clean(app)
    (full,) = (frame.value for frame in tab(app, "Metrics").dataframe)
    assert len(full) == 4 and len(full.columns) > len(summary.columns)
    specs = [chart.proto.spec for chart in metrics.get("plotly_chart")]
    assert len(specs) == 2  # FID, precision / recall
    assert '"type":"log"' in specs[0].replace(" ", "")  # FID on a log axis
    labels = [d.proto.label for d in metrics.get("download_button")]
    assert labels.count("PDF") == len(specs) and labels.count("PNG") == len(specs)
    more = part(app, "Metrics", "metrics_part", "Classes, sharpness, FID against n").get("plotly_chart")
    assert_clean(app)
    titles = [json.loads(chart.proto.spec)["layout"]["title"]["text"] for chart in more]
    assert len(titles) == 3 and titles[0] == "Class histogram of the samples"
    curves = part(app, "Metrics", "metrics_part", "Training curves").get("plotly_chart")
    assert_clean(app)
    assert len(curves) == 4  # one figure per run, a panel per kind of quantity
    fairness = part(app, "Metrics", "metrics_part", "What each run was given").dataframe[-1].value
    assert_clean(app)
    assert len(fairness) == 4
    assert "G " in fairness.set_index("run").loc["dcgan-mnist5k", "parameters"]  # a GAN's G and D separately
    app.session_state["metrics_configs"] = True  # each run's whole configuration, built once opened
    app.run()
    assert_clean(app)
    configs = tab(app, "Metrics").get("json")
    assert len(configs) == 4 and all('"model_config"' in element.proto.body for element in configs)


def test_computing_metrics_at_another_n_shows_the_rows_at_that_n(tmp_path, dashboard_runs, monkeypatch):
    """'Done … showing n = 500' must be true: the table switches to the n just computed."""
    checkpoints = tmp_path / "checkpoints"
    for name in ("ae-mnist5k", "_extractors"):
        shutil.copytree(dashboard_runs / name, checkpoints / name)
    at = open_app(checkpoints, monkeypatch)
    tab(at, "Metrics")
    assert at.selectbox(key="metrics_view_n").value == METRICS_N
    at.select_slider(key="metrics_n").set_value(500)
    at.button[[b.label for b in at.button].index("Compute")].click().run()
    assert_clean(at)
    done = [s.value for s in tab(at, "Metrics").success]
    assert any("showing n = 500" in text for text in done), done
    assert at.selectbox(key="metrics_view_n").value == 500
    texts = [element.value for element in [*tab(at, "Metrics").caption, *tab(at, "Metrics").markdown]]
    assert any("n = 500" in text for text in texts) and not any("n = 100" in text for text in texts), texts


def test_findings_tab_states_every_claim_and_offers_downloads(app):
    report = tab(app, "Findings & report")
    text = " ".join(m.value for m in report.markdown)
    for claim in ("sharper", "modes", "smoothly", "β", "sampled from N(0, I)", "stable"):
        assert claim in text
    assert [d.proto.label for d in report.get("download_button")] == ["Download findings.md"]
    report.button(key="report_build").click().run(timeout=TIMEOUT)
    assert_clean(app)
    labels = [d.proto.label for d in tab(app, "Findings & report").get("download_button")]
    assert labels == ["Download report.zip", "Download findings.md"]


def test_anatomy_tab_takes_one_image_apart_for_every_encoder_run(app):
    anatomy = tab(app, "VAE anatomy")
    (spec,) = [chart.proto.spec for chart in anatomy.get("plotly_chart")]  # one figure, a panel per run:
    titles = [note["text"] for note in json.loads(spec)["layout"]["annotations"]]
    assert sum("±σ" in title for title in titles) == 2 and sum("no σ" in title for title in titles) == 1
    terms = anatomy.table[0].value
    assert list(terms["β"]) == [1.0, 4.0]
    loss = terms["reconstruction term (nats)"] + terms["β"] * terms["KL term (nats)"]
    assert (abs(loss - terms["loss = recon + β·KL (nats)"]) < 1e-6).all()
    assert any("no σ" in c.value for c in anatomy.caption)


def test_a_seed_change_reruns_the_samples_tab_only(dashboard_runs, monkeypatch):
    monkeypatch.setenv(RENDER_COUNTS_ENV, "1")
    at = open_app(dashboard_runs, monkeypatch)
    tab(at, "Metrics")
    tab(at, "Samples")
    before = dict(at.session_state["render_counts"])
    at.number_input(key="seed").set_value(3).run()
    assert_clean(at)
    after = at.session_state["render_counts"]
    assert after["Samples"] == before["Samples"] + 1
    assert {k: v for k, v in after.items() if k != "Samples"} == {k: v for k, v in before.items() if k != "Samples"}


def wait_while(condition, what: str) -> None:
    deadline = time.monotonic() + TIMEOUT
    while condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.5)


def test_beta_sweep_reuses_the_vae_runs_and_plots_rate_against_distortion(app):
    sweep = tab(app, "Sweeps")
    assert app.selectbox(key="sweep_setting").value == "beta"
    specs = [json.loads(chart.proto.spec) for chart in sweep.get("plotly_chart")]
    assert len(specs) == 3  # rate-distortion, FID against β, and the chosen metric against β over seeds
    rate_distortion = specs[0]["data"][0]
    assert sorted(rate_distortion["text"]) == ["β=1", "β=4"]
    rates = plotly_values(rate_distortion["x"])
    assert list(rates) == sorted(rates)  # points joined in order of rate
    assert any("β=0.5" in caption.value for caption in sweep.caption)  # a default β choice without a run
    # the sweep defaults to the recipe of the existing runs, so a new β joins their curve
    assert sweep.button(key="sweep_start").label == f"Train 1 VAE run(s) of {TINY_STEPS} steps"
    assert f"{TINY_STEPS} steps" in app.selectbox(key="sweep_recipe").value
    assert app.selectbox(key="sweep_recipe").value.endswith("existing runs at β 1, 4")  # the runs found
    # FID against β is the chart above, so the chosen-metric chart opens on another (recall on digits); set to FID,
    # it draws the same points as the chart above
    assert app.selectbox(key="sweep_metric_beta").value == "recall"
    app.selectbox(key="sweep_metric_beta").set_value("fid").run()
    specs = [json.loads(chart.proto.spec) for chart in tab(app, "Sweeps").get("plotly_chart")]
    by_seed, fid_against_beta = specs[2]["data"][0], specs[1]["data"][0]
    assert plotly_values(by_seed["x"]) == [1.0, 4.0]  # the two VAEs, one training seed each: their own FIDs
    assert plotly_values(by_seed["y"]) == pytest.approx(plotly_values(fid_against_beta["y"]))


def test_train_tab_runs_two_sessions_at_once_one_finishes_one_is_cancelled(tmp_path, dashboard_runs, monkeypatch):
    """Session B trains a tiny run to the end; session A starts a long one and cancels it (checkpoint kept)."""
    checkpoints = tmp_path / "checkpoints"
    shutil.copytree(dashboard_runs / "ae-mnist5k", checkpoints / "ae-mnist5k")
    sessions = [open_app(checkpoints, monkeypatch) for _ in range(2)]
    for at, steps in zip(sessions, (5000, 10)):
        tab(at, "Train")
        at.selectbox(key="train_model").set_value("ae").run()
        at.number_input(key="train_amount_steps_ae_mnist5k").set_value(steps).run()
        at.number_input(key="train_latent_ae_mnist5k").set_value(4).run()
        at.button(key="train_start").click().run()
        assert_clean(at)
    long_job, short_job = (at.session_state["training_jobs"][0] for at in sessions)
    assert long_job.run != short_job.run
    # cancel once the training loop runs, as a user watching the progress bar would
    wait_while(lambda: not long_job.progress() and long_job.status == "running", "the first progress report")
    sessions[0].button(key=f"cancel-{long_job.run}").click().run()
    wait_while(lambda: "running" in (long_job.status, short_job.status), "both trainings to end")
    assert (long_job.status, short_job.status) == ("cancelled", "finished"), long_job.last_message()
    for at in sessions:
        at.run()
        assert_clean(at)
    assert any(long_job.run in w.value for w in tab(sessions[0], "Train").warning)
    assert any("finished" in s.value for s in tab(sessions[1], "Train").success)
    assert {long_job.run, short_job.run} <= set(sessions[1].multiselect(key="runs").options)
    assert (checkpoints / long_job.run / "model.safetensors").is_file()
    # the cancelled run is resumed from its checkpoint towards the 5 000 steps it was started with
    cancelled_at = long_job.last_steps
    sessions[0].button(key=f"resume-{long_job.run}").click().run()
    resumed = sessions[0].session_state["training_jobs"][0]
    assert resumed is not long_job and resumed.run == long_job.run and "--resume" in resumed.args
    wait_while(lambda: not resumed.progress() and resumed.status == "running", "the resumed run's first report")
    assert resumed.status == "running" and resumed.progress()["total_steps"] == 5000
    assert resumed.last_steps >= cancelled_at
    resumed.cancel()
    wait_while(lambda: resumed.status == "running", "the resumed run to stop")
    assert resumed.status == "cancelled", resumed.last_message()


def test_corrupt_run_folder_warns(tmp_path, dashboard_runs, monkeypatch):
    checkpoints = tmp_path / "checkpoints"
    for name in ("vae-mnist5k", "dcgan-mnist5k"):
        shutil.copytree(dashboard_runs / name, checkpoints / name)
    broken = checkpoints / "half-written-run"
    broken.mkdir()
    (broken / "model.safetensors").write_bytes(b"\x00not a safetensors file")
    at = open_app(checkpoints, monkeypatch)
    assert_clean(at)
    assert any("half-written-run" in w.value for w in at.warning)
    assert at.multiselect(key="runs").options == ["dcgan-mnist5k", "vae-mnist5k"]
    assert len(image_urls(tab(at, "Samples"))) == 2


def test_empty_checkpoints_folder_explains_how_to_train_the_first_run(tmp_path, monkeypatch):
    at = open_app(tmp_path / "empty", monkeypatch)
    assert_clean(at)
    assert "python -m generators train vae" in at.info[0].value
    assert at.button[0].label == "Train a first VAE on MNIST-5k"
    assert not at.tabs


def test_a_user_error_in_one_tab_is_one_message_not_a_traceback(tmp_path, dashboard_runs, monkeypatch):
    """A run whose dataset is gone: the tabs that need its images say so; the samples still render."""
    from generators.checkpoints import load_run, read_run_info, save_weights

    checkpoints = tmp_path / "checkpoints"
    run_dir = checkpoints / "vae-lost-data"
    shutil.copytree(dashboard_runs / "vae-mnist5k", run_dir)
    model, _ = load_run(run_dir)
    info = read_run_info(run_dir)
    missing = tmp_path / "no-such-folder"
    info["dataset"] = info["train_config"]["dataset"] = f"folder:{missing}"
    save_weights(run_dir, model.state_dict(), info)
    at = open_app(checkpoints, monkeypatch)
    assert not at.exception
    assert len(image_urls(tab(at, "Samples"))) == 1
    messages = [e.value for e in tab(at, "Reconstruction").error]
    assert messages and str(missing) in messages[0] and "Traceback" not in messages[0]


@pytest.fixture(scope="module")
def conditional_runs(tmp_path_factory, dashboard_runs):
    """A tiny run of every class-conditional registered model, beside the quick extractor."""
    from generators.registry import MODELS
    from tests.helpers import train_tiny_run

    out = tmp_path_factory.mktemp("conditional") / "checkpoints"
    shutil.copytree(dashboard_runs / "_extractors", out / "_extractors")
    for name, cls in MODELS.items():
        if cls.capabilities_for(cls.Config()).conditional:
            train_tiny_run(name, out / f"{name}-mnist5k", TINY_STEPS, options={"latent_dim": 8})
    return out


def test_every_tab_renders_class_conditional_runs_with_their_views(conditional_runs, monkeypatch):
    at = open_app(conditional_runs, monkeypatch)
    assert_clean(at)
    assert len(at.multiselect(key="runs").value) >= 2
    for title in TAB_TITLES:
        tab(at, title)
        assert_clean(at)
    samples = tab(at, "Samples")
    at.selectbox(key="samples_class").set_value("3").run()
    assert_clean(at)
    assert len(image_urls(tab(at, "Samples"))) == len(at.multiselect(key="runs").value)
    interp = tab(at, "Interpolation")
    assert any("Same z, every class" in h.value for h in interp.subheader)
    assert samples.selectbox


def test_every_chart_of_every_tab_downloads_as_png_and_pdf_and_is_counted(dashboard_runs, monkeypatch):
    """Each plotly chart is drawn through one function that adds its report downloads; in test mode a tab also
    says how many charts it drew (the browser benchmark waits for that many to be on screen). Every picture is
    served as PNG: Streamlit's default turns a greyscale image into a JPEG, whose ringing blurs a sharp stroke."""
    monkeypatch.setenv(RENDER_COUNTS_ENV, "1")
    at = open_app(dashboard_runs, monkeypatch)
    charted, shown = 0, []
    for title in TAB_TITLES:
        parts = [label.label for label in tab(at, title).tabs]  # a chart-heavy tab's parts: each one in turn
        for name in parts or [None]:
            node = part(at, title, PART_KEYS[title], name) if name else tab(at, title)
            assert_clean(at)
            charts = node.get("plotly_chart")
            stated = [c.value for c in node.caption if c.value.startswith(f"charts in {title}: ")]
            assert stated == [f"charts in {title}: {len(charts)}"], (title, name)
            ids = [button.proto.id for button in node.get("download_button")]
            for fmt in ("png", "pdf"):
                assert sum(i.endswith(f"-{fmt}") for i in ids) >= len(charts), (title, name, fmt)
            charted += len(charts)
            shown += image_urls(node)
    assert charted >= 10  # the maps, curves, histograms and metric charts are all there
    assert len(shown) >= 20 and all(url.endswith(".png") for url in shown), shown


def test_the_sidebar_compares_runs_of_one_data_set_only(mixed_runs, monkeypatch):
    at = open_app(mixed_runs, monkeypatch)
    assert_clean(at)
    picker = at.selectbox(key="dataset")
    assert picker.options == ["mnist5k", "sprites"] and picker.value == "mnist5k"
    assert at.multiselect(key="runs").options == ["dcgan-mnist5k", "vae-mnist5k"]
    assert at.multiselect(key="runs").value == ["vae-mnist5k", "dcgan-mnist5k"]  # the default runs' order
    picker.set_value("sprites").run()
    assert_clean(at)
    assert at.multiselect(key="runs").options == at.multiselect(key="runs").value == ["vae-sprites"]
    assert len(image_urls(tab(at, "Samples"))) == 1  # the sprites run alone, never beside a digit run
    at.selectbox(key="dataset").set_value("mnist5k").run()
    assert at.multiselect(key="runs").value == ["vae-mnist5k", "dcgan-mnist5k"]
    assert len(image_urls(tab(at, "Samples"))) == 2


def test_latent_space_of_a_sprites_run_names_the_factor_each_dimension_holds(mixed_runs, monkeypatch):
    at = open_app(mixed_runs, monkeypatch)
    at.selectbox(key="dataset").set_value("sprites").run()
    charts = part(at, "Latent space", "latent_part", LATENT_TRAVERSALS).get("plotly_chart")
    assert_clean(at)
    figures = [json.loads(chart.proto.spec) for chart in charts]
    (heatmap,) = [f for f in figures if f["data"][0]["type"] == "heatmap"]
    assert heatmap["data"][0]["x"] == ["shape", "scale", "orientation", "x", "y"]
    assert heatmap["data"][0]["y"] == [f"z{j}" for j in range(5)]
    (traversals,) = [f for f in figures if "latent traversals" in f["layout"]["title"]["text"]]
    rows = traversals["layout"]["yaxis"]["ticktext"]
    nmi = np.array(plotly_values(heatmap["data"][0]["z"]), dtype=float).reshape(5, 5)
    factors = heatmap["data"][0]["x"]
    for row in rows:  # a factor with its value on the map, or one of the two "no factor" labels
        dim, label = row.split(" = ", 1)
        d = int(dim[1:])
        named = [f"{name} ({nmi[d, k]:.2f})" for k, name in enumerate(factors)]
        assert label in ("switched off", "no single factor", *named), row  # no factor extractor yet: no decoded side
    # the columns' ticks are the values the dimension takes, exactly (±0.75 is not rounded to ±0.8)
    values = np.linspace(-LATENT_TRAVERSAL_RANGE, LATENT_TRAVERSAL_RANGE, LATENT_TRAVERSAL_STEPS)
    assert [float(text) for text in traversals["layout"]["xaxis"]["ticktext"]] == pytest.approx(values, abs=0)


def test_a_switched_off_dimension_is_labelled_so_not_by_a_factor(monkeypatch):
    """The committed β = 4 sprites VAE switched dimensions off: the rows of those its KL chart draws as inactive do
    not change, so they must read "switched off" — and only they (one rule on the page, not two)."""
    checkpoints = Path(__file__).resolve().parents[1] / "checkpoints"
    at = open_app(checkpoints, monkeypatch)
    at.selectbox(key="dataset").set_value("sprites").run()
    at.multiselect(key="runs").set_value(["vae-beta4-sprites"]).run()
    traversals = part(at, "Latent space", "latent_part", LATENT_TRAVERSALS)
    traversals.multiselect(key="latent-dims-vae-beta4-sprites").set_value(list(range(8))).run()
    assert_clean(at)
    figures = [
        json.loads(c.proto.spec) for c in part(at, "Latent space", "latent_part", LATENT_TRAVERSALS).get("plotly_chart")
    ]
    (grid,) = [f for f in figures if "latent traversals" in f["layout"]["title"]["text"]]
    (bars,) = [f for f in figures if "KL per latent dimension" in f["layout"]["title"]["text"]]
    (inactive,) = [trace for trace in bars["data"] if trace["name"].startswith("inactive")]
    switched = {int(x) for x in plotly_values(inactive["x"])}
    assert switched and len(switched) < 8
    for row in grid["layout"]["yaxis"]["ticktext"]:  # "z3 = switched off · decoded: no scale/x/y change"
        dim, label = row.split(" = ", 1)
        code_side, decoded = label.split(" · decoded: ")
        assert (code_side == "switched off") == (int(dim[1:]) in switched), row
        # the decoder ignores a switched-off dimension: the factor extractor reads no move along its row
        assert (decoded == "no scale/x/y change") == (int(dim[1:]) in switched), row


def test_a_choice_survives_a_visit_to_another_tab_or_part(dashboard_runs, monkeypatch):
    """Only the open tab (and its open part) is drawn, and Streamlit forgets the value of a widget a run does not
    draw: a choice made in a tab must still be there, and still be used, after the user looked at another one."""
    at = open_app(dashboard_runs, monkeypatch)
    tab(at, "Interpolation").radio(key="interp_path").set_value("linear").run()
    tab(at, "Samples")
    tab(at, "Metrics")
    assert tab(at, "Interpolation").radio(key="interp_path").value == "linear"
    part(at, "Reconstruction", "recon_part", "Denoising").slider(key="denoise_sigma").set_value(0.8).run()
    part(at, "Reconstruction", "recon_part", "Anomaly detection")
    tab(at, "Samples")
    denoising = part(at, "Reconstruction", "recon_part", "Denoising")
    assert denoising.slider(key="denoise_sigma").value == 0.8
    captions = [img.caption for element in denoising.get("image") for img in element.proto.imgs]
    assert "noisy inputs (σ = 0.80)" in captions, f"the page does not use the choice: {captions}"
    assert_clean(at)
    assert not at.warning or all("Session State API" not in w.value for w in at.warning)


def test_the_sweeps_tab_draws_mig_against_beta_of_the_committed_sprites_runs(monkeypatch):
    """The Sweeps tab follows the sidebar's data set: on sprites, MIG against β is the committed VAEs' MIG, one
    point per β of the one recipe (0.5, 1, 2, 4)."""
    from evaluation.rows import comparison_n, row_at
    from evaluation.runs import read_runs

    checkpoints = Path(__file__).resolve().parents[1] / "checkpoints"
    at = open_app(checkpoints, monkeypatch)
    at.selectbox(key="dataset").set_value("sprites").run()
    sweeps = tab(at, "Sweeps")
    assert_clean(at)
    assert sweeps.multiselect(key="sweep_betas").value == [0.5, 1.0, 2.0, 4.0]  # every β with a run is drawn
    # FID against β has its own chart above, so "Any metric against β" opens on MIG: FID is not drawn twice
    assert sweeps.selectbox(key="sweep_metric_beta").value == "mig"
    axes = [json.dumps(json.loads(c.proto.spec)["layout"].get("yaxis", {})) for c in sweeps.get("plotly_chart")]
    assert sum("FID" in axis for axis in axes) == 1, axes
    sweeps.selectbox(key="sweep_metric_beta").set_value("mig").run()
    assert_clean(at)
    names = ("vae-beta0.5-sprites", "vae-sprites", "vae-beta2-sprites", "vae-beta4-sprites")
    runs = read_runs([checkpoints / name for name in names])
    n = comparison_n(runs)
    expected = {run.beta: row_at(run, n)["mig"] for run in runs}
    assert sorted(expected) == [0.5, 1.0, 2.0, 4.0]
    chart = next(
        json.loads(c.proto.spec)
        for c in tab(at, "Sweeps").get("plotly_chart")
        if "MIG" in json.dumps(json.loads(c.proto.spec)["layout"].get("yaxis", {}))
    )
    means = next(trace for trace in chart["data"] if trace.get("error_y"))
    drawn = dict(zip(plotly_values(means["x"]), plotly_values(means["y"])))
    assert drawn == pytest.approx(expected), (drawn, expected)


def test_the_beta_values_box_also_filters_the_any_metric_chart(monkeypatch):
    """Taking β = 4 out of "β values" takes it out of every β chart, "Any metric against β" included."""
    checkpoints = Path(__file__).resolve().parents[1] / "checkpoints"
    at = open_app(checkpoints, monkeypatch)
    at.selectbox(key="dataset").set_value("sprites").run()
    tab(at, "Sweeps").multiselect(key="sweep_betas").set_value([0.5, 1.0, 2.0]).run()
    tab(at, "Sweeps").selectbox(key="sweep_metric_beta").set_value("mig").run()
    assert_clean(at)
    chart = next(
        json.loads(c.proto.spec)
        for c in tab(at, "Sweeps").get("plotly_chart")
        if "MIG" in json.dumps(json.loads(c.proto.spec)["layout"].get("yaxis", {}))
    )
    means = next(trace for trace in chart["data"] if trace.get("error_y"))
    assert sorted(plotly_values(means["x"])) == [0.5, 1.0, 2.0]


def test_the_train_tab_starts_from_the_sidebars_data_set_and_its_recipe(monkeypatch):
    """With sprites chosen in the sidebar, the Train tab offers sprites and the committed sprites VAE's recipe
    (17 000 bf16 steps), not the digits one."""
    from generators.default_runs import default_recipe

    checkpoints = Path(__file__).resolve().parents[1] / "checkpoints"
    at = open_app(checkpoints, monkeypatch)
    at.selectbox(key="dataset").set_value("sprites").run()
    train = tab(at, "Train")
    assert_clean(at)
    recipe = default_recipe("vae", checkpoints, "sprites")
    assert train.selectbox(key="train_dataset").value == "sprites"
    assert train.number_input(key="train_amount_steps_vae_sprites").value == recipe["steps"] == 17_000
    assert train.selectbox(key="train_precision").value == "bf16"
    (caption,) = [c.value for c in train.caption if "`vae-sprites`" in c.value]
    assert "trained vae-sprites (sprites)" in caption and "mnist5k" not in caption  # the time estimate's run


def test_recompute_scores_the_sanity_panel_afresh(app):
    """The sanity button computes and stores the panel; on a stored panel it recomputes it (never serves the
    stored rows again)."""
    from evaluation import bundle
    from evaluation.sanity import CASES

    sanity = tab(app, "Sanity & copying")
    n = app.session_state["sanity_n"]
    path = bundle.sanity_path(dashboard_runs_dir(app), "mnist5k", n)
    assert not path.exists()
    try:
        next(b for b in sanity.button if b.key == "sanity_compute").click().run()
        assert_clean(app)
        rows = json.loads(path.read_text())
        assert [row["case"] for row in rows] == [case.name for case in CASES]
        rows[0]["case"] = "a stale row"
        path.write_text(json.dumps(rows))
        app.run()
        button = next(b for b in app.tabs[TAB_TITLES.index("Sanity & copying")].button if b.key == "sanity_compute")
        table = app.tabs[TAB_TITLES.index("Sanity & copying")].dataframe[0].value
        assert button.label.startswith("Recompute") and "a stale row" in table.to_string()
        button.click().run()
        assert_clean(app)
        assert [row["case"] for row in json.loads(path.read_text())] == [case.name for case in CASES]
        table = app.tabs[TAB_TITLES.index("Sanity & copying")].dataframe[0].value
        assert "a stale row" not in table.to_string() and len(table) == len(CASES)
        # why the cases score different numbers of images: the test split's 500 digits, 50 of class 0
        (sizes,) = [c.value for c in app.tabs[TAB_TITLES.index("Sanity & copying")].caption if "n (samples)" in c.value]
        one_class = next(row for row in json.loads(path.read_text()) if row["case"] == "one class")
        assert f"at most {min(n, 500)} images" in sizes and f"one class {one_class['n_fake']}" in sizes
        assert one_class["n_fake"] < min(n, 500)
    finally:
        path.unlink(missing_ok=True)


def test_sprites_metrics_show_disentanglement_in_a_table_of_its_own(monkeypatch):
    """On sprites the headline stays one screen wide and MIG, DCI, FactorVAE and SAP get their own table, whose
    cells are the stored scores; a digit table has no such table (the default runs above)."""
    from evaluation import load_metrics
    from evaluation.metric_specs import DISENTANGLEMENT_KEYS, metric

    checkpoints = Path(__file__).resolve().parents[1] / "checkpoints"
    at = open_app(checkpoints, monkeypatch)
    at.selectbox(key="dataset").set_value("sprites").run()
    runs = ["vae-sprites", "vae-beta4-sprites", "dcgan-sprites"]
    at.multiselect(key="runs").set_value(runs).run()
    headline, scores = (table.value for table in tab(at, "Metrics").table)
    assert_clean(at)
    assert not any("MIG" in column for column in headline.columns) and len(headline) == len(runs)
    assert list(scores["run"]) == runs
    for key in DISENTANGLEMENT_KEYS:
        (column,) = [c for c in scores.columns if c.startswith(metric(key).label)]
        for run, cell in zip(runs, scores[column]):
            (row, *_) = (r for r in load_metrics(checkpoints / run).values() if r["n_fake"] == 5000)
            assert float(cell.split()[0]) == pytest.approx(row[key], abs=0.005), (run, key, cell)
    # how each run's codes were made, beside its scores: its encoder, or one fitted to the GAN's (G(z), z) pairs
    assert list(scores["codes"]) == [
        next(r for r in load_metrics(checkpoints / run).values() if r["n_fake"] == 5000)["codes_method"] for run in runs
    ]
    assert scores["codes"].iloc[0] != scores["codes"].iloc[2]  # the VAE's and the DCGAN's are made differently


def test_a_real_walk_checks_the_last_frame_only_where_the_path_ends_in_the_second_images_class(
    dashboard_runs, tmp_path, monkeypatch
):
    """Known answer: both end frames are image a. An unconditional run's last frame must then read as a's class,
    not b's; a class-conditional path keeps a's class to its end by design, so only its first frame is checked."""
    from dashboard.interpolation import end_frames_note
    from dashboard.state import Run
    from evaluation.features import extractor_path, load_extractor
    from generators.data import load_dataset
    from tests.helpers import train_tiny_run

    checkpoints = tmp_path / "checkpoints"
    shutil.copytree(dashboard_runs / "vae-mnist5k", checkpoints / "vae-mnist5k")
    shutil.copytree(dashboard_runs / "_extractors", checkpoints / "_extractors")
    train_tiny_run("cvae", checkpoints / "cvae-mnist5k", TINY_STEPS, options={"latent_dim": 8})
    monkeypatch.setenv(CHECKPOINTS_ENV, str(checkpoints))
    test = load_dataset("mnist5k").test
    images, labels = test.float_images(), test.labels
    classifier = load_extractor(extractor_path(checkpoints / "_extractors", "mnist5k", images.shape[1:]))
    right = (classifier.classify(images) == labels).nonzero().flatten().tolist()  # images it reads correctly
    a = right[0]
    b = next(i for i in right if labels[i] != labels[a])
    ends = images[[a, a]]
    unconditional = end_frames_note(Run.read(checkpoints / "vae-mnist5k"), (a, b), ends)
    assert f"#{b}'s frame reads as {int(labels[a])}, not {int(labels[b])}" in unconditional  # digits' names
    conditional = end_frames_note(Run.read(checkpoints / "cvae-mnist5k"), (a, b), ends)
    assert "did not reproduce" not in conditional and f"reads the first as #{a}'s class" in conditional
