"""How a row was made, and whether several rows may be compared.

Every stored row carries ``protocol``: the extractor (its id includes the hash of its weights), the
reference split and sizes, the number of samples, the sampler, the sampling seeds, the bootstrap size, the
run's training budget (step, seconds) and the code version. Tables, charts and findings combine only rows
whose protocols agree; ``compare_protocols`` says which fields differ.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from generators import __version__

EVALUATION_VERSION = 4  # bump when a metric's definition changes: rows of older versions are not comparable
REFERENCE = "train split"
# fields that must agree for a table of different models; a sweep over one recipe also needs TRAINING_FIELDS
EVALUATION_FIELDS = (
    "extractor_id",
    "reference",
    "n_real",
    "n_test",
    "n_fake",
    "sampler",
    "seeds",
    "bootstrap",
    "iwae_k",
    "inversion_steps",
    "code_version",
    "evaluation_version",
)
TRAINING_FIELDS = ("run_step", "run_seconds")


def make_protocol(row: dict, info: dict, *, iwae_k: int, inversion_steps: int, bootstrap: int) -> dict:
    """The protocol of a row that already holds its sizes, sampler, seeds and extractor."""
    return {
        "extractor_id": row["extractor_id"],
        "reference": REFERENCE,
        "n_real": row["n_real"],
        "n_test": row["n_test"],
        "n_fake": row["n_fake"],
        "sampler": row["sampler"],
        "seeds": list(row["seeds"]),
        "bootstrap": bootstrap,
        "iwae_k": iwae_k,
        "inversion_steps": inversion_steps,
        "run_step": info.get("step"),
        "run_seconds": info.get("seconds"),
        "code_version": __version__,
        "evaluation_version": EVALUATION_VERSION,
    }


@dataclass(frozen=True)
class ProtocolCheck:
    """``same``: every compared field agrees; ``differing``: field -> the distinct values seen, in row order."""

    same: bool
    differing: dict[str, list] = field(default_factory=dict)

    def describe(self) -> str:
        if self.same:
            return "all rows share one protocol"
        return "; ".join(f"{name} differs ({', '.join(map(str, values))})" for name, values in self.differing.items())


def compare_protocols(rows: list[dict], *, include_training: bool = False) -> ProtocolCheck:
    """Whether ``rows`` share one evaluation protocol (and, with ``include_training``, one training budget).

    A row without a stored protocol (made by an older version) differs from every row that has one.
    """
    fields = EVALUATION_FIELDS + (TRAINING_FIELDS if include_training else ())
    differing = {}
    for name in fields:
        values = []
        for row in rows:
            value = (row.get("protocol") or {}).get(name, "unknown")
            if value not in values:
                values.append(value)
        if len(values) > 1:
            differing[name] = values
    return ProtocolCheck(not differing, differing)
