"""agcc's output in logs: no progress-bar redraws when stderr is not a terminal; --version."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from agcc import __version__
from agcc.cli import main

#: A loop with a bar after the CLI's set-up, as a stage runs it (tqdm imported afterwards).
SCRIPT = (
    "from agcc.cli import quiet_bars_off_terminal\n"
    "quiet_bars_off_terminal()\n"
    "from tqdm import tqdm\n"
    "for _ in tqdm(range(300), desc='work', mininterval=0, miniters=1): pass\n"
)


def _stderr(env: dict[str, str]) -> str:
    """stderr of :data:`SCRIPT` captured in a pipe (not a terminal), carriage returns kept."""
    done = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True, check=True)
    return done.stderr.decode()  # bytes: text mode would turn each "\r" into a newline


def test_bars_are_off_when_stderr_is_captured() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TQDM_")}
    err = _stderr(env)
    assert "\r" not in err and "\x1b[A" not in err and "work" not in err


def test_a_tqdm_setting_of_the_caller_is_kept() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TQDM_")}
    err = _stderr(env | {"TQDM_DISABLE": ""})  # empty: bars on, even in a log
    assert err.count("\r") > 100 and "work" in err


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0
    assert capsys.readouterr().out.strip() == f"agcc {__version__}"
