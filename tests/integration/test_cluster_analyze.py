"""The cluster and analyze stages through the CLI on two tiny fake segment folders."""

from __future__ import annotations

import json
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
import yaml

from agcc.cli import main
from agcc.io.segments import SEGMENT_COLUMNS, load_segments, save_segments
from agcc.params import EMOTIONS, SPLITS, VOWELS

REPO = Path(__file__).resolve().parents[2]
K_GRID = [2, 3, 4]


def _prototypes(rng: np.random.Generator) -> list[tuple[np.ndarray, np.ndarray]]:
    """Three mouth gestures as (start (24,), drift (24,)) pairs, far apart."""
    return [(rng.normal(0, 1, 24), rng.normal(0, 1, 24)) for _ in range(3)]


def fake_corpus(root: Path, name: str, seed: int, shift: float, per_cell: int = 2) -> Path:
    """A segments folder: 4 splits x 6 vowels x 4 emotions x ``per_cell`` random-walk series.

    Each series follows one of three shared gestures (vowel index mod 3 with prob. 0.8) plus a
    random walk; the gesture id is kept in the ``word`` column to check the clusters.
    """
    protos = _prototypes(np.random.default_rng(0))  # shared by both corpora
    rng = np.random.default_rng(seed)
    rows, frames = [], []
    for split in SPLITS:
        for vi, vowel in enumerate(VOWELS):
            for emotion in EMOTIONS:
                for j in range(per_cell):
                    g = vi % 3 if rng.random() < 0.8 else int(rng.integers(3))
                    t = np.linspace(0, 1, int(rng.integers(4, 10)))[:, None]  # (T, 1)
                    walk = np.cumsum(rng.normal(0, 0.03, (len(t), 24)), axis=0)
                    frames.append((protos[g][0] + t * protos[g][1] + shift + walk).astype("f4"))
                    utt = f"{name}_{split}_{vowel}_{emotion}_{j}"
                    rows.append(
                        {
                            "seg_id": f"{utt}#0",
                            "utt_id": utt,
                            "corpus": name,
                            "split": split,
                            "emotion": emotion,
                            "vowel": vowel,
                            "word": f"g{g}",
                            "n_frames": len(t),
                        }
                    )
    table = pd.DataFrame(rows).reindex(columns=SEGMENT_COLUMNS)
    save_segments(table, frames, root / name)
    return root / name


@pytest.fixture
def corpora(tracked: Path) -> list[Path]:
    """Two fake corpora with the same gestures, the second slightly shifted."""
    return [fake_corpus(tracked, "corp_a", 1, 0.0), fake_corpus(tracked, "corp_b", 2, 0.05)]


def _params(path: Path, **cluster: object) -> Path:
    """The repository's params.yaml with a small cluster section."""
    raw = yaml.safe_load((REPO / "params.yaml").read_text())
    raw["cluster"] |= {
        "k": 3,
        "k_grid": K_GRID,
        "max_iter": 5,
        "silhouette_sample": 40,
        "gamma": 0.1,
    } | cluster
    raw["analyze"]["fig1_samples"] = 10
    path.write_text(yaml.safe_dump(raw, allow_unicode=True))
    return path


def _engines() -> list[str]:
    """tslearn always; torch when the batched engine is available."""
    from agcc import sdtw

    return ["tslearn"] + (["torch"] if hasattr(sdtw, "SoftDTWKMeans") else [])


def _check_cluster_outputs(out: Path, corpora: list[Path]) -> pd.DataFrame:
    """Models, assignments of every segment, elbow curve and metrics of the cluster stage."""
    assert sorted(p.name for p in (out / "models").iterdir()) == ["k02.npz", "k03.npz", "k04.npz"]
    with np.load(out / "model.npz") as z:
        cents, dist = z["centroids"], z["distance"]
        assert int(z["k"]) == 3 and cents.shape[0] == 3 and cents.shape[2] == 24
    assert dist.shape == (3, 3) and np.allclose(dist, dist.T) and np.allclose(np.diag(dist), 0)
    assert (dist[~np.eye(3, dtype=bool)] > 0).all()
    assign = pd.read_csv(out / "assignments.csv")
    segs = pd.concat([load_segments(c)[0] for c in corpora])
    assert sorted(assign["seg_id"]) == sorted(segs["seg_id"])  # every segment, once
    assert set(assign["split"]) == set(SPLITS) and assign["cluster"].between(0, 2).all()
    elbow = pd.read_csv(out / "elbow.csv")
    assert list(elbow["k"]) == K_GRID and (elbow["silhouette"].between(-1, 1)).all()
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["k_chosen"] == 3 and metrics["k_elbow"] in K_GRID
    assert metrics["n_fit"] == 96 and metrics["n_segments"] == 384
    return assign.merge(segs[["seg_id", "word"]], on="seg_id")


