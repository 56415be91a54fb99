"""Command line: python -m generators {train,sample,list}. Bad input -> one line on stderr, exit 2."""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import sys
import time
from pathlib import Path

from .cli import OneLineParser, positive_float, positive_int, run_name
from .errors import UserError, WriteFailed, run_command
from .registry import MODELS
from .samplers import SAMPLERS

EXIT_DIVERGED = 1


def model_option_fields() -> dict[str, dataclasses.Field]:
    """Every model config field offered on the command line, from all registered models."""
    fields = {}
    for cls in MODELS.values():
        for f in dataclasses.fields(cls.Config):
            if f.metadata.get("cli", True):
                fields.setdefault(f.name, f)
    return fields


def add_model_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("model options (each applies to the models whose config has it)")
    for name, f in model_option_fields().items():
        flag = "--" + name.replace("_", "-")
        owners = ", ".join(m for m, cls in MODELS.items() if name in {g.name for g in dataclasses.fields(cls.Config)})
        help_text = f"{f.metadata.get('help', '')} [{owners}]"
        if f.type in ("bool", bool):
            group.add_argument(flag, dest=name, action="store_const", const=True, default=None, help=help_text)
        else:
            kind = {"int": int, "float": float}.get(str(f.type), str)
            group.add_argument(
                flag, dest=name, type=kind, default=None, choices=f.metadata.get("choices"), help=help_text
            )


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="python -m generators", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True, parser_class=OneLineParser)

    train = sub.add_parser("train", help="train a model into a run folder")
    train.add_argument("model", help=f"one of {', '.join(MODELS)}")
    train.add_argument("--dataset", default="mnist5k", help="mnist5k | mnist | fashion-mnist | cifar10 | folder:PATH")
    train.add_argument("--data-dir", default="data", help="where torchvision datasets are downloaded/kept")
    train.add_argument("--image-size", type=positive_int, help="resize images to this square size")
    train.add_argument("--channels", type=int, choices=(1, 3), help="convert images to 1 or 3 channels")
    budget = train.add_mutually_exclusive_group()
    budget.add_argument("--epochs", type=positive_int)
    budget.add_argument("--steps", type=positive_int)
    budget.add_argument("--minutes", type=positive_float)
    train.add_argument("--batch-size", type=positive_int, default=128)
    train.add_argument("--run", type=run_name, help="run folder name (default MODEL-DATASET)")
    train.add_argument("--out-dir", default="checkpoints")
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--device", default="auto", help="auto | cpu | cuda | mps")
    train.add_argument("--resume", action="store_true", help="continue the run in --run")
    train.add_argument("--overwrite", action="store_true", help="replace an existing run of that name")
    train.add_argument("--progress-json", help="also write progress to this file (used by the dashboard)")
    train.add_argument("--quiet", action="store_true", help="no progress bar")
    add_model_options(train)

    sample = sub.add_parser("sample", help="draw samples from a trained run into a .npy file")
    sample.add_argument("run_dir")
    sample.add_argument("--n", type=positive_int, required=True)
    sample.add_argument("--seed", type=int, default=0)
    sample.add_argument(
        "--sampler",
        choices=SAMPLERS,
        default="prior",
        help="prior = N(0, I); gmm / two-stage: fitted on the encoded train split (models with an encoder)",
    )
    sample.add_argument(
        "--label",
        type=int,
        metavar="K",
        help="class-conditional runs only: draw every image of class K (0..classes-1); without it the classes "
        "come in equal shares (0, 1, ..., K-1, 0, ...)",
    )
    sample.add_argument("--batch-size", type=positive_int, default=1000)
    sample.add_argument(
        "--out",
        required=True,
        help="FILE.npy: uint8 array (N, C, H, W), values 0..255; a class-conditional run also writes each "
        "image's class to FILE.labels.npy (int64, shape (N,))",
    )

    listing = sub.add_parser("list", help="list the runs in a folder")
    listing.add_argument("--out-dir", default="checkpoints")
    return parser


def default_run_name(model: str, dataset: str) -> str:
    if dataset.startswith("folder:"):
        dataset = Path(dataset[len("folder:") :]).name or "folder"
    return f"{model}-{dataset}"


def progress_writer(path: Path):
    """A training callback that rewrites ``path`` (atomically) at most every half second."""
    from .checkpoints import atomic_write_bytes

    last = [0.0]

    def write(progress: dict) -> None:
        now = time.monotonic()
        if now - last[0] >= 0.5 or progress.get("fraction", 0) >= 1:
            last[0] = now
            atomic_write_bytes(path, json.dumps(progress).encode())

    return write


