"""The classic VAE-vs-GAN claims, each tested on the numbers measured on the selected runs (the dashboard's
Findings tab, ``python -m evaluation findings RUN…``, the report zip's findings.md).

A claim is "supported" only when the 95 % interval of every difference it rests on excludes zero in its favour
(see ``evaluation.comparison``); "contradicted" when any of them excludes zero the other way; otherwise "no clear
difference". Only when nothing could be tested (no numbers, or no intervals) is it "not measured yet", saying
what is missing. Runs are picked by what the models can do (their capabilities), never by their names.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

import pandas as pd

from generators.checkpoints import read_history
from generators.data import has_known_factors

from .comparison import (
    CONTRADICTED,
    NO_CLEAR,
    NOT_MEASURED,
    SUPPORTED,
    UNTESTED,
    combine_verdicts,
    compare,
    verdict_of,
)
from .diagnostics import HISTORY_TAIL_FRACTION, loss_fluctuation
from .groups import group_rows
from .likelihood import ACTIVE_UNIT_THRESHOLD
from .runs import Run
from .sweeps import data_needed, setting_sweeps, sweeps

FAINT_KL_NATS = 0.1  # a dimension carrying less KL than this says almost nothing about the image
ROLES = {  # which selected runs play "the GAN", "the VAE" and "the autoencoder" in the textbook claims
    "GAN": lambda caps: caps.discriminator,
    "VAE": lambda caps: caps.posterior,
    "autoencoder": lambda caps: caps.encoder and not caps.posterior,
}


PLAIN = {"autoencoder": "plain autoencoder"}


@dataclass(frozen=True)
class Finding:
    claim: str
    verdict: str
    evidence: str


def pick(runs: list[Run], rows: dict[str, dict], role: str) -> tuple[Run, dict] | None:
    """The first selected run playing ``role`` and its metric row: an unconditional one first (the textbook
    claims are about plain models), and for the VAE the one with β closest to 1."""
    candidates = [run for run in runs if ROLES[role](run.capabilities)]
    candidates.sort(
        key=lambda run: (run.capabilities.conditional, abs((run.beta if run.beta is not None else 1.0) - 1))
    )
    return (candidates[0], rows.get(candidates[0].name, {})) if candidates else None


def _claim(claim: str, a, b, keys: tuple[str, ...], roles: tuple[str, str]) -> Finding:
    """``a`` beats ``b`` on every metric in ``keys`` (each in its own direction)."""
    if a is None or b is None:
        return Finding(
            claim,
            NOT_MEASURED,
            f"needs a {roles[0]} and a{'n' if roles[1][0] in 'aeiou' else ''} {roles[1]} among the selected runs.",
        )
    (run_a, row_a), (run_b, row_b) = a, b
    comparisons = [compare(row_a, row_b, key) for key in keys]
    names = (row_a.get("run", run_a.name), row_b.get("run", run_b.name))
    evidence = f"{names[0]} vs {names[1]}: " + "; ".join(c.describe() for c in comparisons)
    if any(c.outcome == UNTESTED for c in comparisons):
        evidence += " — compute the metrics (the Metrics tab, or `python -m evaluation RUN…`) to test it"
    return Finding(claim, verdict_of(comparisons), evidence + ".")


def gan_sharper(runs, rows) -> Finding:
    return _claim(
        "GAN samples are sharper than VAE samples.",
        pick(runs, rows, "GAN"),
        pick(runs, rows, "VAE"),
        ("sharpness",),
        ("GAN", "VAE"),
    )


def vae_covers_more_modes(runs, rows) -> Finding:
    return _claim(
        "The VAE covers more modes of the data than the GAN (higher recall and coverage).",
        pick(runs, rows, "VAE"),
        pick(runs, rows, "GAN"),
        ("recall", "coverage"),
        ("VAE", "GAN"),
    )


def vae_smoother(runs, rows) -> Finding:
    return _claim(
        "The VAE's latent space interpolates more smoothly than the plain autoencoder's.",
        pick(runs, rows, "VAE"),
        pick(runs, rows, "autoencoder"),
        ("smoothness",),
        ("VAE", "autoencoder"),
    )


def beta_pair(runs) -> tuple | None:
    """The smallest and the largest β of one sweep among ``runs`` (one model, one recipe, only β differs: a
    conditional VAE or another latent size never stands in), the sweep with the most β values; None without two."""
    datasets = {run.info.get("dataset") for run in runs}
    found = [sweep for dataset in datasets for sweep in sweeps(runs, dataset) if len(sweep.runs) >= 2]
    if not found:
        return None
    by_beta = max(found, key=lambda sweep: len(sweep.runs)).runs
    return by_beta[min(by_beta)], by_beta[max(by_beta)]


BETA_NEEDS = "needs two VAE runs of one recipe with different β (select them, or use the Sweeps tab)."


def beta_prior_samples(runs, rows) -> Finding:
    """The largest β against the smallest of one recipe: a more regular latent space, better prior samples."""
    claim = "A larger β gives a more regular latent space: better prior samples (lower FID)."
    pair = beta_pair(runs)
    if pair is None:
        return Finding(claim, NOT_MEASURED, BETA_NEEDS)
    low, high = pair
    row_low, row_high = rows.get(low.name, {}), rows.get(high.name, {})
    prior = compare(row_high, row_low, "fid")
    evidence = (
        f"β={high.beta:g} ({high.name}) vs β={low.beta:g} ({low.name}): {prior.describe()}; "
        f"{latent_use(row_high)} vs {latent_use(row_low)}"
    )
    return Finding(claim, verdict_of([prior]), evidence + ".")


def beta_costs_reconstruction(runs, rows) -> Finding:
    """The other side of the trade-off: the smaller β of one recipe reconstructs test images better."""
    claim = "A larger β costs reconstruction quality (higher reconstruction error)."
    pair = beta_pair(runs)
    if pair is None:
        return Finding(claim, NOT_MEASURED, BETA_NEEDS)
    low, high = pair
    recon = compare(rows.get(low.name, {}), rows.get(high.name, {}), "recon_mse")
    return Finding(
        claim, verdict_of([recon]), f"β={low.beta:g} ({low.name}) vs β={high.beta:g} ({high.name}): {recon.describe()}."
    )


def latent_use(row: dict) -> str:
    """How much of its latent space a VAE uses, in one short clause: the KL it spends (what β squeezes), in how many
    dimensions, and the active units by their usual rule — so '8 active units' never stands alone beside dimensions
    of 0.01 nats. The per-dimension values are in the Latent space tab and the metric table."""
    kl = row.get("kl_per_dim") or []
    if not kl:
        return "latent use not measured"
    used = sum(value >= FAINT_KL_NATS for value in kl)
    return (
        f"KL {sum(kl):.3g} nats, {used} of {len(kl)} dimensions carrying ≥ {FAINT_KL_NATS:g} nats (active units by "
        f"posterior-mean variance > {ACTIVE_UNIT_THRESHOLD:g}: {row.get('active_units', '—')})"
    )


def beta_disentangles(runs, rows) -> Finding:
    """β-VAE's claim (Higgins et al. 2017) on the smallest and largest β of one recipe: MIG rises with β."""
    claim = "A larger β gives a more disentangled latent space (higher MIG)."
    pair = beta_pair(runs)
    if pair is None:
        return Finding(claim, NOT_MEASURED, BETA_NEEDS)
    low, high = pair
    mig = compare(rows.get(high.name, {}), rows.get(low.name, {}), "mig")
    evidence = f"β={high.beta:g} ({high.name}) vs β={low.beta:g} ({low.name}): {mig.describe()}"
    if mig.outcome == UNTESTED:
        evidence += " — compute the metrics (the Metrics tab, or `python -m evaluation RUN…`) to test it"
    found = Finding(claim, verdict_of([mig]), evidence + ".")
    return without_factors(found, high) or found


