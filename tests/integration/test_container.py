"""The container: no second copy of the code, the mounted repository runs, and the image builds.

The entry point is run here as it runs in the image (``sh docker/entrypoint.sh``) on a copy of
the repository; the image itself is built only where a container engine answers.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
ENTRYPOINT = REPO / "docker" / "entrypoint.sh"
#: The image's `agcc` launcher (written by the Dockerfile): the CLI of whatever is on the path.
LAUNCHER = '#!/bin/sh\nexec python -m agcc.cli "$@"\n'


def test_image_holds_the_dependencies_and_no_copy_of_the_code() -> None:
    docker = (REPO / "Dockerfile").read_text()
    copies = re.findall(r"^COPY\s+(.+?)\s+\S+$", docker, re.M)
    copied = [src for line in copies for src in line.split()]
    assert set(copied) == {"requirements.txt", "requirements.lock", "docker/entrypoint.sh"}
    assert "pip install -e" not in docker and "COPY src" not in docker
    assert LAUNCHER.replace("\n", "\\n") in docker
    lines = (REPO / ".dockerignore").read_text().splitlines()
    ignore = [line.strip() for line in lines if line.strip() and not line.startswith("#")]
    kept = [line[1:] for line in ignore if line.startswith("!")]
    assert ignore[0] == "*" and set(kept) == set(copied)
    assert "HF_HOME=/cache/huggingface" in docker and 'VOLUME ["/cache/huggingface"]' in docker
    assert "--no-install-recommends" in docker and "rm -rf /var/lib/apt/lists/*" in docker
    base = re.search(r"^FROM docker\.io/pytorch/pytorch:(\d+\.\d+\.\d+)-cuda", docker, re.M)
    pins = (REPO / "requirements.txt").read_text()
    assert base and f"\ntorch=={base.group(1)}\n" in pins, "base image torch != requirements pin"


def test_run_script_maps_the_user_the_repository_path_and_the_hf_cache() -> None:
    run = (REPO / "docker" / "run.sh").read_text()
    assert '--user "$(id -u):$(id -g)"' in run
    assert '-v "$PWD":"$PWD" -w "$PWD"' in run  # same path: MLflow's artifact URIs resolve
    assert '"$hf_cache":/cache/huggingface' in run and "--gpus all" in run


@pytest.fixture
def mounted(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """A copy of the repository (as mounted) and an environment with the image's launcher."""
    repo = tmp_path / "repo"
    repo.mkdir()
    shutil.copy(REPO / "pyproject.toml", repo)
    shutil.copytree(REPO / "src", repo / "src", ignore=shutil.ignore_patterns("*.egg-info"))
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "agcc").write_text(LAUNCHER)
    (bin_dir / "agcc").chmod(0o755)
    path = f"{bin_dir}:{Path(sys.executable).parent}:{os.environ['PATH']}"  # this python
    env = os.environ | {"PATH": path}
    env.pop("PYTHONPATH", None)
    return repo, env


def _entry(repo: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    """Run the image's entry point in ``repo`` with ``args``."""
    return subprocess.run(
        ["sh", str(ENTRYPOINT), *args], cwd=repo, env=env, capture_output=True, text=True
    )


def test_entry_point_runs_the_mounted_code_and_checks_the_gpu(
    mounted: tuple[Path, dict[str, str]],
) -> None:
    repo, env = mounted
    done = _entry(repo, env, "python", "-c", "import agcc; print(agcc.__file__)")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == str(repo / "src" / "agcc" / "__init__.py")
    assert "agcc image: torch" in done.stderr
    assert ("GPU:" in done.stderr) or ("NO GPU" in done.stderr)


def test_entry_point_takes_a_bare_subcommand_as_agcc_and_trusts_the_repository(
    mounted: tuple[Path, dict[str, str]],
) -> None:
    repo, env = mounted
    env = env | {"AGCC_SKIP_GPU_CHECK": "1"}
    helped = _entry(repo, env, "segments", "--help")
    assert helped.returncode == 0, helped.stderr
    assert "--mouth" in helped.stdout
    safe = _entry(repo, env, "git", "config", "--get-all", "safe.directory")
    assert safe.stdout.split() == [str(repo)]


def test_entry_point_refuses_a_folder_that_is_not_the_repository(tmp_path: Path) -> None:
    done = subprocess.run(
        ["sh", str(ENTRYPOINT), "agcc", "--help"], cwd=tmp_path, capture_output=True, text=True
    )
    assert done.returncode == 2 and "not the agcc repository" in done.stderr


def _engine() -> str | None:
    """A container engine whose daemon (or rootless runtime) answers, or None."""
    for name in ("docker", "podman"):
        if shutil.which(name):
            probe = subprocess.run([name, "info"], capture_output=True, timeout=30)
            if probe.returncode == 0:
                return name
    return None


@pytest.mark.slow
def test_image_builds(tmp_path: Path) -> None:
    engine = _engine()
    if engine is None:
        pytest.skip("no container engine answers here (no docker daemon, no podman)")
    done = subprocess.run(
        [engine, "build", "-t", "agcc-test", str(REPO)], capture_output=True, text=True
    )
    pulled = not re.search(r"(?i)(pull|resolve|manifest|registry|dial tcp)", done.stderr)
    if done.returncode != 0 and not pulled:
        pytest.skip(f"{engine} cannot pull the base image here: {done.stderr[-300:]}")
    assert done.returncode == 0, done.stderr[-3000:]
    helped = subprocess.run(
        [engine, "run", "--rm", "-v", f"{REPO}:{REPO}", "-w", str(REPO), "agcc-test"],
        capture_output=True,
        text=True,
    )
    assert helped.returncode == 0 and "predict" in helped.stdout, helped.stderr
