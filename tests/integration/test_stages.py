"""Every stage through the CLI on a tiny generated demo corpus, tracked in a temp MLflow store."""

from __future__ import annotations

from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest

from agcc.cli import main
from agcc.io.segments import load_segments

CORPORA = ("demo_crema", "demo_improv")


def _run_stages(params: Path, out: Path) -> None:
    assert main(["--params", str(params), "demo"]) == 0
    for c in CORPORA:
        prep, lm, seg = out / "prepared" / c, out / "landmarks" / c, out / "segments" / c
        assert main(["--params", str(params), "prepare", "--corpus", c, "--out", str(prep)]) == 0
        man = str(prep / "manifest.csv")
        args = ["landmarks", "--corpus", c, "--manifest", man, "--out", str(lm)]
        assert main(["--params", str(params), *args]) == 0
        args = ["segments", "--corpus", c, "--manifest", man, "--mouth", str(lm / "mouth.npz")]
        assert main(["--params", str(params), *args, "--out", str(seg)]) == 0


@pytest.mark.slow
def test_demo_to_segments(tiny_params_file: Path, tracked: Path) -> None:
    out = tracked / "data"
    _run_stages(tiny_params_file, out)
    vowels = set()
    for c in CORPORA:
        man = pd.read_csv(out / "prepared" / c / "manifest.csv", keep_default_na=False)
        assert set(man["emotion"]) <= {"neutral", "anger", "happiness", "sadness"}
        assert man.groupby("speaker")["split"].nunique().max() == 1
        assert set(man["split"]) == {"train", "val", "dev", "test"}
        table, frames = load_segments(out / "segments" / c)
        assert len(table) > 2 * len(man)  # several vowels per utterance
        vowels |= set(table["vowel"])
        assert set(table["utt_id"]) <= set(man["utt_id"])
        lens = np.array([len(f) for f in frames])
        assert (lens == table["n_frames"].to_numpy()).all() and lens.min() >= 3
        assert all(f.shape[1] == 24 and np.isfinite(f).all() for f in frames)
        # speaker, split and emotion of each segment are its utterance's
        joined = table.merge(man, on="utt_id", suffixes=("", "_m"))
        assert (joined["split"] == joined["split_m"]).all()
        assert (joined["emotion"] == joined["emotion_m"]).all()
    assert vowels == {"AA", "AH", "EH", "IY", "AE", "UW"}
    runs = mlflow.search_runs(experiment_names=["agcc"], output_format="list")
    names = sorted(r.info.run_name for r in runs)
    stages = ("prepare", "landmarks", "segments")
    assert names == sorted(f"{s}:{c}" for s in stages for c in CORPORA)
    assert all(r.info.status == "FINISHED" for r in runs)


@pytest.mark.slow
def test_missing_textgrids_are_reported_and_fail_the_stage(
    tiny_params_file: Path, tracked: Path
) -> None:
    out = tracked / "data"
    _run_stages(tiny_params_file, out)
    c = "demo_crema"
    for tg in sorted((tracked / "raw" / c / "textgrids").glob("*.TextGrid"))[::2]:
        tg.unlink()
    seg = out / "segments" / "again"
    man, mouth = out / "prepared" / c / "manifest.csv", out / "landmarks" / c / "mouth.npz"
    args = ["segments", "--corpus", c, "--manifest", str(man), "--mouth", str(mouth)]
    assert main(["--params", str(tiny_params_file), *args, "--out", str(seg)]) == 2
    skips = pd.read_csv(seg / "skips.csv")
    assert skips["reason"].str.contains("missing|not found|no such", case=False).all()
    assert skips["path"].str.endswith(".TextGrid").all()
    assert not (seg / "metrics.json").exists()
