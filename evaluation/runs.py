"""A run folder as the analysis sees it: its name, folder and stored info (``Run``), read from folders a user
names (``read_runs``, or ``load_runs``: plugins loaded first) or from a folder of runs (``scan``).

The findings, the fairness table, the report's figures and its zip take these records. The slow steps they need
(loading the model, the dataset, the weights' hash, drawing samples, the nearest-neighbour gallery) are methods,
so a caller that keeps caches (the dashboard's ``Run`` subclasses this one) overrides them and every analysis
uses its caches.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from pathlib import Path

from generators.base import Capabilities
from generators.checkpoints import LOCK, WEIGHTS, list_runs, load_run, read_run_info
from generators.errors import UserError
from generators.registry import capabilities_of, load_plugins

EXTRACTORS_FOLDER = "_extractors"  # beside the runs: the evaluation's feature extractors
SANITY_FOLDER = "_sanity"  # beside the runs: stored sanity panels


@functools.lru_cache(maxsize=16)
def _model(run_dir: str, mtime: float):
    """The model of ``run_dir`` in eval mode (``mtime`` is only part of the key), loaded outside inference
    mode: a GAN's latent inversion needs gradients through these weights."""
    import torch

    with torch.inference_mode(False):
        model, _info = load_run(Path(run_dir), "cpu")
    return model


@functools.lru_cache(maxsize=256)
def _weights_hash(run_dir: str, mtime: float) -> str | None:
    from .store import weights_sha256

    return weights_sha256(run_dir)


@dataclass(frozen=True)
class Run:
    """One readable run folder."""

    name: str
    run_dir: Path
    info: dict

    @classmethod
    def read(cls, run_dir) -> Run:
        """The run in ``run_dir``; a missing, unfinished or corrupt folder, or a model this installation cannot
        build, is a one-line ``UserError``."""
        run_dir = Path(run_dir)
        run = cls(Path(os.path.abspath(run_dir)).name or str(run_dir), run_dir, read_run_info(run_dir))
        run.capabilities  # noqa: B018 - raises for a model or config this installation cannot build
        return run

    @property
    def model_name(self) -> str:
        return self.info["model"]

    @property
    def capabilities(self) -> Capabilities:
        return capabilities_of(self.info)

    @property
    def beta(self) -> float | None:
        """The weight of the KL term, for models that declare one (``Capabilities.beta``)."""
        value = self.info["model_config"].get("beta") if self.capabilities.beta else None
        return None if value is None else float(value)

    @property
    def label(self) -> str:
        """Short caption: run name, model and its most telling option."""
        extra = f", β={self.beta:g}" if self.beta is not None else ""
        return f"{self.name} ({self.capabilities.title}{extra})"

    @property
    def training(self) -> bool:
        return (self.run_dir / LOCK).exists()

    @property
    def weights_mtime(self) -> float:
        try:
            return (self.run_dir / WEIGHTS).stat().st_mtime
        except OSError:
            return 0.0

    # --- the slow steps: a caller with caches overrides these -------------------------------------------------

    def model(self):
        """The run's model in eval mode on the CPU."""
        return _model(str(self.run_dir), self.weights_mtime)

    def dataset(self):
        """The dataset the run was trained on, converted as it was for training (cached by generators)."""
        import torch

        from generators.data import load_run_dataset

        with torch.inference_mode(False):  # these images may be inverted with gradients
            return load_run_dataset(self.info)

    def weights_hash(self) -> str | None:
        """sha256 of the weights file (once per weights file: a run still training gets a new one)."""
        return _weights_hash(str(self.run_dir), self.weights_mtime)

    def sample_images(self, n: int, seed: int, sampler: str, choice: str):
        """(images in [0, 1], the grid's row length): see ``evaluation.pictures.sample_images``."""
        from .pictures import sample_images

        return sample_images(self, n, seed, sampler, choice)

    def gallery(self, seed: int, cache_dir):
        """(samples, nearest-neighbour rows, training images): see ``evaluation.pictures.gallery``."""
        from .pictures import gallery

        return gallery(self, seed, cache_dir)


def read_runs(run_dirs) -> list[Run]:
    """The runs in the folders given, in order, each once (the same folder twice, also as ``r`` and ``./r``, is
    one run); the first unreadable one is a one-line ``UserError``."""
    seen, runs = set(), []
    for run_dir in run_dirs:
        key = os.path.realpath(run_dir)
        if key in seen:
            continue
        seen.add(key)
        runs.append(Run.read(run_dir))
    names = [run.name for run in runs]
    duplicated = sorted({name for name in names if names.count(name) > 1})
    if duplicated:
        raise UserError(
            f"two run folders are named {duplicated[0]}; the findings and the report name runs by their folder, "
            "so give runs of one comparison different folder names"
        )
    return runs


def scan(folder, run=Run) -> tuple[list[Run], list[tuple[Path, str]]]:
    """The readable runs in ``folder`` (as ``run`` records) and the folders that are not, with why (a run of a
    model this installation does not know counts as unreadable: nothing could draw it)."""
    infos, broken = list_runs(Path(folder))
    runs = []
    for info in infos:
        record = run(Path(info["run_dir"]).name, Path(info["run_dir"]), info)
        try:
            record.capabilities  # noqa: B018 - raises for a model or config this installation cannot build
        except UserError as exc:
            broken.append((record.run_dir, str(exc)))
            continue
        runs.append(record)
    return runs, broken


def lab_folder(runs: list[Run]) -> Path:
    """The folder holding the first run: where its neighbours (a β sweep), the feature extractors
    (``_extractors``) and the stored sanity panels (``_sanity``) are."""
    return Path(runs[0].run_dir).resolve().parent if runs else Path("checkpoints")


def check_one_dataset(datasets) -> None:
    """Refuse runs of different data sets with one line: their numbers are measured on different images (and
    features), so no table, chart or finding compares them. ``datasets``: (run name, its data set) pairs."""
    groups: dict[str, list[str]] = {}
    for name, dataset in datasets:
        groups.setdefault(dataset, []).append(name)
    if len(groups) > 1:
        listed = "; ".join(f"{dataset}: {', '.join(names)}" for dataset, names in groups.items())
        raise UserError(
            f"the runs were trained on different data sets ({listed}); compare the runs of one data set at a time"
        )


def by_dataset(runs) -> dict[str, list]:
    """The runs grouped by the data set they were trained on, data sets in order of their first run."""
    groups: dict[str, list] = {}
    for run in runs:
        groups.setdefault(run.info["dataset"], []).append(run)
    return groups


def load_runs(run_dirs) -> list[Run]:
    """The runs of the folders given (plugins loaded first), all of one data set, or one ``UserError`` naming the
    bad folder or the data sets mixed."""
    if isinstance(run_dirs, (str, Path)):
        run_dirs = [run_dirs]
    run_dirs = [getattr(run, "run_dir", run) for run in run_dirs]
    if not run_dirs:
        raise UserError("give at least one run folder")
    load_plugins()
    runs = read_runs(run_dirs)
    check_one_dataset((run.name, run.info["dataset"]) for run in runs)
    return runs
