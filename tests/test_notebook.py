"""examples/compare.ipynb runs from top to bottom (nbclient, a real kernel), so it can never rot; the committed
copy holds no outputs."""

from __future__ import annotations

import json
import os
import shutil

import pytest

from tests.helpers import ROOT

NOTEBOOK = ROOT / "examples" / "compare.ipynb"
TIMEOUT_S = 600  # per cell; the whole notebook takes about a minute on a laptop CPU


def test_the_committed_notebook_has_no_outputs():
    notebook = json.loads(NOTEBOOK.read_text())
    code = [cell for cell in notebook["cells"] if cell["cell_type"] == "code"]
    assert code
    for cell in code:
        assert cell.get("outputs") == [] and cell.get("execution_count") is None, cell["source"][:80]
    assert all(not cell.get("attachments") for cell in notebook["cells"])


def test_the_notebook_runs(tmp_path, monkeypatch):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    extractors = tmp_path / "_extractors"
    shutil.copytree(ROOT / "checkpoints" / "_extractors" / "mnist5k", extractors / "mnist5k")
    monkeypatch.setenv("GENLAB_EXAMPLE_RUNS", str(tmp_path / "runs"))
    monkeypatch.setenv("GENLAB_EXAMPLE_EXTRACTORS", str(extractors))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    client = nbclient.NotebookClient(
        notebook, timeout=TIMEOUT_S, kernel_name="python3", resources={"metadata": {"path": str(NOTEBOOK.parent)}}
    )
    client.execute()
    outputs = [output for cell in notebook.cells if cell.cell_type == "code" for output in cell.outputs]
    assert not [output for output in outputs if output.output_type == "error"]
    text = "\n".join(
        str(output.get("text", "")) + str(output.get("data", {}).get("text/plain", "")) for output in outputs
    )
    assert "(16, 1, 28, 28)" in text and "uint8" in text  # the samples
    assert "fid" in text and "'samples'" in text  # the table and the figures' names
    markdown = [output.data["text/markdown"] for output in outputs if "text/markdown" in output.get("data", {})]
    assert any(part.startswith("# Findings") for part in markdown), "no findings shown"
    shown = [set(output.get("data", {})) for output in notebook.cells[-1].outputs]
    assert any({"application/vnd.plotly.v1+json", "text/html"} & kinds for kinds in shown), "no figure shown"
    assert (tmp_path / "runs" / "tiny-vae" / "metrics.json").is_file()
