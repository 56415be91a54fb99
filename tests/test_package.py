"""The installable package: a wheel built from this tree installs, and its ``genlab`` command works from another
folder on the installed copy, never the repository's: --help, errors, train and list, and ``genlab app`` answers
HTTP. pyproject.toml declares the same requirements as requirements.txt (torch and torchvision pinned alike).

The wheel is installed with ``pip install --no-deps --target``, run by this interpreter (its torch & co. stay
where they are), so the check downloads nothing; ``pip install .`` into a fresh venv does the same plus the
dependencies (README, "Install as a package").
"""

from __future__ import annotations

import filecmp
import os
import shutil
import socket
import subprocess
import sys
import time
import tomllib
import urllib.request
import zipfile
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from tests.helpers import assert_one_line_error, tiny_flags

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("generators", "evaluation", "dashboard", "genlab")
BUILD_FILES = ("pyproject.toml", "README.md")
PINNED = {"torch": "==2.14.1", "torchvision": "==0.29.1"}
COMMANDS = (
    "train",
    "sample",
    "list",
    "sweep",
    "evaluate",
    "findings",
    "report",
    "sanity",
    "augment",
    "compress",
    "app",
)
APP_START_S = 60


def requirements(lines) -> dict[str, str]:
    """name -> the requirement's text, normalised (comments and blank lines dropped)."""
    parsed = [Requirement(line.split("#", 1)[0].strip()) for line in lines if line.split("#", 1)[0].strip()]
    return {r.name.lower(): str(r) for r in parsed}


def test_pyproject_declares_the_requirements_txt_dependencies():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = requirements(project["dependencies"])
    assert declared == requirements((ROOT / "requirements.txt").read_text().splitlines())
    for name, pin in PINNED.items():
        assert declared[name] == f"{name}{pin}"
    assert project["scripts"] == {"genlab": "genlab.cli:main"}


