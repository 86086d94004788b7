from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass

import pytest

from sessionward.interfaces.cli import main


@dataclass
class CliResult:
    code: int
    out: str
    err: str


@pytest.fixture
def run_cli(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch):
    """Run ``sessionward ARGS`` in-process, as the console script does."""
    monkeypatch.setenv("COLUMNS", "220")
    monkeypatch.delenv("DATABASE_URL", raising=False)

    def run(*args: str) -> CliResult:
        capsys.readouterr()
        try:
            main(list(args))
        except SystemExit as done:
            code = done.code if isinstance(done.code, int) else 1
        else:  # pragma: no cover - main always exits
            code = 0
        captured = capsys.readouterr()
        return CliResult(code, captured.out, captured.err)

    return run


def run_script(*args: str, env: dict[str, str] | None = None) -> CliResult:
    """Run the installed ``sessionward`` in a child process, exactly as a user would."""
    completed = subprocess.run(
        [sys.executable, "-m", "sessionward", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    return CliResult(completed.returncode, completed.stdout, completed.stderr)
