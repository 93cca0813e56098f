"""features (log-mel) and analyze with Fig. 2 through the CLI on a tiny generated demo corpus."""

from __future__ import annotations

import json
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import yaml

from agcc.cli import main
from agcc.framing import segment_frames
from agcc.io.features import load_features
from agcc.io.segments import load_segments

CORPORA = ("demo_crema", "demo_improv")
K_AG, K_AC = 3, 4


def _stages_to_segments(params: Path, data: Path) -> None:
    """demo, then prepare, landmarks and segments of both corpora."""
    base = ["--params", str(params)]
    assert main([*base, "demo"]) == 0
    for c in CORPORA:
        prep, lm, seg = data / "prepared" / c, data / "landmarks" / c, data / "segments" / c
        assert main([*base, "prepare", "--corpus", c, "--out", str(prep)]) == 0
        man = str(prep / "manifest.csv")
        assert main([*base, "landmarks", "--corpus", c, "--manifest", man, "--out", str(lm)]) == 0
        args = ["segments", "--corpus", c, "--manifest", man, "--mouth", str(lm / "mouth.npz")]
        assert main([*base, *args, "--out", str(seg)]) == 0


def _check_features(data: Path, corrupted: str) -> None:
    """Every readable utterance on the 50 frames/s grid; the corrupted one skipped and named."""
    for c in CORPORA:
        out = data / "features" / c
        man = pd.read_csv(data / "prepared" / c / "manifest.csv", keep_default_na=False)
        feats, meta = load_features(out)
        assert meta["encoder"] == "logmel" and meta["dim"] == 80 and meta["frame_rate"] == 50.0
        skips = pd.read_csv(out / "skips.csv")
        assert set(feats) | set(skips["item"]) == set(man["utt_id"])
        for _, row in man[man["utt_id"].isin(list(feats))].iterrows():
            seconds = sf.info(row["audio"]).duration
            assert abs(len(feats[row["utt_id"]]) - seconds * 50) <= 1
        metrics = json.loads((out / "metrics.json").read_text())
        assert metrics["n_utts"] == len(feats)
        # a DVC output holds no wall-clock number (they would change its hash on every run)
        assert not {"throughput", "extract_seconds"} & set(metrics)
        if c == "demo_crema":
            assert skips["item"].tolist() == [corrupted] and "unreadable" in skips["reason"][0]
        # the segments index loud (voiced) frames: vowels are louder than the rest
        table, _ = load_segments(data / "segments" / c)
        louder = []
        for utt, part in table[table["utt_id"].isin(list(feats))].groupby("utt_id"):
            energy = feats[utt].astype(np.float32).mean(axis=1)
            inside = np.zeros(len(energy), bool)
            for s0, s1 in zip(part["seg_start"], part["seg_end"], strict=True):
                inside[segment_frames(s0, s1, len(energy))] = True
            louder.append(energy[inside].mean() > energy[~inside].mean())
        assert np.mean(louder) > 0.9


def _check_fig2(out: Path, n_segments: int) -> None:
    """fig2.png, fig2.csv and the association metrics."""
    assert (out / "fig2.png").stat().st_size > 30_000
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["fig2.k"] == K_AC
    assert metrics["fig2.n_segments"] + metrics["fig2.n_segments_without_features"] == n_segments
    assert metrics["fig2.n_segments_without_features"] > 0  # the corrupted file's vowels
    assert 0.0 <= metrics["fig2.nmi.all"] <= 1.0
    assert 1 / K_AC <= metrics["fig2.max_row_share.all"] <= 1.0
    assert 1 / K_AC <= metrics["fig2.max_row_share_perm.all"] <= 1.0
    table = pd.read_csv(out / "fig2.csv")
    emotions = ["all", "neutral", "happiness", "anger", "sadness"]
    assert table["emotion"].unique().tolist() == emotions
    assert len(table) == len(emotions) * K_AG * K_AC
    per_row = table.groupby(["emotion", "ag_cluster"])
    totals = per_row["count"].sum().groupby("emotion").sum()
    assert totals["all"] == totals.drop("all").sum() == metrics["fig2.n_segments"]
    sums = per_row["share"].sum()
    assert np.allclose(sums[per_row["count"].sum() > 0], 1.0, atol=1e-5)


@pytest.mark.slow
def test_features_then_fig2(tiny_params_file: Path, tracked: Path) -> None:
    raw = yaml.safe_load(tiny_params_file.read_text())
    raw["analyze"] |= {"fig2_k": K_AC, "fig1_samples": 5}
    tiny_params_file.write_text(yaml.safe_dump(raw, sort_keys=False))
    data, base = tracked / "data", ["--params", str(tiny_params_file)]
    _stages_to_segments(tiny_params_file, data)
    table, _ = load_segments(data / "segments" / "demo_crema")
    corrupted = str(table["utt_id"].iloc[0])
    (tracked / "raw" / "demo_crema" / "AudioWAV" / f"{corrupted}.wav").write_bytes(b"")

    for c in CORPORA:
        man = str(data / "prepared" / c / "manifest.csv")
        args = ["features", "--corpus", c, "--manifest", man, "--out", str(data / "features" / c)]
        assert main([*base, *args]) == 0
    _check_features(data, corrupted)

    segs = [str(data / "segments" / c) for c in CORPORA]
    assert main([*base, "cluster", "--segments", *segs, "--out", str(data / "cluster")]) == 0
    args = ["analyze", "--segments", *segs, "--clusters", str(data / "cluster")]
    args += ["--features-root", str(data / "features"), "--out", str(data / "analyze")]
    assert main([*base, *args]) == 0
    n_segments = sum(len(load_segments(s)[0]) for s in segs)
    _check_fig2(data / "analyze", n_segments)

    runs = mlflow.search_runs(experiment_names=["agcc"], output_format="list")
    by_name = {r.info.run_name: r for r in runs}
    assert {"features:demo_crema", "features:demo_improv", "fig2:acoustic_kmeans"} <= set(by_name)
    assert by_name["fig2:acoustic_kmeans"].data.tags["mlflow.parentRunId"] == (
        by_name["analyze"].info.run_id
    )
    assert by_name["features:demo_crema"].data.metrics["n_skipped"] == 1
    assert all(r.info.status == "FINISHED" for r in runs)