def test_server_settings_are_the_repository_s():
    """``genlab app`` serves genlab/server/app.py, whose Streamlit settings sit beside it: the same file."""
    assert filecmp.cmp(ROOT / ".streamlit" / "config.toml", ROOT / "genlab/server/.streamlit/config.toml", False)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """A wheel of this tree, built from a copy (setuptools writes build/ and egg-info beside the sources)."""
    src = tmp_path_factory.mktemp("src")
    for name in BUILD_FILES:
        shutil.copy2(ROOT / name, src / name)
    for name in PACKAGES:
        shutil.copytree(ROOT / name, src / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    out = tmp_path_factory.mktemp("wheel")
    command = [
        sys.executable,
        "-m",
        "pip",
        "wheel",
        "-q",
        "--no-deps",
        "--no-build-isolation",
        "-w",
        str(out),
        str(src),
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    (built,) = out.glob("genlab-*.whl")
    return built


@pytest.fixture(scope="module")
def site(wheel, tmp_path_factory) -> Path:
    """The wheel installed into a folder of its own (its console script in ``bin/``)."""
    target = tmp_path_factory.mktemp("site")
    command = [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target), str(wheel)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    return target


def environment(site: Path) -> dict[str, str]:
    """The installed copy first on the path, the repository nowhere on it."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("GENLAB_")}
    return {**env, "PYTHONPATH": str(site), "PYTHONNOUSERSITE": "1"}


def genlab(site: Path, *args: str, cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    """The installed ``genlab`` console script, as a user types it in ``cwd``."""
    return subprocess.run(
        [str(site / "bin" / "genlab"), *args],
        cwd=cwd,
        env=environment(site),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_wheel_declares_the_console_script_and_ships_the_dashboard(wheel):
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        (entry_points,) = [n for n in names if n.endswith(".dist-info/entry_points.txt")]
        assert "[console_scripts]\ngenlab = genlab.cli:main" in archive.read(entry_points).decode()
        (metadata,) = [n for n in names if n.endswith(".dist-info/METADATA")]
        requires = [line for line in archive.read(metadata).decode().splitlines() if line.startswith("Requires-Dist")]
    for name, pin in PINNED.items():
        assert f"Requires-Dist: {name}{pin}" in requires
    for path in (
        "genlab/cli.py",
        "genlab/server/app.py",
        "genlab/server/.streamlit/config.toml",
        "dashboard/page.py",
        "dashboard/warmup.py",
        "generators/__main__.py",
        "evaluation/__main__.py",
    ):
        assert path in names
    assert not any(n.startswith(("tests/", "benchmarks/", "checkpoints/")) for n in names)


def test_installed_copy_is_the_one_imported(site, tmp_path):
    code = "import dashboard, evaluation, generators, genlab.cli; print(genlab.cli.__file__, generators.__file__)"
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, env=environment(site), capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    for path in result.stdout.split():
        assert Path(path).resolve().is_relative_to(site.resolve()), path


def test_genlab_help_lists_every_command_and_errors_are_one_line(site, tmp_path):
    result = genlab(site, "--help", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    for command in COMMANDS:
        assert f"\n  {command} " in result.stdout
    assert_one_line_error(genlab(site, cwd=tmp_path), mentions="a command is needed")
    assert_one_line_error(genlab(site, "trian", cwd=tmp_path), mentions="unknown command 'trian'")
    assert_one_line_error(genlab(site, "app", "--port", "0", cwd=tmp_path), mentions="--port")
    assert_one_line_error(genlab(site, "evaluate", cwd=tmp_path), mentions="RUN_DIR")  # python -m evaluation's


def test_genlab_sweep_runs_the_generators_sweep_or_says_it_is_not_there(site, tmp_path):
    from genlab.cli import has_subcommand

    result = genlab(site, "sweep", "--help", cwd=tmp_path)
    if has_subcommand("generators", "sweep"):
        assert result.returncode == 0, result.stderr
    else:
        assert_one_line_error(result, mentions="not available yet")


def test_genlab_app_serves_the_runs_folder_of_the_current_folder_by_absolute_path(tmp_path, monkeypatch):
    """The dashboard's Train tab starts jobs in another working folder: the runs folder it gets is absolute."""
    from genlab import cli

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv(cli.CHECKPOINTS_ENV, "before")  # app_command sets it; monkeypatch restores it afterwards
    command = cli.app_command(["--port", "8600", "--server.address", "127.0.0.1"])
    assert command[1:5] == ["-m", "streamlit", "run", str(cli.SERVER)]
    assert command[5:] == ["--server.port", "8600", "--server.address", "127.0.0.1"]
    assert os.environ[cli.CHECKPOINTS_ENV] == str(tmp_path.resolve() / "checkpoints")
    cli.app_command(["--out-dir", "elsewhere/runs"])
    assert os.environ[cli.CHECKPOINTS_ENV] == str(tmp_path.resolve() / "elsewhere" / "runs")


def test_genlab_train_and_list_write_to_checkpoints_of_the_current_folder(site, tmp_path):
    result = genlab(
        site, "train", "vae", "--steps", "2", "--batch-size", "16", "--quiet", *tiny_flags("vae"), cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "checkpoints" / "vae-mnist5k" / "model.safetensors").is_file()
    listing = genlab(site, "list", cwd=tmp_path)
    assert listing.returncode == 0, listing.stderr
    assert "vae-mnist5k" in listing.stdout


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("localhost", 0))
        return sock.getsockname()[1]


def test_genlab_app_serves_from_another_folder(site, tmp_path):
    port = free_port()
    log = tmp_path / "app.log"
    with open(log, "wb") as out:
        server = subprocess.Popen(
            [str(site / "bin" / "genlab"), "app", "--port", str(port)],
            cwd=tmp_path,
            env=environment(site),
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + APP_START_S
        health = None
        while time.monotonic() < deadline and server.poll() is None:
            try:
                with urllib.request.urlopen(f"http://localhost:{port}/_stcore/health", timeout=2) as response:
                    health = response.read().decode()
                    break
            except OSError:
                time.sleep(0.5)
        assert health == "ok", log.read_text()
        with urllib.request.urlopen(f"http://localhost:{port}/", timeout=10) as response:
            assert response.status == 200
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
