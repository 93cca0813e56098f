"""`pip install .` gives a working agcc: deps from requirements.txt, a full lock, no warnings."""

from __future__ import annotations

import email
import re
import shutil
import subprocess
import sys
import tomllib
import venv
import zipfile
from pathlib import Path

import pytest

from agcc import __version__ as agcc_version

REPO = Path(__file__).resolve().parents[2]
PROJECT_FILES = ("pyproject.toml", "requirements.txt", "README.md")


def _pins(path: Path) -> dict[str, str]:
    """name (lower case, ``-``) -> version of each ``name==version`` line of a requirements file."""
    out = {}
    for line in path.read_text().splitlines():
        m = re.match(r"^([A-Za-z0-9_.\-]+)==([^\s#;]+)", line)
        if m:
            out[re.sub(r"[-_.]+", "-", m.group(1)).lower()] = m.group(2)
    return out


def _project_copy(tmp_path: Path) -> Path:
    """The files a wheel is built from, copied (no build folders left in the repository)."""
    dst = tmp_path / "project"
    dst.mkdir()
    for name in PROJECT_FILES:
        shutil.copy(REPO / name, dst / name)
    shutil.copytree(REPO / "src", dst / "src", ignore=shutil.ignore_patterns("*.egg-info"))
    return dst


def test_dependencies_are_read_from_requirements_txt() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())
    assert {"dependencies", "version"} <= set(project["project"]["dynamic"])
    dynamic = project["tool"]["setuptools"]["dynamic"]
    assert dynamic["dependencies"] == {"file": ["requirements.txt"]}
    assert project["project"]["license"] == "MIT"  # SPDX string: no setuptools licence warning


def test_lock_pins_every_requirement_at_its_version_and_no_cuda_wheel() -> None:
    direct, lock = _pins(REPO / "requirements.txt"), _pins(REPO / "requirements.lock")
    assert lock["torch"].split("+")[0] == direct["torch"]
    assert lock["torch"].endswith("+cpu"), "the lock is made with the CPU torch wheel"
    wrong = {k: (v, lock.get(k)) for k, v in direct.items() if k != "torch" and lock.get(k) != v}
    assert not wrong, f"requirements.txt pins missing or different in requirements.lock: {wrong}"
    cuda = [k for k in lock if k.startswith(("nvidia-", "triton", "cuda-"))]
    assert not cuda, f"CUDA packages in the lock: {cuda}"
    assert len(lock) > 3 * len(direct), "the lock pins the transitive dependencies too"


@pytest.mark.slow
def test_wheel_builds_without_warnings_and_requires_the_pins(tmp_path: Path) -> None:
    project = _project_copy(tmp_path)
    done = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-v"]
        + [str(project), "-w", str(tmp_path / "dist")],
        capture_output=True,
        text=True,
        check=True,
    )
    warnings = [ln for ln in done.stdout.splitlines() if re.search(r"(?i)licen[cs]e", ln)]
    warnings = [ln for ln in warnings if re.search(r"(?i)warn|deprecat", ln)]
    assert not warnings, warnings
    (wheel,) = (tmp_path / "dist").glob("agcc-*.whl")
    with zipfile.ZipFile(wheel) as z:
        name = next(n for n in z.namelist() if n.endswith(".dist-info/METADATA"))
        meta = email.message_from_bytes(z.read(name))
    dists = meta.get_all("Requires-Dist")
    base = [r for r in dists if "extra ==" not in r]  # the extras: DVC's cloud remotes
    requires = {r.split("==")[0].lower(): r.split("==")[1] for r in base}
    assert requires == _pins_raw()
    extras = {r.split(";")[1].split("==")[1].strip().strip('"') for r in dists if r not in base}
    assert extras == {"s3", "gs", "ssh"}
    assert meta["License-Expression"] == "MIT"


def _pins_raw() -> dict[str, str]:
    """requirements.txt as written: name (lower case) -> version."""
    lines = (REPO / "requirements.txt").read_text().splitlines()
    pins = [ln.split("#")[0].strip() for ln in lines]
    return {p.split("==")[0].lower(): p.split("==")[1] for p in pins if p}


def _index_reachable(pip: Path, tmp_path: Path) -> bool:
    """Whether pip can fetch a pinned requirement (index, mirror or find-links)."""
    pin = next(f"{k}=={v}" for k, v in _pins_raw().items() if k == "pyyaml")
    probe = subprocess.run(
        [str(pip), "download", "--no-deps", "-q", "-d", str(tmp_path / "probe"), pin],
        capture_output=True,
        timeout=120,
    )
    return probe.returncode == 0


@pytest.mark.slow
def test_fresh_venv_pip_install_dot_runs_agcc(tmp_path: Path) -> None:
    """As docs/install.md says: torch first (the CPU wheel where offered), then `pip install .`."""
    project = _project_copy(tmp_path)
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    pip, agcc = env_dir / "bin" / "pip", env_dir / "bin" / "agcc"
    if not _index_reachable(pip, tmp_path):
        pytest.skip("no package index, mirror or --find-links folder reachable: cannot install")
    torch = f"torch=={_pins_raw()['torch']}"
    for args in ([torch], [str(project)]):
        done = subprocess.run([str(pip), "install", "-q", *args], capture_output=True, text=True)
        assert done.returncode == 0, done.stderr[-3000:]
    helped = subprocess.run([str(agcc), "--help"], capture_output=True, text=True, check=True)
    assert "predict" in helped.stdout and "train" in helped.stdout
    version = subprocess.run([str(agcc), "--version"], capture_output=True, text=True, check=True)
    assert version.stdout.strip() == f"agcc {agcc_version}"
