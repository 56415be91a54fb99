"""Run an evaluation in a child process, so that a crash in native code cannot take the caller down.

The dashboard evaluates inside the Streamlit server: a segmentation fault in a linear-algebra library
there would end the server for every user. ``evaluate_isolated`` starts ``python -m evaluation.isolated``,
sends it the request on stdin and reads JSON lines back on stdout: progress (handed to the caller's
callback in this process), then the row, or the ``UserError`` message. A child killed by a signal becomes
a ``UserError`` ("evaluation of RUN crashed (signal SEGV) ..."), and the caller goes on.
"""

from __future__ import annotations

import importlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import traceback
from collections.abc import Callable
from pathlib import Path

from generators.errors import UserError

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_TARGET = "evaluation.runner:evaluate_run"
ERROR_TAIL = 300  # characters of the child's last stderr line quoted in a crash message


def evaluate_isolated(
    run_dir,
    *,
    progress: Callable[[float, str], None] | None = None,
    target: str = DEFAULT_TARGET,
    **options,
) -> dict:
    """``evaluate_run(run_dir, **options)`` in a child process; returns its row as a dict.

    ``target`` ("module:function", called like ``evaluate_run``) exists so tests can run a child that
    crashes. A ``UserError`` in the child is raised here with its message; a crash by a signal becomes a
    ``UserError`` naming the run and the signal; any other failure is a ``RuntimeError`` with the child's
    traceback.
    """
    name = Path(run_dir).name
    request = json.dumps({"target": target, "run_dir": str(run_dir), "options": options}, default=str)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    with tempfile.TemporaryFile("w+") as errors:
        result, code = _talk(request, env, errors, progress)
        errors.seek(0)
        last_error = next((line.strip() for line in reversed(errors.read().splitlines()) if line.strip()), "")
    if code < 0:
        crash = _signal_name(-code)
        detail = f"; its last message: {last_error[-ERROR_TAIL:]}" if last_error else ""
        raise UserError(f"evaluation of {name} crashed (signal {crash}) in native code{detail}")
    if result is None:
        raise RuntimeError(f"evaluation of {name} ended (exit {code}) without a result: {last_error[-ERROR_TAIL:]}")
    if result["kind"] == "error":
        raise UserError(result["message"])
    if result["kind"] == "bug":
        raise RuntimeError(f"evaluation of {name} failed in its child process:\n{result['message']}")
    return result["row"]


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name.removeprefix("SIG")
    except ValueError:
        return str(number)


def _talk(request: str, env: dict, errors, progress) -> tuple[dict | None, int]:
    """Run the child, pass its progress on, and return (its last result message, its exit code)."""
    child = subprocess.Popen(
        [sys.executable, "-m", "evaluation.isolated"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=errors,
        text=True,
        env=env,
    )
    result = None
    try:
        child.stdin.write(request)
        child.stdin.close()
        for line in child.stdout:
            try:
                message = json.loads(line)
            except ValueError:
                continue  # not ours: a library that printed to the real stdout
            if message.get("kind") == "progress":
                if progress:
                    progress(message["fraction"], message["message"])
            else:
                result = message
        return result, child.wait()
    finally:
        if child.poll() is None:  # the caller was interrupted: never leave the child running
            child.kill()
            child.wait()


def _child() -> int:
    """The child's side: read the request, run the target, write JSON lines (stdout is kept for them)."""
    request = json.loads(sys.stdin.read())
    channel, sys.stdout = sys.stdout, sys.stderr

    def send(**message) -> None:
        channel.write(json.dumps(message) + "\n")
        channel.flush()

    module, function = request["target"].split(":")
    target = getattr(importlib.import_module(module), function)
    try:
        row = target(
            request["run_dir"],
            progress=lambda f, text: send(kind="progress", fraction=f, message=text),
            **request["options"],
        )
    except UserError as exc:
        send(kind="error", message=str(exc))
        return 2
    except Exception:  # a bug: the parent shows the child's traceback
        send(kind="bug", message=traceback.format_exc())
        return 1
    send(kind="row", row=row)
    return 0


if __name__ == "__main__":
    sys.exit(_child())
