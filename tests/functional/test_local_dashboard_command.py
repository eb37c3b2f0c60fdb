"""The dashboard command ``sentiment-local run`` prints works when pasted into the shell it ran from."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from sentiment_local.cli import dashboard_command


@pytest.mark.unit
def test_under_uv_run_the_printed_command_goes_through_uv(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("UV", "/usr/bin/uv")
    assert dashboard_command(Path("/tmp/my state")) == "uv run sentiment-local dashboard --state-dir '/tmp/my state'"
    monkeypatch.delenv("UV")
    assert dashboard_command(None) == "sentiment-local dashboard"


@pytest.mark.functional
@pytest.mark.skipif(shutil.which("uv") is None, reason="uv is not on PATH")
def test_the_printed_command_resolves_in_a_shell_without_the_venv_on_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("UV", shutil.which("uv") or "uv")
    command = dashboard_command(None).replace(" dashboard", " dashboard --help")
    venv_bin = str(Path(os.environ.get("VIRTUAL_ENV", "/nonexistent")) / "bin")
    path = os.pathsep.join(p for p in os.environ["PATH"].split(os.pathsep) if p != venv_bin)
    env = {**os.environ, "PATH": path}
    env.pop("VIRTUAL_ENV", None)
    repo = Path(__file__).resolve().parents[2]
    done = subprocess.run(
        ["bash", "-c", command], cwd=repo, env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    assert "usage: sentiment-local dashboard" in done.stdout