def more_disentangled(role: str):
    """The claim that the VAE's latent space is more disentangled (higher MIG) than ``role``'s."""

    def check(runs, rows) -> Finding:
        claim = f"The VAE's latent space is more disentangled than the {PLAIN.get(role, role)}'s (higher MIG)."
        vae, other = pick(runs, rows, "VAE"), pick(runs, rows, role)
        found = _claim(claim, vae, other, ("mig",), ("VAE", role))
        return (without_factors(found, vae[0]) if vae and other else None) or found

    check.__name__ = f"vae_more_disentangled_than_{role.lower()}"
    return check


def without_factors(found: Finding, run: Run) -> Finding | None:
    """ "Not measured yet" that says why when a run's data set has no known factors to score against (digits)."""
    if found.verdict != NOT_MEASURED or has_known_factors(run.info["dataset"]):
        return None
    return Finding(
        found.claim,
        NOT_MEASURED,
        f"{run.info['dataset']} has no known generative factors to score a latent space against; compare runs "
        "trained on a data set with known factors (`--dataset sprites`).",
    )


def ae_prior_garbage(runs, rows) -> Finding:
    claim = "An autoencoder sampled from N(0, I) produces much worse samples than the VAE."
    return _claim(claim, pick(runs, rows, "VAE"), pick(runs, rows, "autoencoder"), ("fid",), ("VAE", "autoencoder"))


