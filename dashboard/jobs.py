"""Training runs started from the dashboard, each one a separate ``python -m generators train`` process.

A separate process keeps the page responsive, survives a closed browser tab and can be cancelled with
SIGTERM (the CLI then saves a checkpoint and exits 143). Every job writes to its own run folder under a
unique name, and the CLI's run lock refuses a second trainer of the same folder, so two browser sessions
never clobber each other. Jobs live in the session's state; a queue lets the β sweep run one at a time.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import streamlit as st

from .state import checkpoints_dir

EXIT_CANCELLED = 128 + signal.SIGTERM
PROJECT_ROOT = Path(__file__).resolve().parent.parent
JOBS_KEY = "training_jobs"
SWEEP_PREFIX = "sweep-"  # the run names of the Sweeps tab's jobs: the Train tab lists the others


def command_args(
    model: str,
    dataset: str,
    budget: str,
    amount: float,
    options: dict,
    seed: int,
    batch_size: int,
    precision: str = "fp32",
) -> list[str]:
    """The ``python -m generators train`` arguments for the form's choices (``options``: model options)."""
    args = [
        model,
        "--dataset",
        dataset,
        f"--{budget}",
        f"{amount:g}",
        "--seed",
        str(seed),
        "--batch-size",
        str(batch_size),
    ]
    if precision != "fp32":  # the CLI's default; a resumed run keeps its own
        args += ["--precision", precision]
    for name, value in options.items():
        flag = "--" + name.replace("_", "-")
        if isinstance(value, bool):
            args += [flag] if value else []
        elif value not in ("", None):
            args += [flag, f"{value:g}" if isinstance(value, float) else str(value)]
    return args


def unique_run_name(model: str, dataset: str) -> str:
    """``model-dataset-MMDD-HHMM-xxxxxxxx``: short, and distinct across sessions that click "start" in one minute
    (eight hex digits: two of 50 names in a minute share them with a chance of 3e-7; four gave 2 %)."""
    dataset = dataset.replace("folder:", "").replace("/", "_").strip("_") or "folder"
    return f"{model}-{dataset}-{time.strftime('%m%d-%H%M')}-{uuid.uuid4().hex[:8]}"


@dataclass
class Job:
    """One training process (or one still waiting in the queue when ``process`` is None)."""

    run: str
    args: list[str]
    out_dir: Path
    process: subprocess.Popen | None = None
    work_dir: Path | None = None  # progress file and log; outside the run folder, which the CLI must create
    announced: bool = False  # the page was re-run once after the job ended, so the sidebar shows it
    started: float = field(default_factory=time.time)

    @property
    def run_dir(self) -> Path:
        return self.out_dir / self.run

    @property
    def progress_path(self) -> Path | None:
        return self.work_dir / "progress.json" if self.work_dir else None

    @property
    def log_path(self) -> Path | None:
        return self.work_dir / "train.log" if self.work_dir else None

    def start(self) -> None:
        self.work_dir = Path(tempfile.mkdtemp(prefix=f"genlab-{self.run}-"))
        command = [
            sys.executable,
            "-m",
            "generators",
            "train",
            *self.args,
            "--out-dir",
            str(self.out_dir),
            "--run",
            self.run,
            "--progress-json",
            str(self.progress_path),
            "--quiet",
        ]
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                command,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=PROJECT_ROOT,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )
        self.started = time.time()

    @property
    def last_steps(self) -> int | None:
        """The step the run had reached at its last progress report."""
        return self.progress().get("step")

    @property
    def returncode(self) -> int | None:
        return None if self.process is None else self.process.poll()

    @property
    def status(self) -> str:
        """queued | running | finished | cancelled | failed"""
        if self.process is None:
            return "queued"
        code = self.returncode
        if code is None:
            return "running"
        return {0: "finished", EXIT_CANCELLED: "cancelled"}.get(code, "failed")

    def progress(self) -> dict:
        try:
            return json.loads(self.progress_path.read_text())
        except (OSError, ValueError, AttributeError):
            return {}

    def last_message(self) -> str:
        """The last line the CLI printed: its one-line error, or its summary."""
        try:
            lines = [line for line in self.log_path.read_text(errors="replace").splitlines() if line.strip()]
        except (OSError, AttributeError):
            return ""
        return lines[-1] if lines else ""

    def cancel(self) -> None:
        if self.status == "running":
            self.process.send_signal(signal.SIGTERM)