def _check_mlflow(engine: str) -> None:
    """One cluster run with a nested run per k, and one analyze run, all finished."""
    runs = mlflow.search_runs(experiment_names=["agcc"], output_format="list")
    by_name = {r.info.run_name: r for r in runs}
    assert set(by_name) == {"cluster", "analyze", *(f"k={k}" for k in K_GRID)}
    parent = by_name["cluster"].info.run_id
    for k in K_GRID:
        child = by_name[f"k={k}"]
        assert child.data.tags["mlflow.parentRunId"] == parent
        assert child.data.params["engine"] == engine and child.data.params["k"] == str(k)
        assert {"inertia", "silhouette", "n_iter", "seconds"} <= set(child.data.metrics)
    assert by_name["cluster"].data.metrics["k_chosen"] == 3
    assert "avg_overlap.all.AA" in by_name["analyze"].data.metrics
    assert all(r.info.status == "FINISHED" for r in runs)


@pytest.mark.slow
@pytest.mark.parametrize("engine", _engines())
def test_cluster_then_analyze(tracked: Path, corpora: list[Path], engine: str) -> None:
    params = _params(tracked / "params.yaml", engine=engine, device="cpu")
    segs = [str(c) for c in corpora]
    base = ["--params", str(params)]
    assert main([*base, "cluster", "--segments", *segs, "--out", "cl"]) == 0
    assigned = _check_cluster_outputs(tracked / "cl", corpora)
    # the three gestures are recovered: each cluster is dominated by one gesture
    purity = assigned.groupby("cluster")["word"].agg(lambda w: w.value_counts().iloc[0] / len(w))
    assert (purity > 0.9).all(), purity

    assert main([*base, "analyze", "--segments", *segs, "--clusters", "cl", "--out", "an"]) == 0
    t1 = pd.read_csv(tracked / "an" / "table1.csv")
    assert t1.shape == (3 + 5 + 5, 2 + 6)
    values = t1.iloc[:, 2:].to_numpy(float)
    assert np.nanmin(values) >= 0 and np.nanmax(values) <= 100
    top = t1[t1["section"] == "overlap"].iloc[:, 2:].to_numpy(float)
    assert (top.max(axis=0) > 50).all()  # same gestures in both corpora: large overlaps
    assert "| Cluster_3 |" in (tracked / "an" / "table1.md").read_text(encoding="utf-8")
    assert (tracked / "an" / "fig1.png").stat().st_size > 20_000
    metrics = json.loads((tracked / "an" / "metrics.json").read_text())
    assert 25 <= metrics["avg_overlap.all.AA"] <= 100
    assert metrics["fig1.cluster_1"] != metrics["fig1.cluster_2"]
    _check_mlflow(engine)


@pytest.mark.slow
def test_bad_inputs_fail_cleanly(tracked: Path, corpora: list[Path]) -> None:
    segs = [str(c) for c in corpora]
    big_k = _params(tracked / "big.yaml", engine="tslearn", k=None, k_grid=[2, 50, 200])
    assert main(["--params", str(big_k), "cluster", "--segments", *segs, "--out", "x"]) == 2
    assert not (tracked / "x" / "metrics.json").exists()
    table, frames = load_segments(corpora[0])
    frames[5] = frames[5].copy()
    frames[5][1, 3] = np.nan
    save_segments(table, frames, tracked / "nan" / "corp_a")
    ok = _params(tracked / "ok.yaml", engine="tslearn")
    bad = [str(tracked / "nan" / "corp_a"), segs[1]]
    assert main(["--params", str(ok), "cluster", "--segments", *bad, "--out", "y"]) == 2
    assert (
        main(
            ["--params", str(ok), "analyze", "--segments", segs[0], "--clusters", "y", "--out", "z"]
        )
        == 2
    )
    runs = mlflow.search_runs(experiment_names=["agcc"], output_format="list")
    assert runs and all(r.info.status == "FAILED" for r in runs)