def fluctuation_row(run: Run) -> dict:
    """The relative fluctuation of a run's own training objective, one value per block of the end of training."""
    blocks = loss_fluctuation(pd.DataFrame(read_history(run.run_dir)), run.capabilities.objective)
    if blocks is None:
        return {}
    return {
        "objective_fluctuation": sum(blocks) / len(blocks),
        "objective_fluctuation_replicates": blocks,
        "objective_fluctuation_replicates_of": "blocks of the end of training",
    }


def vae_more_stable(runs, rows) -> Finding:
    claim = "VAE training is more stable than GAN training."
    vae, gan = pick(runs, rows, "VAE"), pick(runs, rows, "GAN")
    if vae is None or gan is None:
        return Finding(claim, NOT_MEASURED, "needs a VAE and a GAN among the selected runs.")
    vae_row, gan_row = fluctuation_row(vae[0]), fluctuation_row(gan[0])
    if not vae_row or not gan_row:
        return Finding(claim, NOT_MEASURED, "the runs' history.csv is too short to judge.")
    comparison = compare(vae_row, gan_row, "objective_fluctuation")
    evidence = (
        f"each model's own objective ({vae[0].name}: `{vae[0].capabilities.objective}`, {gan[0].name}: "
        f"`{gan[0].capabilities.objective}`), std/|mean| over the last {HISTORY_TAIL_FRACTION:.0%} of "
        f"training — {comparison.describe()}. The two objectives differ (a likelihood bound against an adversarial "
        "game), so this compares how steady each is relative to its own size, not how the samples changed"
    )
    return Finding(claim, verdict_of([comparison]), evidence + ".")


def conditional_draws_its_class(runs, rows) -> Finding:
    """Label accuracy against chance (1 / classes), with the binomial 95 % interval of a share of n samples."""
    claim = "A class-conditional model draws the class it is asked for."
    conditional = [run for run in runs if run.capabilities.conditional]
    if not conditional:
        return Finding(
            claim,
            NOT_MEASURED,
            "needs a class-conditional run among the selected runs (e.g. cvae-mnist5k on digits; on another data set "
            "train one: `python -m generators train cvae --dataset …`).",
        )
    parts, verdicts = [], []
    for run in conditional:
        row = rows.get(run.name, {})
        accuracy, n = row.get("label_accuracy"), row.get("n_fake")
        if accuracy is None or not n:
            parts.append(f"{run.name}: no label accuracy yet (compute it: Metrics tab, `python -m evaluation`)")
            verdicts.append(NOT_MEASURED)
            continue
        spread = 1.96 * (accuracy * (1 - accuracy) / n) ** 0.5
        chance = 1 / run.capabilities.num_classes
        verdicts.append(
            SUPPORTED if accuracy - spread > chance else CONTRADICTED if accuracy + spread < chance else NO_CLEAR
        )
        worst = min(row.get("label_accuracy_per_class") or [accuracy])
        parts.append(
            f"{run.name}: label accuracy {accuracy:.3f} [{accuracy - spread:.3f}, {accuracy + spread:.3f}] "
            f"(n = {n}; chance {chance:.2f}; worst class {worst:.3f})"
        )
    return Finding(claim, combine_verdicts(verdicts), "; ".join(parts) + ".")


def size_sweep(runs, role: str):
    """The training-set-size sweep with the most sizes among the runs playing ``role`` (unconditional first)."""
    players = [run for run in runs if ROLES[role](run.capabilities)]
    found = [
        sweep
        for dataset in sorted({run.info["dataset"] for run in players})
        for sweep in setting_sweeps(players, dataset, "train_size")
        if len(sweep.points) > 1
    ]
    conditional = lambda sweep: next(iter(sweep.points.values()))[0].capabilities.conditional  # noqa: E731
    return min(found, key=lambda sweep: (conditional(sweep), -len(sweep.points)), default=None)