def session_jobs() -> list[Job]:
    return st.session_state.setdefault(JOBS_KEY, [])


def submit(args: list[str], run: str, queued: bool = False, resume: bool = False) -> Job:
    """Start a training run now, or (``queued``) when no other queued job of this session is running.
    ``resume``: ``args`` continue the existing run ``run`` (they hold ``--resume``); its old job is replaced."""
    if resume:
        session_jobs()[:] = [job for job in session_jobs() if job.run != run]
    job = Job(run=run, args=args, out_dir=checkpoints_dir())
    session_jobs().append(job)
    if not queued:
        job.start()
    advance_queue()
    return job


def advance_queue() -> None:
    """Start the oldest queued job once nothing else of this session trains: two cores, one run at a time."""
    jobs = session_jobs()
    if any(job.status == "running" for job in jobs):
        return
    waiting = [job for job in jobs if job.status == "queued"]
    if waiting:
        waiting[0].start()


def active(jobs: list[Job]) -> bool:
    return any(job.status in ("queued", "running") for job in jobs)


def render_job(job: Job) -> None:
    """Progress bar, losses and a cancel button while running; the outcome afterwards."""
    status = job.status
    if status == "queued":
        st.caption(f"`{job.run}` is queued behind the run in progress.")
        return
    if status == "running":
        progress = job.progress()
        if not progress:
            st.progress(0.0, text=f"`{job.run}`: starting… (loading the data and building the model, a few seconds)")
            st.button("Cancel", key=f"cancel-{job.run}", on_click=job.cancel)
            return
        fraction = float(progress.get("fraction", 0.0))
        eta = progress.get("eta_s")
        text = f"`{job.run}`: step {progress.get('step', 0)}"
        if progress.get("total_steps"):
            text += f" of {progress['total_steps']}"
        if eta is not None:
            text += f", about {eta:.0f} s left"
        st.progress(min(max(fraction, 0.0), 1.0), text=text)
        losses = progress.get("losses") or {}
        if losses:
            st.caption("  ·  ".join(f"{k} {v:.4g}" for k, v in losses.items()))
        st.button("Cancel (keeps a checkpoint)", key=f"cancel-{job.run}", on_click=job.cancel)
    elif status == "finished":
        st.success(f"`{job.run}` finished: {job.last_message()}")
    elif status == "cancelled":
        st.warning(f"`{job.run}` was cancelled; its last checkpoint was kept in {job.run_dir}.")
    else:
        st.error(f"`{job.run}` stopped: {job.last_message() or f'exit code {job.returncode}'}")


def _poll(select, extra=None) -> None:
    advance_queue()
    jobs = [job for job in session_jobs() if select(job)]
    for job in jobs:
        render_job(job)
        if extra is not None:
            extra(job)
    ended = [job for job in jobs if job.status not in ("queued", "running") and not job.announced]
    if ended:
        for job in ended:
            job.announced = True
        st.rerun(scope="app")  # once, so the sidebar and the other tabs see the new run


def monitor(select=lambda job: True, every_s: float = 1.0, extra=None) -> None:
    """Show this session's jobs picked by ``select`` (and ``extra(job)`` under each); re-polled every ``every_s``
    while any is active."""
    jobs = [job for job in session_jobs() if select(job)]
    st.fragment(_poll, run_every=every_s if active(jobs) else None)(select, extra)
