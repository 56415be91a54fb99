"""The shared harness: bit-exact checkpoints, exact resume, reproducible seeds, budgets, run-folder contents."""

import dataclasses
import io
import json
import threading

import pytest
import torch
from PIL import Image
from torchvision.transforms.functional import pil_to_tensor
from torchvision.utils import make_grid

from generators.checkpoints import HistoryWriter, load_run, read_history, read_run_info, save_weights
from generators.dcgan import EMA_UPDATES_OF_OLD_RUNS
from generators.machine import describe_machine
from generators.registry import MODELS, build_model, model_class
from generators.trainer import CheckpointWriter, epoch_batches, first_non_finite, preview_png
from generators.training import TrainConfig, run_training
from tests import helpers

RANDOM_OPTIONS = {"ema": 0.9, "diffaug": "translation,cutout"}  # every option that draws random numbers


def tiny_options(name: str) -> dict:
    """Small nets, plus every random option the model has, so the tests stay fast and exercise the RNG."""
    own = {f.name for f in dataclasses.fields(model_class(name).Config)}
    return helpers.tiny_options(name, **{k: v for k, v in RANDOM_OPTIONS.items() if k in own})


def train(tmp_path, name, run, steps, resume=False, seed=0):
    cfg = TrainConfig(steps=steps, batch_size=32, seed=seed)
    return run_training(name, tiny_options(name), cfg, tmp_path / run, resume=resume, show_progress=False)


def test_checkpoint_round_trip_is_bit_exact(tmp_path):
    torch.manual_seed(3)
    model = build_model("dcgan", {"image_shape": (3, 32, 32), **tiny_options("dcgan")})
    info = {"model": "dcgan", "model_config": model.config.to_dict(), "dataset": "x"}
    save_weights(tmp_path, model.state_dict(), info)
    loaded, stored = load_run(tmp_path)
    assert stored == json.loads(json.dumps(info))  # JSON turns tuples into lists
    original, restored = model.state_dict(), loaded.state_dict()
    assert original.keys() == restored.keys()
    assert all(torch.equal(original[k], restored[k]) for k in original)


@pytest.mark.parametrize("name", list(MODELS))
def test_resume_continues_exactly(tmp_path, name):
    """train 20 steps == train 10, then --resume to 20 (the 10 -> 20 crosses no epoch boundary: 140 batches/epoch)."""
    train(tmp_path, name, "straight", 20)
    train(tmp_path, name, "resumed", 10)
    assert read_run_info(tmp_path / "resumed")["step"] == 10
    train(tmp_path, name, "resumed", 20, resume=True)
    straight, _ = load_run(tmp_path / "straight")
    resumed, info = load_run(tmp_path / "resumed")
    assert info["step"] == 20
    for key, value in straight.state_dict().items():
        assert torch.allclose(value.float(), resumed.state_dict()[key].float(), atol=1e-6, rtol=0), key
    steps = [row["step"] for row in read_history(tmp_path / "resumed")]
    assert steps == list(range(1, 21))


def test_resume_across_an_epoch_boundary(tmp_path):
    cfg = TrainConfig(steps=6, batch_size=1024, seed=1)  # 4 batches per epoch
    run_training("ae", tiny_options("ae"), cfg, tmp_path / "a", show_progress=False)
    run_training(
        "ae", tiny_options("ae"), TrainConfig(steps=3, batch_size=1024, seed=1), tmp_path / "b", show_progress=False
    )
    run_training("ae", {}, cfg, tmp_path / "b", resume=True, show_progress=False)
    a, info = load_run(tmp_path / "a")
    b, _ = load_run(tmp_path / "b")
    assert info["epoch"] == 1
    assert all(torch.allclose(v, b.state_dict()[k], atol=1e-6, rtol=0) for k, v in a.state_dict().items())


def test_same_seed_same_weights_and_samples_other_seed_differs(tmp_path):
    for run, seed in (("a", 5), ("b", 5), ("c", 6)):
        train(tmp_path, "vae", run, 5, seed=seed)
    models = {run: load_run(tmp_path / run)[0] for run in "abc"}
    samples = {run: m.sample(8, generator=torch.Generator().manual_seed(0)) for run, m in models.items()}
    assert torch.equal(samples["a"], samples["b"])
    assert not torch.allclose(samples["a"], samples["c"])


def test_run_folder_has_every_file_and_the_config(tmp_path):
    train(tmp_path, "vae", "r", 12)
    run = tmp_path / "r"
    assert {p.name for p in run.iterdir()} >= {"model.safetensors", "history.csv", "resume.pt", "preview.png"}
    info = read_run_info(run)
    assert info["model"] == "vae" and info["dataset"] == "mnist5k" and info["image_shape"] == [1, 28, 28]
    assert info["train_config"]["steps"] == 12 and info["seed"] == 0 and info["step"] == 12
    assert {"created", "code_version", "epoch"} <= info.keys()
    assert info["machine"] == describe_machine(torch.device("cpu"))  # what its training seconds were measured on
    from evaluation.methods import machine_sentence

    assert info["machine"] in machine_sentence([{**info, "run_name": "r"}])
    history = read_history(run)
    assert len(history) == 12 and {"recon", "kl", "kl_dim_0", "seconds", "epoch"} <= history[0].keys()
    assert not (run / ".lock").exists()


