"""Case 6 and the security rules: a pickle that runs code when unpickled, planted as ``resume.pt``, as
``model.safetensors`` or as the GMM sampler file, is refused and never runs. The code never unpickles."""

from __future__ import annotations

import ast
import io
import pickle

import pytest
import torch

from generators.checkpoints import RESUME, WEIGHTS, load_resume_state, load_run
from generators.errors import UserError
from generators.samplers import GMM_FILE, GaussianMixtureSampler

from .support import ROOT, assert_one_line_error, cli_in_process, tiny_flags


class Payload:
    """Unpickling this creates ``marker``: the visible side effect of code execution."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return open, (self.marker, "w")


def raw_pickle(marker) -> bytes:
    return pickle.dumps({"model": Payload(marker)})


def torch_zip(marker) -> bytes:
    buffer = io.BytesIO()
    torch.save({"model": Payload(marker), "step": 3}, buffer)
    return buffer.getvalue()


FORMATS = {"raw pickle": raw_pickle, "torch.save zip": torch_zip}


def test_the_payload_is_live(tmp_path):
    """Control: unpickled the unsafe way, the payload does create its marker (so the tests below can fail)."""
    marker = tmp_path / "marker"
    pickle.loads(raw_pickle(marker))
    assert marker.exists()


@pytest.fixture
def planted(made, run, tmp_path):
    """(image folder, a copy of the tiny run to plant files in, where a payload would leave its marker)."""
    return made[0], run, tmp_path / "PWNED"


@pytest.mark.parametrize("fmt", list(FORMATS))
def test_payload_as_resume_file_is_refused(planted, fmt):
    _, run_dir, marker = planted
    (run_dir / RESUME).write_bytes(FORMATS[fmt](marker))
    with pytest.raises(UserError, match="refused unread"):
        load_resume_state(run_dir)
    assert not marker.exists()


@pytest.mark.parametrize("fmt", list(FORMATS))
def test_payload_as_weights_file_is_refused(planted, fmt):
    _, run_dir, marker = planted
    (run_dir / WEIGHTS).write_bytes(FORMATS[fmt](marker))
    with pytest.raises(UserError, match="not a readable safetensors file"):
        load_run(run_dir)
    assert not marker.exists()


def test_payload_as_sampler_file_is_refused(planted):
    _, run_dir, marker = planted
    (run_dir / GMM_FILE).write_bytes(torch_zip(marker))
    with pytest.raises(UserError, match="not a valid GMM sampler file"):
        GaussianMixtureSampler.load(run_dir / GMM_FILE, 2)
    assert not marker.exists()


def test_resume_command_refuses_the_payload_in_one_line(planted, capsys):
    images, run_dir, marker = planted
    (run_dir / RESUME).write_bytes(raw_pickle(marker))
    code, _, err = cli_in_process(
        capsys,
        "train",
        *tiny_flags("vae"),
        "--dataset",
        f"folder:{images}",
        "--steps",
        "4",
        "--out-dir",
        str(run_dir.parent),
        "--run",
        "run",
        "--resume",
    )
    assert_one_line_error(code, err, str(run_dir / RESUME), "refused")
    assert not marker.exists()


def project_calls():
    """(place, dotted name, call node) of every function call in the project's code (not its tests)."""
    folders = [ROOT / name for name in ("generators", "evaluation", "dashboard", "benchmarks")]
    sources = [*(p for folder in folders if folder.is_dir() for p in folder.rglob("*.py")), ROOT / "app.py"]
    for path in sorted(p for p in sources if p.exists()):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call):
                yield f"{path.relative_to(ROOT)}:{node.lineno}", ast.unparse(node.func), node


def keyword(call: ast.Call, name: str):
    return next((k.value.value for k in call.keywords if k.arg == name and isinstance(k.value, ast.Constant)), None)


UNSAFE_CALLS = {
    "eval",
    "exec",
    "compile",
    "pickle.load",
    "pickle.loads",
    "pickle.Unpickler",
    "joblib.load",
    "dill.load",
    "dill.loads",
    "pd.read_pickle",
    "pandas.read_pickle",
    "yaml.load",
    "marshal.loads",
}


def test_no_unpickling_or_eval_anywhere_in_the_code():
    hits = [place for place, name, _ in project_calls() if name in UNSAFE_CALLS]
    assert hits == []


def test_every_torch_load_is_weights_only_and_no_numpy_pickles():
    loads = [(place, call) for place, name, call in project_calls() if name == "torch.load"]
    assert loads, "expected at least the resume loader"
    assert [place for place, call in loads if keyword(call, "weights_only") is not True] == []
    assert [
        place
        for place, name, call in project_calls()
        if name in ("np.load", "numpy.load")
        and keyword(call, "allow_pickle") is not False
        and any(k.arg == "allow_pickle" for k in call.keywords)
    ] == []


def test_planted_cifar10_pickles_are_never_unpickled(tmp_path):
    """torchvision's CIFAR-10 files are pickles: a --data-dir from someone else must be checked, not loaded.
    torchvision verifies each file's MD5 against the official one first; a payload fails that check."""
    from generators.data import load_dataset

    batches = tmp_path / "cifar-10-batches-py"
    batches.mkdir()
    marker = tmp_path / "PWNED"
    for name in [*(f"data_batch_{i}" for i in range(1, 6)), "test_batch", "batches.meta"]:
        (batches / name).write_bytes(raw_pickle(marker))
    with pytest.raises(UserError, match="could not load or download cifar10"):
        load_dataset("cifar10", tmp_path)
    assert not marker.exists()
