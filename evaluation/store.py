"""The rows stored in a run's ``metrics.json``: keyed by settings, tied to the weights that made them.

A run folder is untrusted input: metrics.json is read only when it is a regular file under ``MAX_BYTES``,
and a row whose values have the wrong types is dropped (it is recomputed), never shown. Each row stores
``weights_sha256``, the hash of the ``model.safetensors`` it was computed from, so a row made before a
``--resume`` is recognised as stale (``is_current``).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from generators.checkpoints import WEIGHTS, atomic_write_bytes, file_sha256, read_json_file
from generators.checkpoints import read_regular_file as checked_read
from generators.errors import UserError

from .metric_specs import METRICS
from .protocol import EVALUATION_VERSION

METRICS_FILE = "metrics.json"
MAX_BYTES = 16 * 2**20
HASH_CHUNK = 2**20
TEXT_KEYS = (
    "run",
    "model",
    "dataset",
    "sampler",
    "extractor_id",
    "recon_method",
    "codes_method",
    "likelihood",
    "anomaly_score",
    "weights_sha256",
)
LIST_KEYS = {
    "seeds": int,
    "warnings": str,
    "class_histogram": float,
    "kl_per_dim": float,
    "mean_variance_per_dim": float,
}
INTERVAL_SUFFIXES = ("_std", "_ci_low", "_ci_high")
DICT_KEYS = ("protocol", "capabilities")


def settings_key(
    *, n: int, seeds, sampler: str, extractor_id: str, iwae_k: int, inversion_steps: int, bootstrap: int
) -> str:
    """The key of a stored row: every setting that changes a number, and the version of the metrics' code."""
    seed_text = ",".join(str(s) for s in seeds)
    return (
        f"n={n}|seeds={seed_text}|sampler={sampler}|extractor={extractor_id}|iwae_k={iwae_k}"
        f"|inversion_steps={inversion_steps}|bootstrap={bootstrap}|version={EVALUATION_VERSION}"
    )


def read_regular_file(path: Path, max_bytes: int = MAX_BYTES) -> bytes | None:
    """The bytes of ``path`` if it is a regular file of at most ``max_bytes``, None otherwise: the project's one
    bounded, regular-file-only reader (``generators.checkpoints.read_regular_file``), with its refusal as None
    (an unreadable metrics.json is recomputed, not an error)."""
    try:
        return checked_read(Path(path), max_bytes)
    except UserError:
        return None


def weights_sha256(run_dir) -> str | None:
    """sha256 of the run's weights file (about 20 ms for the largest default run); None if it is not a readable
    regular file."""
    return file_sha256(Path(run_dir) / WEIGHTS, HASH_CHUNK)


def is_current(row: dict, run_dir) -> bool:
    """Whether ``row`` was computed from the weights now in ``run_dir`` (False for rows without a hash)."""
    stored = row.get("weights_sha256")
    return stored is not None and stored == weights_sha256(run_dir)


def _is_number(value) -> bool:
    return value is None or (isinstance(value, (int, float)) and not isinstance(value, bool))


def _numeric_key(key: str) -> bool:
    base = next((key[: -len(s)] for s in INTERVAL_SUFFIXES if key.endswith(s)), key)
    return base in METRICS


def valid_row(row) -> bool:
    """Whether a stored row has the types the tables and the dashboard rely on."""
    if not isinstance(row, dict):
        return False
    for key, value in row.items():
        if _numeric_key(key) and not _is_number(value):
            return False
        if key in TEXT_KEYS and not (value is None or isinstance(value, str)):
            return False
        if key in LIST_KEYS:
            kind = (int, float) if LIST_KEYS[key] is float else LIST_KEYS[key]
            if value is not None and not (
                isinstance(value, list) and all(isinstance(v, kind) and not isinstance(v, bool) for v in value)
            ):
                return False
        if key in DICT_KEYS and not (value is None or isinstance(value, dict)):
            return False
        if key == "fid_curve" and not (value is None or _valid_curve(value)):
            return False
    return True


def _valid_curve(points) -> bool:
    return isinstance(points, list) and all(
        isinstance(p, dict) and all(_is_number(p.get(k)) for k in ("n", "fid", "ci_low", "ci_high")) for p in points
    )


def load_metrics(run_dir) -> dict[str, dict]:
    """The valid rows of ``<run_dir>/metrics.json`` by settings key; {} when there are none or it is unreadable."""
    data = read_regular_file(Path(run_dir) / METRICS_FILE)
    if data is None:
        return {}
    try:
        stored = json.loads(data)
    except (ValueError, RecursionError):
        return {}
    if not isinstance(stored, dict):
        return {}
    return {k: v for k, v in stored.items() if isinstance(k, str) and valid_row(v)}


def _plain(value):
    """JSON has no NaN or infinity: they are stored as null (inf only where a ratio divides by zero)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None if math.isnan(value) else value
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def store_row(run_dir, key: str, row: dict) -> dict:
    """Store ``row`` under ``key`` (beside the other valid rows) and return it as it will be read back."""
    row = json.loads(json.dumps(_plain(row)))
    if not valid_row(row):
        raise ValueError(f"evaluation made a row that its own reader would reject: {key}")  # a bug, not bad input
    stored = load_metrics(run_dir)
    stored[key] = row
    atomic_write_bytes(Path(run_dir) / METRICS_FILE, json.dumps(stored, indent=1).encode())
    return row


@dataclass(frozen=True)
class ResultsFile:
    """A run's file of experiment results (augmentation.json, compression.json): ``{"format", ..., "entries":
    {key: entry}}``, each entry filed under ``key(entry)`` (its settings) and carrying the ``weights_sha256`` of the
    weights that made it. The file may be hostile: an entry that fails ``valid``, sits under another key or came
    from other weights is ignored (recomputed), and an unreadable file reads as empty."""

    name: str
    key: Callable[[dict], str]
    valid: Callable[[dict], bool]
    header: dict
    max_bytes: int = 4 * 2**20

    def read(self, run_dir, sha: str | None = None) -> dict[str, dict]:
        """The usable entries by key, of the weights now in ``run_dir`` (``sha``: their hash, computed when None)."""
        path = Path(run_dir) / self.name
        if not path.is_file():
            return {}
        try:
            stored = read_json_file(path, self.max_bytes)
        except UserError:
            return {}
        entries = stored.get("entries") if isinstance(stored, dict) else None
        if not isinstance(entries, dict):
            return {}
        sha = sha or weights_sha256(run_dir)
        return {
            key: entry
            for key, entry in entries.items()
            if isinstance(entry, dict)
            and self.valid(entry)
            and entry.get("weights_sha256") == sha
            and key == self.key(entry)
        }

    def add(self, run_dir, entries: list[dict], sha: str) -> None:
        """Add ``entries`` (atomically) beside the stored entries of other settings; older weights' are dropped."""
        stored = self.read(run_dir, sha)
        stored.update({self.key(entry): {**entry, "weights_sha256": sha} for entry in entries})
        body = {**self.header, "entries": dict(sorted(stored.items()))}
        atomic_write_bytes(Path(run_dir) / self.name, json.dumps(body, indent=1, allow_nan=False).encode())