def test_minutes_budget_stops_on_time(tmp_path):
    cfg = TrainConfig(minutes=0.02, batch_size=32)
    result = run_training("ae", tiny_options("ae"), cfg, tmp_path / "m", show_progress=False)
    assert result["step"] >= 1 and 1.2 <= result["seconds"] < 30


def test_epochs_budget_counts_full_batches(tmp_path):
    cfg = TrainConfig(epochs=2, batch_size=1000)
    result = run_training("ae", tiny_options("ae"), cfg, tmp_path / "e", show_progress=False)
    assert result == {**result, "step": 8, "epoch": 2}  # 4 500 images -> 4 full batches per epoch


def test_epoch_batches_are_a_seeded_permutation_and_shard_by_rank():
    batches = epoch_batches(10, 3, seed=0, epoch=0)
    flat = [i for b in batches for i in b]
    assert len(batches) == 3 and len(set(flat)) == 9 and set(flat) <= set(range(10))
    assert epoch_batches(10, 3, 0, 0) == batches and epoch_batches(10, 3, 0, 1) != batches
    assert epoch_batches(10, 3, 0, 0, skip=1) == batches[1:]
    shards = [set(i for b in epoch_batches(12, 2, 0, 0, rank=r, world_size=2) for i in b) for r in (0, 1)]
    assert not shards[0] & shards[1] and len(shards[0] | shards[1]) == 12


def test_history_writer_formats_only_new_rows_but_writes_the_whole_file(tmp_path):
    writer = HistoryWriter(tmp_path)
    rows = [{"step": 1, "loss": 0.5}, {"step": 2, "loss": 0.25}]
    writer.write(rows[:1])
    writer.write(rows)
    assert read_history(tmp_path) == [{"step": 1.0, "loss": 0.5}, {"step": 2.0, "loss": 0.25}]
    rows.append({"step": 3, "loss": 0.125, "kl": 2.0})  # a new column: earlier rows get it blank
    writer.write(rows)
    history = read_history(tmp_path)
    assert history[0] == {"step": 1.0, "loss": 0.5, "kl": None}
    assert history[2] == {"step": 3.0, "loss": 0.125, "kl": 2.0}
    writer.write(rows[:1])  # not a continuation: written from scratch
    assert read_history(tmp_path) == [{"step": 1.0, "loss": 0.5}]


def test_checkpoint_writer_is_busy_only_while_a_write_is_in_flight():
    release, written = threading.Event(), []
    writer = CheckpointWriter()
    assert not writer.busy
    writer.start(lambda: (release.wait(10), written.append(True)))
    assert writer.busy and not written
    release.set()
    writer.wait()
    assert not writer.busy and written == [True]


def test_first_non_finite_names_the_first_bad_weight_and_only_a_bad_one():
    big = torch.full((1000,), 3e38)  # finite, but its float32 sum would overflow
    state = {"steps": torch.tensor(10**12), "a": torch.zeros(3), "big": big, "b": torch.ones(2)}
    assert first_non_finite(state) is None
    for bad in (float("nan"), float("inf"), -float("inf")):
        assert first_non_finite({**state, "b": torch.tensor([1.0, bad])}) == "b"
    assert first_non_finite({**state, "a": torch.tensor([float("inf"), -float("inf")])}) == "a"  # sum is NaN
    assert first_non_finite({"steps": torch.tensor(3)}) is None


@pytest.mark.parametrize("channels", [1, 3])
def test_preview_png_keeps_the_grid_pixels(channels):
    images = torch.rand(4, channels, 5, 5)
    grid = make_grid(images, nrow=2, padding=2)
    picture = Image.open(io.BytesIO(preview_png(grid, channels)))
    assert picture.mode == ("L" if channels == 1 else "RGB")
    pixels = pil_to_tensor(picture).float() / 255
    assert pixels.shape == (channels, *grid.shape[1:])
    assert torch.allclose(pixels, grid[:channels], atol=0.5 / 255 + 1e-6)


def test_dcgan_run_saved_before_its_newer_buffers_still_loads(tmp_path):
    """Weights from before the EMA update counter and the calibration flag existed: the counter is taken as
    past the warm-up, the flag as "not calibrated", so loading recalibrates to exactly the same samples."""
    train(tmp_path, "dcgan", "run", 5)
    current, info = load_run(tmp_path / "run")
    old = {k: v for k, v in current.state_dict().items() if k not in ("ema_updates", "batchnorm_calibrated")}
    (tmp_path / "old").mkdir()
    save_weights(tmp_path / "old", old, info)
    upgraded, _ = load_run(tmp_path / "old")
    assert int(upgraded.ema_updates) == EMA_UPDATES_OF_OLD_RUNS
    with torch.inference_mode():
        expected = current.sample(8, generator=torch.Generator().manual_seed(0))
        assert torch.equal(upgraded.sample(8, generator=torch.Generator().manual_seed(0)), expected)
