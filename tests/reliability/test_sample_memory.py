"""Case 10: ``sample --n 200000`` keeps memory bounded: samples are decoded in batches and streamed to the
file, never held as one (200000, C, H, W) tensor. The peak memory of the real command is measured, and a
control run that does decode everything in one batch shows that the measurement sees a giant tensor."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from .support import ROOT, cli_env, make_image_folder, train_tiny

N_BIG, N_SMALL = 200_000, 1_000
GIANT_TENSOR = N_BIG * 1 * 16 * 16 * 4  # bytes of one float32 tensor holding every sample (1 x 16 x 16 images)


# The command runs under a small fresh Python that reports its child's peak memory: a child forked straight
# from this (large) pytest process would report pytest's own size as its peak on Linux.
MEASURE = (
    "import resource, subprocess, sys; code = subprocess.call(sys.argv[1:]); "
    "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss); sys.exit(code)"
)


def sample_peak_rss(run_dir, n: int, out, *extra: str) -> int:
    """Run ``python -m generators sample`` and return the peak resident memory of that process, in bytes."""
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            MEASURE,
            sys.executable,
            "-m",
            "generators",
            "sample",
            str(run_dir),
            "--n",
            str(n),
            "--seed",
            "3",
            "--out",
            str(out),
            *extra,
        ],
        env=cli_env(),
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    return int(result.stdout.strip().splitlines()[-1]) * 1024  # kilobytes on Linux


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="ru_maxrss is in kilobytes on Linux only")
def test_sampling_200000_images_keeps_memory_bounded(tmp_path):
    train_tiny(make_image_folder(tmp_path / "images"), "vae", tmp_path / "run", 1)
    small = sample_peak_rss(tmp_path / "run", N_SMALL, tmp_path / "small.npy")
    big = sample_peak_rss(tmp_path / "run", N_BIG, tmp_path / "big.npy")
    one_batch = sample_peak_rss(tmp_path / "run", N_BIG, tmp_path / "control.npy", "--batch-size", str(N_BIG))

    grown = {"batched": (big - small) / 1e6, "one giant batch": (one_batch - small) / 1e6}
    assert grown["one giant batch"] > GIANT_TENSOR / 2e6, f"the control did not show its giant tensor: {grown} MB"
    assert grown["batched"] < GIANT_TENSOR / 4e6, f"peak memory grew with n: {grown} MB"
    samples = np.load(tmp_path / "big.npy", mmap_mode="r")
    assert samples.shape == (N_BIG, 1, 16, 16) and samples.dtype == np.uint8
    assert np.array_equal(samples[:N_SMALL], np.load(tmp_path / "small.npy"))  # same seed: same first batch
    assert np.array_equal(samples, np.load(tmp_path / "control.npy", mmap_mode="r"))  # batching changes nothing