def cmd_train(args) -> int:
    from .registry import model_class
    from .training import Diverged, Interrupted, TrainConfig, run_training

    cls = model_class(args.model)
    own_fields = {f.name for f in dataclasses.fields(cls.Config)}
    options = {name: getattr(args, name) for name in model_option_fields() if getattr(args, name) is not None}
    foreign = sorted(set(options) - own_fields)
    if foreign:
        raise UserError(f"--{foreign[0].replace('_', '-')} does not apply to {args.model}")
    cfg = TrainConfig(
        dataset=args.dataset,
        data_dir=args.data_dir,
        image_size=args.image_size,
        channels=args.channels,
        epochs=args.epochs,
        steps=args.steps,
        minutes=args.minutes,
        batch_size=args.batch_size,
        seed=args.seed,
        device=args.device,
    )
    run_dir = Path(args.out_dir) / (args.run or default_run_name(args.model, args.dataset))
    progress_dir = Path(args.progress_json).parent if args.progress_json else run_dir
    if not (progress_dir.is_dir() or progress_dir.resolve() == run_dir.resolve()):  # the run folder is made later
        raise UserError(f"the folder of --progress-json ({progress_dir}) does not exist")
    callback = progress_writer(Path(args.progress_json)) if args.progress_json else None
    try:
        result = run_training(
            args.model,
            options,
            cfg,
            run_dir,
            resume=args.resume,
            overwrite=args.overwrite,
            callback=callback,
            show_progress=not args.quiet,
        )
    except Diverged as exc:
        print(
            f"error: training diverged: {exc}; the last good checkpoint in {run_dir} was kept "
            f"(try a lower learning rate)",
            file=sys.stderr,
        )
        return EXIT_DIVERGED
    except Interrupted as exc:
        print(
            f"interrupted by {exc}: checkpoint saved in {run_dir}; continue with the same command plus --resume",
            file=sys.stderr,
        )
        return 128 + exc.signum
    print(
        f"trained {args.model} for {result['step']} steps ({result['epoch']} epochs, "
        f"{result['seconds']:.0f} s) -> {run_dir}"
    )
    return 0


def labels_path(out: Path) -> Path:
    """Where ``sample`` writes the classes of a conditional run's images: F.npy -> F.labels.npy."""
    return out.with_suffix(".labels.npy")


def sample_labels(model, n: int, label: int | None):
    """The class of each of the ``n`` images to draw: None for an unconditional run (which refuses --label),
    all ``label``, or classes in equal shares."""
    classes = model.capabilities.num_classes
    if classes is None:
        if label is not None:
            raise UserError(f"--label needs a class-conditional run; this {model.name} run is not conditional")
        return None
    if label is not None and not 0 <= label < classes:
        raise UserError(f"--label must be between 0 and {classes - 1} (the run has {classes} classes), got {label}")
    return model.labels_for(n, label).cpu()


def cmd_sample(args) -> int:
    import numpy as np
    import torch

    from .checkpoints import load_run
    from .samplers import latent_sampler

    out = Path(args.out)
    if out.suffix != ".npy":
        raise UserError(f"--out must be a .npy file, got {out}")
    if not out.parent.is_dir():
        raise UserError(f"the folder of --out ({out.parent}) does not exist")
    model, info = load_run(Path(args.run_dir))
    labels = sample_labels(model, args.n, args.label)
    if labels is not None and labels_path(out).is_dir():
        raise UserError(f"{labels_path(out)} (where the classes go) is a folder; choose another --out")
    draw = latent_sampler(model, args.sampler, Path(args.run_dir))
    shape = (args.n, *model.config.image_shape)
    needed, free = int(np.prod(shape, dtype=np.float64)), shutil.disk_usage(out.parent).free
    if needed > free:
        raise UserError(
            f"{args.n} samples need {needed / 1e9:.1f} GB but {out.parent} has {free / 1e9:.1f} GB free; "
            f"ask for fewer with --n"
        )
    generator = torch.Generator().manual_seed(args.seed)
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}.npy")
    tmp_labels = out.with_name(f".{out.name}.labels.tmp-{os.getpid()}.npy")
    try:  # the .npy header, then batch after batch: 200 000 samples never sit in memory at once
        with open(tmp, "wb") as fh:
            np.lib.format.write_array_header_1_0(fh, {"descr": "|u1", "fortran_order": False, "shape": shape})
            with torch.inference_mode():
                for start in range(0, args.n, args.batch_size):
                    count = min(args.batch_size, args.n - start)
                    z = draw(count, generator)
                    if labels is None:
                        images = model.decode(z)
                    else:
                        images = model.decode(z, labels[start : start + count].to(model.device))
                    fh.write(images.clamp(0, 1).mul(255).round().to(torch.uint8).cpu().numpy().tobytes())
        if labels is not None:
            np.save(tmp_labels, labels.numpy().astype(np.int64))
            os.replace(tmp_labels, labels_path(out))
        os.replace(tmp, out)
    except OSError as exc:
        raise WriteFailed(exc.errno, f"could not write {out} ({exc.strerror or exc})") from None
    finally:
        tmp.unlink(missing_ok=True)
        tmp_labels.unlink(missing_ok=True)
    classes = "" if labels is None else f" and their classes to {labels_path(out)}"
    print(f"wrote {args.n} samples of {info['model']} ({args.sampler} sampler) to {out}{classes}")
    return 0


def cmd_list(args) -> int:
    from .checkpoints import list_runs

    runs, broken = list_runs(Path(args.out_dir))
    for run_dir, reason in broken:
        print(f"warning: skipped {run_dir}: {reason}", file=sys.stderr)
    if not runs:
        print(f"no runs in {args.out_dir}/ yet: train one with `python -m generators train vae`")
        return 0
    rows = [
        (
            Path(r["run_dir"]).name,
            r["model"],
            r["dataset"],
            str(r.get("step", "?")),
            str(r.get("epoch", "?")),
            str(r.get("created", "?"))[:19].replace("T", " "),
        )
        for r in runs
    ]
    header = ("run", "model", "dataset", "steps", "epochs", "created")
    widths = [max(len(x) for x in col) for col in zip(header, *rows)]
    for row in (header, *rows):
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip())
    return 0


def main(argv: list[str] | None = None) -> int:
    def command() -> int:
        args = build_parser().parse_args(argv)
        return {"train": cmd_train, "sample": cmd_sample, "list": cmd_list}[args.command](args)

    return run_command(command)


if __name__ == "__main__":
    sys.exit(main())
