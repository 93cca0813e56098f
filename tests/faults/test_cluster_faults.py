"""The cluster stage publishes all of its outputs or none of them."""

from __future__ import annotations

import pytest
import yaml

from agcc.stages import cluster
from tests.faults.conftest import Corpus, latest_run, snapshot


@pytest.fixture
def clustered(corpus: Corpus) -> Corpus:
    """Segments of the tiny corpus and one clean cluster run (k 2..4) into ``cl``."""
    raw = yaml.safe_load(corpus.params.read_text())
    raw["cluster"] |= {"k_grid": [2, 3, 4], "k": 3, "max_iter": 3, "device": "cpu"}
    corpus.params.write_text(yaml.safe_dump(raw, allow_unicode=True, sort_keys=False))
    assert corpus.segments() == 0
    assert corpus.cli("cluster", "--segments", str(corpus.root / "seg"), "--out", "cl") == 0
    return corpus


@pytest.mark.slow
def test_failure_while_writing_leaves_previous_outputs(
    clustered: Corpus, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    before = snapshot(clustered.root / "cl")
    assert {"model.npz", "assignments.csv", "elbow.csv", "models/k02.npz"} <= set(before)

    def disk_full(*args: object, **kwargs: object) -> None:
        from agcc.errors import DataError

        raise DataError("cl/elbow.png: no space left on device")

    # the k models, model.npz, assignments and elbow.csv are written by then
    monkeypatch.setattr(cluster, "plot_elbow", disk_full)
    assert clustered.cli("cluster", "--segments", str(clustered.root / "seg"), "--out", "cl") == 2
    assert "no space left on device" in caplog.text
    assert snapshot(clustered.root / "cl") == before
    assert not list(clustered.root.glob(".cl.staging-*"))
    assert latest_run("cluster").info.status == "FAILED"
