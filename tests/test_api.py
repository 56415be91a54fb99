"""The Python API (``genlab``) checks its input as the command line does — one-line ``UserError``s — and gives
what the command line gives (the notebook test runs the whole path: train, sample, evaluate, findings, figures)."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

import genlab
from generators.errors import UserError
from tests.helpers import ROOT


def one_line(exc: pytest.ExceptionInfo) -> str:
    message = str(exc.value)
    assert "\n" not in message and message, message
    return message


def test_import_genlab_is_quick_and_lazy():
    code = "import sys, genlab; print('torch' in sys.modules, sorted(genlab.__all__))"
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.stdout.startswith("False"), result.stdout + result.stderr
    for name in ("train", "load", "evaluate", "findings", "figures", "report", "Run", "UserError"):
        assert name in result.stdout


def test_bad_input_raises_the_command_lines_one_line_error(tmp_path, dashboard_runs):
    with pytest.raises(UserError) as exc:
        genlab.train("no-such-model", steps=1, out_dir=tmp_path)
    assert "no-such-model" in one_line(exc)
    with pytest.raises(UserError) as exc:
        genlab.train("vae", steps=0, out_dir=tmp_path)
    assert "--steps" in one_line(exc)
    with pytest.raises(UserError) as exc:
        genlab.train("vae", steps=1, out_dir=tmp_path, no_such_option=3)
    assert "--no-such-option" in one_line(exc)
    with pytest.raises(UserError) as exc:
        genlab.load(tmp_path / "missing")
    assert "does not exist" in one_line(exc)
    run = genlab.load(dashboard_runs / "vae-mnist5k")
    with pytest.raises(UserError) as exc:
        run.sample(0)
    assert "--n" in one_line(exc)
    with pytest.raises(UserError) as exc:
        run.sample(4, label=3)
    assert "class-conditional" in one_line(exc)
    with pytest.raises(UserError) as exc:
        run.sample(4, sampler="nope")
    assert "--sampler" in one_line(exc)
    with pytest.raises(UserError) as exc:
        genlab.report([run], dashboard_runs / "vae-mnist5k" / "report.zip")
    assert "inside the run folder" in one_line(exc)
    with pytest.raises(UserError) as exc:
        genlab.evaluate([run], n=0)
    assert "--n" in one_line(exc)
    assert not list(tmp_path.iterdir())  # nothing was trained or written


def test_sample_is_what_the_command_line_writes(dashboard_runs, tmp_path):
    from generators.__main__ import main

    run = genlab.load(dashboard_runs / "dcgan-mnist5k")
    images = run.sample(12, seed=5)
    assert images.dtype == np.uint8 and images.shape == (12, 1, 28, 28)
    assert main(["sample", str(run.run_dir), "--n", "12", "--seed", "5", "--out", str(tmp_path / "s.npy")]) == 0
    np.testing.assert_array_equal(images, np.load(tmp_path / "s.npy"))
    assert (run.sample(12, seed=5) == images).all() and not (run.sample(12, seed=6) == images).all()


def test_findings_are_the_command_lines(dashboard_runs):
    from evaluation.analysis import tested_claims
    from evaluation.runs import read_runs

    dirs = [dashboard_runs / name for name in ("vae-mnist5k", "dcgan-mnist5k", "ae-mnist5k")]
    found = genlab.findings(dirs)
    assert [(f.claim, f.verdict) for f in found] == [(f.claim, f.verdict) for f in tested_claims(read_runs(dirs))]
    assert found._repr_markdown_().startswith("# Findings")
