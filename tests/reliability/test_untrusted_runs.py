"""Run-folder contents are untrusted input: a classmate's or a hand-edited run may hold run info of any shape, a
``resume.pt`` that does not fit, a GMM sampler of another latent size, a stored dataset path that would walk the
whole disk. Each is refused with one line naming the file, before anything is built from it, and one bad run
never hides the good ones."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from safetensors import safe_open
from safetensors.torch import load_file, save

from generators import data as data_module
from generators.checkpoints import RESUME, WEIGHTS, list_runs, load_run, read_run_info
from generators.data import load_dataset, load_run_dataset
from generators.errors import UserError
from generators.registry import capabilities_of
from generators.samplers import GMM_FILE, METADATA_KEY, GaussianMixtureSampler, latent_sampler, weights_hash
from generators.vae import VAE

from .support import TINY, assert_one_line_error, cli_in_process, snapshot, train_tiny


def store_config(run_dir: Path, change) -> None:
    """Rewrite the config metadata: ``change(info)`` edits the dict in place or returns raw JSON text."""
    path = run_dir / WEIGHTS
    with safe_open(str(path), framework="pt") as fh:
        info = json.loads(fh.metadata()["config"])
    text = change(info)
    path.write_bytes(save(load_file(str(path)), metadata={"config": text if text is not None else json.dumps(info)}))


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


BAD_INFO = {  # damage -> words the error names
    "nested 100 000 deep": (lambda i: '{"model": "vae", "model_config": ' + nested(100_000) + "}", "unreadable"),
    "nested inside an extra key": (lambda i: json.dumps(i)[:-1] + ', "x": ' + nested(500) + "}", None),
    "nested model config": (lambda i: i["model_config"].update(latent_dim=[[[[2]]]]), "model_config"),
    "no model_config": (lambda i: i.pop("model_config") and None, "model_config"),
    "no dataset": (lambda i: i.pop("dataset") and None, "dataset"),
    "image_shape of two numbers": (lambda i: i.update(image_shape=[16, 16]), "image_shape"),
    "step as text": (lambda i: i.update(step="5"), "step"),
    "epoch 1e30": (lambda i: i.update(epoch=1e30), "epoch"),
    "negative seed": (lambda i: i.update(seed=-1), "seed"),
    "seed past 64 bits": (lambda i: i.update(seed=2**64), "seed"),
    "latent as text": (lambda i: i["model_config"].update(latent_dim="2"), "--latent-dim"),
    "latent 10**9": (lambda i: i["model_config"].update(latent_dim=10**9), "--latent-dim"),
    "beta NaN": (lambda i: i["model_config"].__setitem__("beta", math.nan), "--beta"),
    "unknown config field": (lambda i: i["model_config"].update(depth=3), "depth"),
    "model name not text": (lambda i: i.update(model=["vae"]), "model"),
    "class names not a list": (lambda i: i.update(class_names=7), "class_names"),
    "train config nested": (lambda i: i["train_config"].update(batch_size={"a": 1}), "batch_size"),
    "batch size 10**12": (lambda i: i["train_config"].update(batch_size=10**12), "--batch-size"),
    "unknown train field": (lambda i: i["train_config"].update(gpus=8), "gpus"),
    "dataset path 5000 long": (lambda i: i.update(dataset="folder:" + "x" * 5000), "dataset"),
    "image shape differs": (lambda i: i.update(image_shape=[3, 16, 16]), "image_shape"),
}


@pytest.mark.parametrize("damage", list(BAD_INFO))
def test_bad_run_info_is_refused_before_building(run, monkeypatch, damage):
    change, words = BAD_INFO[damage]
    store_config(run, change)
    if words is None:  # extra keys are allowed (newer code may add some), so it loads
        assert load_run(run)[1]["model"] == "vae"
        return
    built = []
    monkeypatch.setattr(VAE, "__init__", lambda self, config: built.append(config) or 1 / 0)
    for read in (read_run_info, load_run):
        with pytest.raises(UserError) as caught:
            read(run)
        message = str(caught.value)
        assert str(run / WEIGHTS) in message and words in message and "\n" not in message
    assert built == []  # refused before any model (not even on the meta device) was built


def test_widths_within_their_limits_but_too_many_parameters_are_refused_on_the_meta_device(run, monkeypatch):
    """Each width within its limit, together 10**10 parameters: counted without memory, refused before building."""
    store_config(
        run,
        lambda i: (
            i["model_config"].update(base_width=1024, hidden_dim=16384, image_shape=[1, 256, 256])
            or i.update(image_shape=[1, 256, 256])
        ),
    )
    real_init = VAE.__init__
    devices = []

    def init(self, config):
        devices.append(torch.empty(0).device.type)  # the default device while building: meta for the count
        real_init(self, config)

    monkeypatch.setattr(VAE, "__init__", init)
    with pytest.raises(UserError, match="parameters, more than the 100,000,000 allowed"):
        load_run(run)
    assert devices == ["meta"]


def test_one_bad_run_never_hides_the_good_ones(made, tmp_path, capsys):
    out = tmp_path / "runs"
    for name in ("a-good", "b-nested", "c-latent", "d-good"):
        shutil.copytree(made[1], out / name)
    store_config(out / "b-nested", lambda i: '{"model": "vae", "model_config": ' + nested(100_000) + "}")
    store_config(out / "c-latent", lambda i: i["model_config"].update(latent_dim=10**9))
    runs, broken = list_runs(out)
    assert [Path(r["run_dir"]).name for r in runs] == ["a-good", "d-good"]
    assert [p.name for p, _ in broken] == ["b-nested", "c-latent"]
    code, stdout, err = cli_in_process(capsys, "list", "--out-dir", str(out))
    assert code == 0 and "Traceback" not in err
    assert [line.split()[0] for line in stdout.strip().splitlines()[1:]] == ["a-good", "d-good"]
    assert len(err.strip().splitlines()) == 2 and all(line.startswith("warning: skipped") for line in err.splitlines())


def rewrite_resume(run_dir: Path, change) -> None:
    """``change(state)`` edits the state in place, or returns a list to store instead."""
    state = torch.load(run_dir / RESUME, weights_only=True)
    replaced = change(state)
    torch.save(replaced if isinstance(replaced, list) else state, run_dir / RESUME)


def first_float_weight(state: dict) -> torch.Tensor:
    return next(v for v in state["model"].values() if v.is_floating_point())


def first_adam_state(state: dict) -> dict:
    return next(iter(state["optimizers"]["adam"]["state"].values()))


BAD_RESUME = {  # damage -> words of the error
    "step as text": (lambda s: s.update(step="5"), "step"),
    "epoch 10**30": (lambda s: s.update(epoch=10**30), "epoch"),
    "epoch 1e30": (lambda s: s.update(epoch=1e30), "epoch"),
    "epoch past step": (lambda s: s.update(epoch=s["step"] + 1), "epoch"),
    "negative batch_in_epoch": (lambda s: s.update(batch_in_epoch=-1), "batch_in_epoch"),
    "seconds NaN": (lambda s: s.update(seconds=math.nan), "seconds"),
    "bool as a step": (lambda s: s.update(step=True), "step"),
    "weights of another shape": (
        lambda s: s["model"].update({k: torch.zeros(3) for k in list(s["model"])[:1]}),
        "size",
    ),
    "NaN weight": (lambda s: first_float_weight(s).fill_(math.nan), "NaN"),
    "weights not tensors": (lambda s: s.update(model={"a": "b"}), "tensors"),
    "optimizer moment of another shape": (lambda s: first_adam_state(s).update(exp_avg=torch.zeros(7, 7)), "exp_avg"),
    "optimizer lr NaN": (lambda s: s["optimizers"]["adam"]["param_groups"][0].update(lr=math.nan), "settings"),
    "optimizer of another model": (lambda s: s.update(optimizers={"g": {}, "d": {}}), "optimizers"),
    "state for a parameter that does not exist": (
        lambda s: s["optimizers"]["adam"]["state"].update({999: {}}),
        "999",
    ),
    "a list instead of a dict": (lambda s: [1, 2, 3], "not a dict"),
    "rng state as text": (lambda s: s["rng"].update(torch="abc"), "resume.pt"),
}


@pytest.mark.parametrize("damage", list(BAD_RESUME))
def test_resume_state_that_does_not_fit_is_refused(made, run, damage):
    images, _ = made
    change, words = BAD_RESUME[damage]
    rewrite_resume(run, change)
    before = snapshot(run)
    with pytest.raises(UserError) as caught:
        train_tiny(images, "vae", run, 6, resume=True)
    message = str(caught.value)
    assert str(run / RESUME) in message and words in message and "\n" not in message
    assert snapshot(run) == before


def write_gmm(run_dir: Path, k: int, dim: int, **override) -> None:
    """A GMM sampler file that claims to be fitted for the run's current weights (so it is loaded and checked,
    not refitted)."""
    tensors = {
        "weights": torch.full((k,), 1 / k, dtype=torch.float64),
        "means": torch.zeros(k, dim, dtype=torch.float64),
        "covariances": torch.eye(dim, dtype=torch.float64).repeat(k, 1, 1),
    }
    tensors.update(override)
    metadata = {METADATA_KEY: json.dumps({"kind": "gmm", "model_hash": weights_hash(run_dir)})}
    (run_dir / GMM_FILE).write_bytes(save({n: t.contiguous() for n, t in tensors.items()}, metadata=metadata))


GMM_DAMAGE = {
    "another latent size": (dict(k=3, dim=5), "latent size 2"),
    "NaN means": (dict(k=2, dim=2, means=torch.full((2, 2), math.nan, dtype=torch.float64)), "NaN"),
    "negative weights": (dict(k=2, dim=2, weights=torch.tensor([2.0, -1.0], dtype=torch.float64)), "weights >= 0"),
    "covariance not positive definite": (
        dict(k=1, dim=2, covariances=-torch.eye(2, dtype=torch.float64)[None]),
        "not a valid GMM sampler",
    ),
    "1 001 components": (dict(k=1001, dim=2), "1000 components"),
    "scalar weights": (dict(k=1, dim=2, weights=torch.tensor(1.0, dtype=torch.float64)), "not a valid GMM sampler"),
}


@pytest.mark.parametrize("damage", list(GMM_DAMAGE))
def test_gmm_sampler_must_fit_the_model(run, damage):
    kwargs, words = GMM_DAMAGE[damage]
    write_gmm(run, **kwargs)
    model, _ = load_run(run)
    with pytest.raises(UserError) as caught:
        latent_sampler(model, "gmm", run)
    assert str(run / GMM_FILE) in str(caught.value) and words in str(caught.value)


def test_a_fitting_gmm_sampler_loads(run):
    write_gmm(run, k=2, dim=TINY["vae"]["latent_dim"])
    sampler = GaussianMixtureSampler.load(run / GMM_FILE, 2)
    assert sampler.sample(5, torch.Generator().manual_seed(0)).shape == (5, 2)


@pytest.mark.parametrize("root", ["/", "~", "{home}"], ids=["root", "tilde", "home"])
def test_dataset_at_the_root_or_home_is_refused_without_walking(root, monkeypatch):
    walked = []
    monkeypatch.setattr(data_module.os, "walk", lambda *a, **k: walked.append(a) or iter(()))
    path = root.replace("{home}", str(Path.home()))
    for load in (lambda: load_dataset(f"folder:{path}"), lambda: load_run_dataset({"dataset": f"folder:{path}"})):
        with pytest.raises(UserError, match="root or home folder"):
            load()
    assert walked == []


def test_stored_dataset_folder_is_refused_for_a_run(run, capsys, tmp_path):
    store_config(run, lambda i: i.update(dataset="folder:/") or i["train_config"].update(dataset="folder:/"))
    code, _, err = cli_in_process(capsys, "sample", str(run), "--n", "2", "--sampler", "gmm", "--out",
                                  str(tmp_path / "s.npy"))  # fmt: skip
    assert_one_line_error(code, err, "root or home folder")


def test_folder_with_too_many_entries_is_refused(made, monkeypatch):
    images, _ = made
    monkeypatch.setattr(data_module, "MAX_FOLDER_ENTRIES", 5)
    with pytest.raises(UserError, match="more than 5 files and folders"):
        load_dataset(f"folder:{images}", image_size=16, channels=1)


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=5),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=4), children, max_size=3),
    max_leaves=12,
)


@settings(max_examples=80, deadline=None, database=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_any_json_in_any_field_is_one_user_error_or_a_valid_info(made, tmp_path, data):
    """Property: replace one field of the stored run info (top level, model config or train config) with any
    JSON value; reading the run gives a ``UserError`` or an info whose capabilities can be derived, never
    another exception, and ``list_runs`` never raises."""
    run_dir = tmp_path / "fuzz" / "run"
    run_dir.mkdir(parents=True, exist_ok=True)
    with safe_open(str(made[1] / WEIGHTS), framework="pt") as fh:  # the good info, changed in one field
        info = json.loads(fh.metadata()["config"])
    where = data.draw(st.sampled_from([info, info["model_config"], info["train_config"]]))
    where[data.draw(st.sampled_from(sorted(where)))] = data.draw(JSON_VALUES)
    tensors = {"w": torch.zeros(1)}  # the weights do not matter for the run info
    (run_dir / WEIGHTS).write_bytes(save(tensors, metadata={"config": json.dumps(info)}))
    try:
        stored = read_run_info(run_dir)
    except UserError as exc:
        assert "\n" not in str(exc)
    else:
        assert capabilities_of(stored).latent_shape[0] <= 1024
    list_runs(run_dir.parent)
