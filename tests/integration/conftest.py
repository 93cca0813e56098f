"""A tiny demo configuration shared by the integration tests."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]


def tiny_params(root: Path) -> dict:
    """params.yaml with the demo shrunk to a few utterances and every path under ``root``."""
    raw = yaml.safe_load((REPO / "params.yaml").read_text())
    raw["demo"]["crema"] = {"n_speakers": 4, "utts_per_speaker": 5}
    raw["demo"]["improv"] = {"n_speakers": 8, "utts_per_speaker": 3}
    raw["base"]["max_skip_share"] = 0.5
    raw["cluster"] = raw.get("cluster", {}) | {"k_grid": [2, 3, 4], "k": 3, "max_iter": 5}
    raw["train"] = raw.get("train", {}) | {"seeds": [1], "max_epochs": 1, "batch_size": 4}
    raw["evaluate"] = raw.get("evaluate", {}) | {"bootstrap": 50}
    if root != Path("."):
        for name, key in (("demo_crema", "crema_out"), ("demo_improv", "improv_out")):
            out = str(root / "raw" / name)
            raw["demo"][key] = out
            raw["corpora"][name] |= {
                "root": out,
                "landmarks_dir": f"{out}/openface",
                "textgrid_dir": f"{out}/textgrids",
            }
    return raw


@pytest.fixture
def tiny_params_file(tracked: Path) -> Path:
    """A tiny params.yaml in the (temporary) working directory."""
    path = tracked / "params.yaml"
    path.write_text(yaml.safe_dump(tiny_params(tracked), allow_unicode=True, sort_keys=False))
    return path
