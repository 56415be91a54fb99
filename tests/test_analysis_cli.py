"""The analysis lives in evaluation/ (no Streamlit there), and the command line gives what the dashboard gives:
``python -m evaluation findings`` the same claims, ``python -m evaluation report`` the same zip as the button."""

from __future__ import annotations

import hashlib
import io
import json
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.helpers import ROOT, assert_one_line_error, run_cli

EVALUATION = ROOT / "evaluation"
RUN_NAMES = ("vae-mnist5k", "vae-beta4-mnist5k", "ae-mnist5k", "dcgan-mnist5k")  # conftest's tiny runs


def test_no_module_in_evaluation_imports_streamlit():
    pattern = re.compile(r"^\s*(import\s+streamlit|from\s+streamlit[\s.])", re.MULTILINE)
    offenders = [path.name for path in EVALUATION.rglob("*.py") if pattern.search(path.read_text())]
    assert offenders == []
    modules = [f"evaluation.{path.stem}" for path in sorted(EVALUATION.glob("*.py")) if path.stem != "__main__"]
    code = "import importlib, sys\n" + "".join(f"importlib.import_module({m!r})\n" for m in modules)
    code += "print('streamlit' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False", "importing evaluation/ loaded streamlit"


def figure_fingerprint(figure, fmt: str) -> bytes:
    """Stands in for the kaleido export (pixels are other tests' business): the figure's full JSON, hashed, so
    two zips hold equal 'figures' only when the same figures were made."""
    return f"{fmt}:{hashlib.sha256(figure.to_json().encode()).hexdigest()}".encode()


@pytest.fixture(scope="module")
def two_zips(dashboard_runs, tmp_path_factory):
    """(the dashboard's zip, the command line's zip) of the four tiny runs, seed 3, 16 samples per grid."""
    from dashboard.report import build_zip
    from dashboard.state import CHECKPOINTS_ENV, Selection, scan_runs
    from evaluation import bundle
    from evaluation.__main__ import main

    out = tmp_path_factory.mktemp("report") / "report.zip"
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(bundle, "figure_bytes", figure_fingerprint)
        patch.setenv(CHECKPOINTS_ENV, str(dashboard_runs))
        by_name = {run.name: run for run in scan_runs()[0]}
        selection = Selection(tuple(by_name[name] for name in RUN_NAMES), seed=3, n_samples=16, scale=1)
        page = zipfile.ZipFile(io.BytesIO(build_zip(selection)))
        args = ["report", *(str(dashboard_runs / name) for name in RUN_NAMES), "--out", str(out)]
        assert main([*args, "--seed", "3", "--samples", "16"]) == 0
    return page, zipfile.ZipFile(out)


def test_the_command_line_report_is_the_dashboards_zip(two_zips):
    page, cli = two_zips
    names = sorted(page.namelist())
    assert names == sorted(cli.namelist())
    assert {"tables/metrics.csv", "tables/summary.tex", "tables/fairness.csv", "findings.md", "methods.md"} <= set(
        names
    )
    assert any(name.startswith("figures/training_") for name in names) and "figures/samples.png" in names
    for name in names:  # tables and texts identical; figures made by the same code from the same data; grids
        assert page.read(name) == cli.read(name), name


def test_findings_command_prints_the_dashboards_claims(dashboard_runs, capsys):
    from evaluation import findings
    from evaluation.__main__ import main
    from evaluation.rows import comparison_rows
    from evaluation.runs import read_runs

    dirs = [str(dashboard_runs / name) for name in RUN_NAMES]
    runs = read_runs(dirs)
    expected = findings.assess(runs, comparison_rows(runs))
    assert main(["findings", *dirs, "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["runs"] == list(RUN_NAMES)
    assert [(f["claim"], f["verdict"]) for f in printed["findings"]] == [(f.claim, f.verdict) for f in expected]
    assert main(["findings", *dirs, "--markdown"]) == 0
    assert capsys.readouterr().out == findings.to_markdown(expected, runs)
    assert main(["findings", *dirs]) == 0
    text = capsys.readouterr().out
    assert all(f"[{f.verdict}] {f.claim}" in text for f in expected)


def test_bad_input_is_one_line_and_exit_2(dashboard_runs, tmp_path, capsys):
    from evaluation.__main__ import main

    run = str(dashboard_runs / "vae-mnist5k")
    not_zip = tmp_path / "notes.zip"
    not_zip.write_text("my notes")
    cases = [
        ("does not exist", ["findings", str(tmp_path / "missing")]),
        ("not a finished run folder", ["report", str(tmp_path), "--out", str(tmp_path / "r.zip")]),
        ("inside the run folder", ["report", run, "--out", f"{run}/report.zip"]),
        ("add --force", ["report", run, "--out", str(not_zip)]),
        ("does not exist", ["report", run, "--out", str(tmp_path / "no" / "r.zip")]),
        ("--out", ["report", run]),
        ("not allowed with", ["findings", run, "--json", "--markdown"]),
    ]
    for mentions, argv in cases:
        assert main(argv) == 2, argv
        lines = capsys.readouterr().err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), (argv, lines)
        assert mentions in lines[0], (mentions, lines[0])
    assert not_zip.read_text() == "my notes"
    assert not (Path(run) / "report.zip").exists()


def test_a_missing_run_is_one_line_from_a_real_process(tmp_path):
    result = run_cli("evaluation", "report", str(tmp_path / "nope"), "--out", str(tmp_path / "r.zip"))
    assert_one_line_error(result, mentions="does not exist")
    assert not (tmp_path / "r.zip").exists()


def test_runs_of_two_data_sets_are_refused_with_one_line(mixed_runs, tmp_path, capsys):
    """Findings, the report and the metric table never put a sprites run beside a digit run."""
    from evaluation.__main__ import main

    runs = [str(mixed_runs / name) for name in ("vae-mnist5k", "vae-sprites")]
    table = tmp_path / "t.json"
    for argv in (
        ["findings", *runs],
        ["report", *runs, "--out", str(tmp_path / "r.zip")],
        [*runs, "--json", str(table)],
    ):
        assert main(argv) == 2, argv
        lines = capsys.readouterr().err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), (argv, lines)
        assert "different data sets (mnist5k: vae-mnist5k; sprites: vae-sprites)" in lines[0], lines[0]
    assert not (tmp_path / "r.zip").exists() and not table.exists()
    assert main(["findings", runs[1]]) == 0  # one data set alone is fine
