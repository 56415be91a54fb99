"""Every metric declared once: key, label, unit, direction, meaning, format and the capabilities it needs.

This table drives the evaluation row, the report columns and their ↑/↓ arrows, the dashboard's chart labels
and explanations, and the direction the findings use. Adding a metric = one entry here plus its function
(torchmetrics keeps ``higher_is_better`` on the metric itself; this is the same idea for the whole row).
"""

from __future__ import annotations

from dataclasses import dataclass

HIGHER, LOWER = True, False
# the unit of a pure number (a share, a score, a distance in the extractor's feature space): declared, never left
# empty, so a missing unit is an error and not a silent blank in a report's column header
UNITLESS = "unitless"
# the odd inputs the anomaly metrics are made with (evaluation.diagnostics.out_of_distribution draws them)
OOD_KINDS = {
    "noise": "uniform noise images",
    "inverted": "test digits with black and white swapped",
    "shuffled": "test digits with their pixels shuffled",
}


@dataclass(frozen=True)
class Metric:
    key: str
    label: str
    unit: str
    higher_is_better: bool | None  # None: neither direction is "better" (e.g. a count of samples)
    meaning: str
    fmt: str = ".3f"  # format spec of one value; "kid" = ×10³ with two decimals
    needs: tuple[str, ...] = ()  # capability names (attributes of generators.base.Capabilities) it requires
    headline: bool = False  # shown in the summary tables (the rest: full CSV/JSON and expanders)
    interval: bool = False  # the row also holds ``<key>_ci_low`` and ``<key>_ci_high`` (95 % bootstrap)

    def __post_init__(self) -> None:
        if not self.unit:
            raise ValueError(f"metric {self.key!r} needs a unit (UNITLESS for a pure number)")

    @property
    def unit_text(self) -> str:
        """The unit as a column header or axis shows it: empty for a pure number."""
        return "" if self.unit == UNITLESS else self.unit

    @property
    def arrow(self) -> str:
        return {True: " ↑", False: " ↓", None: ""}[self.higher_is_better]

    @property
    def title(self) -> str:
        """The label with its direction arrow, e.g. ``FID ↓``."""
        return self.label + self.arrow

    @property
    def axis_title(self) -> str:
        """For a chart axis: the label with its unit."""
        return f"{self.label} ({self.unit_text})" if self.unit_text else self.label

    def applies_to(self, capabilities) -> bool:
        return all(bool(getattr(capabilities, need)) for need in self.needs)

    def better(self, a: float, b: float) -> bool:
        """Whether value ``a`` is better than ``b`` (strictly)."""
        if self.higher_is_better is None:
            raise ValueError(f"{self.key} has no better direction")
        return a > b if self.higher_is_better else a < b