def gan_needs_more_data(runs, rows) -> Finding:
    """Each model's smallest training-set size whose FID is not clearly worse than its best, over the sizes both
    sweeps trained: the GAN's larger than the VAE's supports the claim, smaller contradicts it."""
    claim = "The GAN needs more data than the VAE to reach its best FID."
    gan, vae = size_sweep(runs, "GAN"), size_sweep(runs, "VAE")
    if gan is None or vae is None:
        return Finding(
            claim,
            NOT_MEASURED,
            "needs a training-set-size sweep of a GAN and of a VAE among the selected runs (`python -m generators "
            "sweep dcgan --set train_size=500,1000,2000,4500 --seeds 0 1 …` on mnist5k, sizes up to the data set's "
            "train split; and the same for vae).",
        )
    sizes = sorted(set(gan.points) & set(vae.points))
    if len(sizes) < 2:
        return Finding(claim, NOT_MEASURED, f"the two sweeps share fewer than two sizes ({gan.label}; {vae.label}).")
    (gan_needs, gan_text), (vae_needs, vae_text) = data_needed(gan, sizes), data_needed(vae, sizes)
    if gan_needs is None or vae_needs is None:
        return Finding(claim, NOT_MEASURED, f"{gan_text}; {vae_text} — compute the runs' metrics to test it.")
    verdict = SUPPORTED if gan_needs > vae_needs else CONTRADICTED if gan_needs < vae_needs else NO_CLEAR
    return Finding(claim, verdict, f"GAN — {gan_text}. VAE — {vae_text}.")


def generated_images_help(runs, rows) -> Finding:
    """Per conditional run, the paired gain of adding its generated images at the fewest real images per class
    stored (``evaluation.augmentation``): supported when its 95 % interval over classifier seeds is above zero."""
    from .augmentation import generator_note, stored_results

    claim = "Generated images help a classifier trained on few real images."
    conditional = [run for run in runs if run.capabilities.conditional]
    if not conditional:
        return Finding(
            claim,
            NOT_MEASURED,
            "needs a class-conditional run among the selected runs (e.g. cvae-mnist5k on digits; on another data set "
            "train one: `python -m generators train cvae --dataset …`).",
        )
    parts, verdicts, measured = [], [], []
    for run in conditional:
        results = stored_results(run)
        if not results:
            parts.append(f"{run.name}: no stored results (`python -m evaluation augment {run.name}`, Metrics tab)")
            verdicts.append(NOT_MEASURED)
            continue
        measured.append(run)
        row = min(results, key=lambda r: (r["k"], -len(r["seeds"]), -r["generated_per_class"]))
        low, high = row["gain_ci_low"], row["gain_ci_high"]
        m = row["generated_per_class"]
        text = f"{run.name}: k = {row['k']} real + {m} generated images per class, gain {row['gain']:+.3f}"
        if low is None:
            parts.append(text + " (one classifier seed: no interval; run it with --seeds 0 1 2)")
            verdicts.append(NOT_MEASURED)
            continue
        parts.append(text + f", 95 % interval [{low:+.3f}, {high:+.3f}] ({row['interval']}, n = {len(row['seeds'])})")
        verdicts.append(SUPPORTED if low > 0 else CONTRADICTED if high < 0 else NO_CLEAR)
    caveat = f" {generator_note(measured)}." if measured else ""
    return Finding(claim, combine_verdicts(verdicts), "; ".join(parts) + "." + caveat)


CHECKS = (
    gan_sharper,
    vae_covers_more_modes,
    vae_smoother,
    beta_prior_samples,
    beta_costs_reconstruction,
    ae_prior_garbage,
    beta_disentangles,
    more_disentangled("GAN"),
    more_disentangled("autoencoder"),
    vae_more_stable,
    conditional_draws_its_class,
    gan_needs_more_data,
    generated_images_help,
)


def assess(runs: list[Run], rows: list[dict]) -> list[Finding]:
    """Every claim on ``rows`` (one per run, one protocol). A run that belongs to a training-seed group among
    the selected runs is represented by its group's row, so claims are tested across training seeds."""
    by_run = {row["run"]: row for row in rows}
    for group in group_rows(rows, {run.name: run.info for run in runs}):
        by_run.update({member: group for member in group["group_runs"]})
    return [check(runs, by_run) for check in CHECKS]


def to_markdown(findings: list[Finding], runs: list[Run]) -> str:
    lines = ["# Findings", "", "Runs: " + ", ".join(run.label for run in runs), ""]
    for finding in findings:
        lines += [f"- **{finding.claim}** — *{finding.verdict}*. {finding.evidence}"]
    return "\n".join(lines) + "\n"


def to_json(findings: list[Finding], runs: list[Run]) -> str:
    """The findings as JSON: the runs, then each claim with its verdict and evidence."""
    return json.dumps({"runs": [run.name for run in runs], "findings": [asdict(f) for f in findings]}, indent=1)


def to_text(findings: list[Finding], runs: list[Run]) -> str:
    """The findings for a terminal: one paragraph per claim, its verdict first."""
    lines = ["Runs: " + ", ".join(run.label for run in runs), ""]
    for finding in findings:
        lines += [f"[{finding.verdict}] {finding.claim}", f"    {finding.evidence}", ""]
    return "\n".join(lines)