_METRICS = (
    Metric(
        "fid",
        "FID",
        UNITLESS,
        LOWER,
        "Fréchet distance between feature statistics of samples and real images.",
        ".2f",
        headline=True,
        interval=True,
    ),
    Metric(
        "fid_floor",
        "FID floor",
        UNITLESS,
        LOWER,
        "FID between two disjoint halves of real data: the best any model can score at this n.",
        ".2f",
    ),
    Metric(
        "fid_ratio",
        "FID / floor",
        "×",
        LOWER,
        "FID divided by the real-vs-real floor (1 = as good as real data).",
        ".2f",
        headline=True,
    ),
    Metric(
        "fid_test",
        "FID (test)",
        UNITLESS,
        LOWER,
        "FID against the held-out test split: a model that memorised its training images scores no better here.",
        ".2f",
        headline=True,
    ),
    Metric(
        "fid_test_floor",
        "test floor",
        UNITLESS,
        LOWER,
        "FID between an equal-size training subset and the test split: the best score against the test split.",
        ".2f",
    ),
    Metric(
        "fid_inf",
        "FID∞",
        UNITLESS,
        LOWER,
        "FID extrapolated to infinitely many samples (linear fit of FID against 1/n, Chong & Forsyth 2020).",
        ".2f",
    ),
    Metric(
        "kid_mean",
        "KID",
        "×10³",
        LOWER,
        "Kernel (MMD²) distance of the features; unbiased at small n.",
        "kid",
        headline=True,
        interval=True,
    ),
    Metric(
        "kid_std",
        "KID spread",
        "×10³",
        None,
        "Standard deviation of KID over its random subsets of samples.",
        "kid",
    ),
    Metric(
        "precision",
        "precision",
        UNITLESS,
        HIGHER,
        "Share of samples that fall inside the real data's manifold (quality).",
        headline=True,
        interval=True,
    ),
    Metric(
        "recall",
        "recall",
        UNITLESS,
        HIGHER,
        "Share of real images whose neighbourhood the samples reach (diversity).",
        headline=True,
        interval=True,
    ),
    Metric(
        "density",
        "density",
        UNITLESS,
        HIGHER,
        "Outlier-robust precision: how many real neighbourhoods hold a sample.",
        interval=True,
    ),
    Metric(
        "coverage",
        "coverage",
        UNITLESS,
        HIGHER,
        "Outlier-robust recall: share of real neighbourhoods with a sample.",
        headline=True,
        interval=True,
    ),
    Metric(
        "copy_rate",
        "copy rate",
        UNITLESS,
        LOWER,
        "Share of samples closer to a training image than 95 % of held-out real images are (≈ 0.05 = no copying).",
        headline=True,
    ),
    Metric(
        "modes",
        "classes hit",
        "count",
        HIGHER,
        "Classes (by the project's classifier) receiving at least 1 % of the samples.",
        "g",
        headline=True,
    ),
    Metric("mode_kl", "class KL", "nats", LOWER, "KL divergence of the samples' class histogram from the real one."),
    Metric(
        "sharpness",
        "sharpness",
        "× real",
        HIGHER,
        "Laplacian variance of the samples relative to real images (blurry images score low).",
        ".2f",
        interval=True,
    ),
    Metric(
        "smoothness",
        "interp. roughness",
        "× even path",
        LOWER,
        "Mean feature step along latent interpolations between two test images' codes (no encoder: two samples' "
        "latents) relative to an even path (1 = even, higher = jumps).",
        ".2f",
        interval=True,
    ),
    Metric(
        "objective_fluctuation",
        "objective fluctuation",
        "std/|mean|",
        LOWER,
        "Relative spread of the quantity a model's training minimises, over the end of training (history.csv).",
        ".3g",
    ),
    Metric(
        "recon_mse",
        "recon MSE",
        "per pixel",
        LOWER,
        "Mean squared error of reconstructed test images.",
        ".4f",
        headline=True,
        interval=True,
    ),
    Metric(
        "recon_bce",
        "recon BCE",
        "nats/pixel",
        LOWER,
        "Binary cross-entropy of reconstructed test images.",
        ".4f",
        interval=True,
    ),
    Metric("recon_psnr", "PSNR", "dB", HIGHER, "Peak signal-to-noise ratio of reconstructions.", ".2f", interval=True),
    Metric(
        "recon_ssim",
        "SSIM",
        UNITLESS,
        HIGHER,
        "Structural similarity of reconstructions (1 = identical).",
        headline=True,
        interval=True,
    ),
    *(
        Metric(
            f"anomaly_auc_{kind}",
            f"anomaly AUC ({kind})",
            UNITLESS,
            HIGHER,
            f"ROC AUC of telling {what} from test digits by the model's anomaly score (1 = perfect, 0.5 = chance).",
            interval=True,
        )
        for kind, what in OOD_KINDS.items()
    ),
    Metric(
        "elbo_nats",
        "ELBO",
        "nats/image",
        HIGHER,
        "Evidence lower bound on log p(x) of test images.",
        ".1f",
        needs=("posterior",),
        headline=True,
    ),
    Metric(
        "iwae_nats",
        "IWAE bound",
        "nats/image",
        HIGHER,
        "Importance-weighted bound on log p(x); tighter than the ELBO.",
        ".1f",
        needs=("posterior",),
    ),
    Metric(
        "elbo_bits_per_dim",
        "ELBO bits/dim",
        "bits/dim",
        LOWER,
        "Negative ELBO per pixel in bits.",
        needs=("posterior",),
    ),
    Metric(
        "iwae_bits_per_dim",
        "bits/dim",
        "bits/dim",
        LOWER,
        "Negative IWAE bound per pixel in bits.",
        needs=("posterior",),
    ),
    Metric(
        "active_units",
        "active units",
        "dims",
        None,
        "Latent dimensions whose posterior mean varies across images (Cov > 0.01).",
        "d",
        needs=("posterior",),
    ),
    Metric(
        "held_out_share",
        "held-out class share",
        UNITLESS,
        None,
        "Share of samples the project's classifier puts in the classes the run was trained without "
        "(--exclude-classes); 95 % Wilson interval over the samples.",
        interval=True,
    ),
    Metric(
        "label_accuracy",
        "label accuracy",
        UNITLESS,
        HIGHER,
        "Share of samples the project's classifier puts in the class they were drawn for (conditional models).",
        needs=("conditional",),
        headline=True,
    ),
    Metric(
        "cas",
        "CAS",
        UNITLESS,
        HIGHER,
        "Classification Accuracy Score: real test accuracy of a classifier trained on samples and their labels only.",
        needs=("conditional",),
        headline=True,
    ),
    Metric(
        "cas_ceiling",
        "CAS ceiling",
        UNITLESS,
        HIGHER,
        "The same classifier trained on the real train split: the CAS of a perfect model.",
        needs=("conditional",),
    ),
    Metric(
        "intra_fid",
        "intra-class FID",
        UNITLESS,
        LOWER,
        "Mean over classes of the FID between a class's samples and that class's real images.",
        ".2f",
        needs=("conditional",),
    ),
    Metric(
        "intra_fid_floor",
        "intra-class FID floor",
        UNITLESS,
        LOWER,
        "Mean over classes of the FID between two halves of a class's real images: the best a model can score.",
        ".2f",
        needs=("conditional",),
    ),
)
# disentanglement (evaluation.disentanglement): only for data sets with known generative factors (sprites)
_DISENTANGLEMENT = (
    Metric(
        "mig",
        "MIG",
        UNITLESS,
        HIGHER,
        "Mutual information gap: per factor, the gap between the two code dimensions most informative about it, "
        "over the factor's entropy (1 = each factor in one dimension alone; 20 bins cap it near 0.9 on sprites).",
        interval=True,
    ),
    Metric(
        "dci_disentanglement",
        "DCI disentanglement",
        UNITLESS,
        HIGHER,
        "How much each code dimension is used for one factor only (trees' importances; 1 = one factor each).",
        interval=True,
    ),
    Metric(
        "dci_completeness",
        "DCI completeness",
        UNITLESS,
        HIGHER,
        "How much each factor is captured by one code dimension only (1 = one dimension each).",
        interval=True,
    ),
    Metric(
        "dci_informativeness",
        "DCI informativeness",
        UNITLESS,
        HIGHER,
        "Held-out R² of the factors predicted from the code by trees (1 = every factor read off the code).",
        interval=True,
    ),
    Metric(
        "factor_vae_score",
        "FactorVAE score",
        UNITLESS,
        HIGHER,
        "Accuracy of naming the factor held fixed in a batch from the code dimension of least variance "
        "(chance = 1 / number of factors).",
        interval=True,
    ),
    Metric(
        "sap",
        "SAP",
        UNITLESS,
        HIGHER,
        "Separated attribute predictability: per factor, the gap in R² between its two best single code dimensions.",
        interval=True,
    ),
)
METRICS: dict[str, Metric] = {m.key: m for m in (*_METRICS, *_DISENTANGLEMENT)}
DISENTANGLEMENT_KEYS = tuple(m.key for m in _DISENTANGLEMENT)  # the scores of a data set with known factors


def metric(key: str) -> Metric:
    return METRICS[key]


def headline_metrics() -> list[Metric]:
    return [m for m in _METRICS if m.headline]
