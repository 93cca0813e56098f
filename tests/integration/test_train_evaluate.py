"""The train and evaluate stages through the CLI on two tiny fake corpora, and their bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from agcc.cli import main
from agcc.io.cluster_model import AGModel, save_model
from agcc.io.manifest import MANIFEST_COLUMNS
from agcc.io.predictions import RUN_COLUMNS
from agcc.io.segments import SEGMENT_COLUMNS, save_segments
from agcc.params import EMOTIONS, VOWELS, ParamsError, load_params
from agcc.skips import SkipReport, TooManySkipsError

REPO = Path(__file__).resolve().parents[2]
CORPORA = ("corp_a", "corp_b")
SPLIT_SIZES = {"train": 4, "val": 2, "dev": 1, "test": 2}  # utterances per emotion
DIM, K, RATE = 8, 3, 50.0


def _features(rng: np.random.Generator, emotion: int, shift: float) -> np.ndarray:
    """(T, DIM) frames whose mean depends on the emotion (learnable) and the corpus (shift)."""
    proto = np.eye(DIM)[emotion] * 2.0
    return (proto + shift + rng.normal(0, 1, (int(rng.integers(20, 40)), DIM))).astype("f4")


def _segments(rng: np.random.Generator, utt: dict, n_frames: int) -> list[tuple[dict, np.ndarray]]:
    """Three vowel segments inside the utterance with (T, 24) mouth series."""
    out = []
    for j in range(3):
        v = int(rng.integers(len(VOWELS)))
        t0, dur = int(rng.integers(0, n_frames - 6)), int(rng.integers(3, 6))
        start, end = t0 / RATE, (t0 + dur) / RATE
        mouth = (v + rng.normal(0, 0.1, (dur + 1, 24))).astype("f4")
        row = {
            k: utt[k]
            for k in ("utt_id", "corpus", "speaker", "session", "gender", "split", "emotion")
        }
        row |= {
            "seg_id": f"{utt['utt_id']}#{j}",
            "vowel": VOWELS[v],
            "phone": VOWELS[v],
            "word": "w",
            "start": start,
            "end": end,
            "seg_start": start,
            "seg_end": end,
            "n_frames": len(mouth),
        }
        out.append((row, mouth))
    return out


def fake_corpus(root: Path, name: str, seed: int, shift: float) -> list[dict]:
    """Manifest, features and segments of one fake corpus under ``root``; returns segment rows."""
    rng = np.random.default_rng(seed)
    utts, frames, seg_rows, mouths = [], [], [], []
    for split, n in SPLIT_SIZES.items():
        for e, emotion in enumerate(EMOTIONS):
            for i in range(n):
                utt = {
                    "utt_id": f"{name}_{split}_{emotion}_{i}",
                    "corpus": name,
                    "speaker": f"{split}{i % 2}",
                    "gender": "F",
                    "session": split,
                    "sentence": "s",
                    "emotion": emotion,
                    "split": split,
                }
                utts.append(utt)
                frames.append(_features(rng, e, shift))
                for row, mouth in _segments(rng, utt, len(frames[-1])):
                    seg_rows.append(row)
                    mouths.append(mouth)
    (root / "prepared" / name).mkdir(parents=True)
    pd.DataFrame(utts).reindex(columns=list(MANIFEST_COLUMNS)).astype(str).to_csv(
        root / "prepared" / name / "manifest.csv", index=False
    )
    write_features(root / "features" / name, [u["utt_id"] for u in utts], frames)
    table = pd.DataFrame(seg_rows).reindex(columns=SEGMENT_COLUMNS)
    table["offset"] = np.concatenate([[0], np.cumsum(table["n_frames"])[:-1]])
    save_segments(table, mouths, root / "segments" / name)
    return seg_rows


def write_features(folder: Path, utt_ids: list[str], frames: list[np.ndarray]) -> None:
    """features.npz and meta.json in the features stage's packed layout."""
    folder.mkdir(parents=True, exist_ok=True)
    offsets = np.concatenate([[0], np.cumsum([len(f) for f in frames])]).astype(np.int64)
    np.savez(
        folder / "features.npz",
        utt_id=np.array(utt_ids, dtype=str),
        offsets=offsets,
        frames=np.concatenate(frames).astype(np.float16),
    )
    meta = {
        "encoder": "fake",
        "model": "",
        "layer": -1,
        "n_layers": 1,
        "dim": DIM,
        "frame_rate": RATE,
        "sample_rate": 16000,
    }
    (folder / "meta.json").write_text(json.dumps(meta))


def fake_clusters(root: Path, seg_rows: list[dict]) -> None:
    """model.npz (k = 3) and assignments.csv: cluster = vowel index mod 3."""
    rng = np.random.default_rng(0)
    dist = rng.uniform(0.5, 2.0, (K, K))
    dist = (dist + dist.T) / 2
    np.fill_diagonal(dist, 0.0)
    model = AGModel(rng.normal(0, 1, (K, 5, 24)), dist, 0.1, "torch", 1.0, 1)
    save_model(root / "cluster" / "model.npz", model)
    frame = pd.DataFrame(seg_rows)
    frame["cluster"] = frame["vowel"].map(VOWELS.index) % K
    frame[["seg_id", "corpus", "split", "emotion", "vowel", "cluster"]].to_csv(
        root / "cluster" / "assignments.csv", index=False
    )


@pytest.fixture
def pipeline(tracked: Path) -> Path:
    """Two fake corpora (the second shifted) with features, segments and AG clusters."""
    rows = fake_corpus(tracked, "corp_a", 1, 0.0) + fake_corpus(tracked, "corp_b", 2, 0.5)
    fake_clusters(tracked, rows)
    return tracked


def write_params(root: Path, **train: object) -> Path:
    """The repository's params.yaml with the fake corpora and a tiny, fast train section."""
    raw = yaml.safe_load((REPO / "params.yaml").read_text())
    template = raw["corpora"]["demo_crema"]
    raw["corpora"] = dict.fromkeys(CORPORA, template)
    raw["train"] |= {
        "directions": [list(CORPORA), list(CORPORA[::-1])],
        "seeds": [1],
        "max_epochs": 1,
        "batch_size": 4,
        "d_model": 16,
        "n_heads": 2,
        "n_layers": 2,
        "fc_hidden": 16,
        "pseudo_label_threshold": 0.0,
        "device": "cpu",
        "binary_models": False,
        "workers": 1,
    } | train
    raw["evaluate"]["bootstrap"] = 50
    path = root / "params.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def _train(root: Path, params: Path, method: str) -> int:
    """``agcc train --method <method>`` on the fake pipeline, into ``train/<method>``."""
    paths = {
        "--features-root": "features",
        "--segments-root": "segments",
        "--prepared-root": "prepared",
        "--clusters": "cluster",
        "--out": f"train/{method}",
    }
    options = [x for opt, sub in paths.items() for x in (opt, str(root / sub))]
    return main(["--params", str(params), "train", "--method", method, *options])


def _train_all(root: Path, params: Path) -> None:
    """Every method of train.methods, one stage each (what ``dvc repro`` runs)."""
    for method in load_params(params).train.methods:
        assert _train(root, params, method) == 0, method


def _evaluate(root: Path, params: Path) -> int:
    """``agcc evaluate`` on the train outputs of the fake pipeline."""
    args = ["--train", str(root / "train"), "--out", str(root / "evaluate")]
    return main(["--params", str(params), "evaluate", *args])


def _runs(root: Path, method: str) -> pd.DataFrame:
    """One method stage's runs.csv."""
    return pd.read_csv(root / "train" / method / "runs.csv", keep_default_na=False)


@pytest.mark.slow
def test_every_method_trains_both_directions_and_table2_has_every_row(pipeline: Path) -> None:
    params = write_params(pipeline)
    _train_all(pipeline, params)
    for method in ("pa_cc", "hard_ag", "la_cc", "ag_cc"):
        runs = _runs(pipeline, method)
        assert len(runs) == 2 and (runs["status"] == "FINISHED").all()
        assert set(RUN_COLUMNS) <= set(runs.columns) and set(runs["method"]) == {method}
        metrics = json.loads((pipeline / "train" / method / "metrics.json").read_text())
        assert metrics["n_models"] == 2 and "seconds" not in metrics
        assert f"test_uar.corp_a_to_corp_b.{method}" in metrics
    folder = pipeline / "train" / "ag_cc" / "runs" / "corp_a_to_corp_b" / "seed1"
    pred = pd.read_csv(folder / "predictions_corp_b.csv")
    assert list(pred.columns) == ["utt_id", "true", "pred", *(f"prob_{e}" for e in EMOTIONS)]
    assert len(pred) == 4 * SPLIT_SIZES["test"] and pred["utt_id"].str.startswith("corp_b").all()
    assert np.allclose(pred[[f"prob_{e}" for e in EMOTIONS]].sum(axis=1), 1.0, atol=1e-4)
    _check_checkpoint_reproduces_predictions(pipeline, folder / "model.pt", "corp_b", pred)
    _check_anchoring_history(folder / "history.csv")

    assert _evaluate(pipeline, params) == 0
    t2 = pd.read_csv(pipeline / "evaluate" / "table2.csv")
    assert len(t2) == 12
    ub = t2[t2["method"] == "upper_bound"]
    assert set(ub["direction_label"]) == {"corp_b→corp_b", "corp_a→corp_a"}
    md = (pipeline / "evaluate" / "table2.md").read_text()
    assert "derived from the 4-class model" in md and "57.37" in md
    assert md.index("NOT produced by this pipeline") > md.index("AG-CC minus each baseline")
    metrics = json.loads((pipeline / "evaluate" / "metrics.json").read_text())
    assert "ci.corp_a_to_corp_b.ag_cc_minus_pa_cc.diff" in metrics
    assert 0.0 <= metrics["corp_a_to_corp_b.ag_cc.uar_4cat"] <= 100.0


def train_grid(pipeline: Path, workers: int, engine: str = "local") -> tuple[Path, dict]:
    """Train source_only and ag_cc with binary models on ``workers`` of ``engine``; return the
    params and every CSV the train stages wrote (predictions, histories, runs.csv), skips.csv
    aside."""
    params = write_params(
        pipeline,
        methods=["source_only", "ag_cc"],
        binary_models=True,
        workers=workers,
        frame_stride=2,
        engine=engine,
    )
    _train_all(pipeline, params)
    outputs = {
        p.relative_to(pipeline): p.read_bytes()
        for p in sorted((pipeline / "train").rglob("*"))
        if p.suffix == ".csv" and p.name != "skips.csv"
    }
    return params, outputs


@pytest.mark.slow
def test_binary_models_and_two_workers_give_what_one_worker_gives(pipeline: Path) -> None:
    """Binary models beside the 4-class ones; two training processes change no output."""
    outputs = {}
    for workers in (1, 2):
        params, outputs[workers] = train_grid(pipeline, workers)
    assert outputs[1].keys() == outputs[2].keys()
    assert [k for k in outputs[1] if outputs[1][k] != outputs[2][k]] == []
    runs = _runs(pipeline, "ag_cc")
    tasks = {"multiclass", *(f"binary_{e}" for e in EMOTIONS)}
    assert set(runs["task"]) == tasks and len(runs) == 2 * len(tasks)
    binary = pipeline / "train/ag_cc/runs/corp_a_to_corp_b/binary_anger/seed1"
    pred = pd.read_csv(binary / "predictions_corp_b.csv")
    assert list(pred.columns) == ["utt_id", "true", "pred", "prob_not_anger", "prob_anger"]
    assert set(pred["true"]) == {"anger", "not_anger"}
    assert _evaluate(pipeline, params) == 0
    t2 = pd.read_csv(pipeline / "evaluate" / "table2.csv")
    for e in EMOTIONS:
        assert t2[f"{e}_binary_mean"].between(0, 100).all()
        assert t2[f"{e}_derived_mean"].between(0, 100).all()
    assert "Ang (bin)" in (pipeline / "evaluate" / "table2.md").read_text()


def _check_anchoring_history(path: Path) -> None:
    """ag_cc's history.csv logs common pairs, anchors, triplets, labelled shares and w."""
    history = pd.read_csv(path)
    counts = ["n_common_pairs", "n_anchors", "n_triplets", "labelled_segment_share"]
    assert {"epoch", "val_uar", "loss_er", "labelled_share", *counts} <= set(history.columns)
    assert (history["n_common_pairs"] == len(VOWELS)).all()  # one cluster per vowel, both corpora
    assert (history["n_anchors"] >= history["n_triplets"]).all()
    if (history["n_triplets"] > 0).any():
        assert {"w_mean", "w_std"} <= set(history.columns)


def _check_checkpoint_reproduces_predictions(
    root: Path, ckpt: Path, target: str, pred: pd.DataFrame
) -> dict:
    """The saved model predicts the target test split exactly as its predictions file."""
    from agcc.io.checkpoint import load_checkpoint
    from agcc.training.trainer import predict

    model, meta = load_checkpoint(ckpt)
    data, _ = _load(root, target)
    probs = predict(model, data, data.rows("test"), 8)
    assert list(data.utt_ids[data.rows("test")]) == pred["utt_id"].tolist()
    saved = pred[[f"prob_{e}" for e in EMOTIONS]].to_numpy()
    assert np.allclose(probs, saved, atol=1e-5)
    return meta


@pytest.mark.slow
def test_upper_bound_rows_come_from_the_source_only_checkpoint_of_the_corpus(
    pipeline: Path,
) -> None:
    params = write_params(  # corp_b is a target only: its model serves its upper bound only
        pipeline, methods=["source_only", "ag_cc"], directions=[list(CORPORA)]
    )
    assert _train(pipeline, params, "source_only") == 0
    runs = _runs(pipeline, "source_only").set_index(["method", "source", "target"])
    assert sorted(runs.index) == [
        ("source_only", "corp_a", "corp_b"),
        ("upper_bound", "corp_a", "corp_a"),
        ("upper_bound", "corp_b", "corp_b"),
    ]
    ckpt = runs["checkpoint"]
    assert ckpt[("upper_bound", "corp_a", "corp_a")] == ckpt[("source_only", "corp_a", "corp_b")]
    assert ckpt.nunique() == 2  # one model per corpus and seed, no second training
    metrics = json.loads((pipeline / "train" / "source_only" / "metrics.json").read_text())
    assert metrics["n_models"] == 2 and "test_uar.corp_a_to_corp_a.upper_bound" in metrics
    for _, r in runs.reset_index().iterrows():
        target = r["target"]
        pred = pd.read_csv(pipeline / "train" / "source_only" / r["predictions"])
        meta = _check_checkpoint_reproduces_predictions(
            pipeline, pipeline / "train" / "source_only" / r["checkpoint"], target, pred
        )
        assert meta["method"] == "source_only" and meta["source"] == r["source"]
        assert r["direction"] == f"{r['source']}_to_{target}" and r["model"].startswith("source_")
    assert _train(pipeline, params, "ag_cc") == 0
    assert _evaluate(pipeline, params) == 0
    t2 = pd.read_csv(pipeline / "evaluate" / "table2.csv")
    assert set(zip(t2["method"], t2["direction_label"], strict=True)) == {
        ("upper_bound", "corp_a→corp_a"),
        ("upper_bound", "corp_b→corp_b"),
        ("source_only", "corp_a→corp_b"),
        ("ag_cc", "corp_a→corp_b"),
    }


def test_unknown_or_unlisted_method_is_a_clear_error(
    pipeline: Path, caplog: pytest.LogCaptureFixture
) -> None:
    params = write_params(pipeline, methods=["source_only", "ag_cc"])
    assert _train(pipeline, params, "ag_c") == 2
    assert "unknown method 'ag_c'" in caplog.text
    assert _train(pipeline, params, "la_cc") == 2
    assert "'la_cc' is not in train.methods" in caplog.text
    assert _train(pipeline, params, "upper_bound") == 2
    assert "run --method source_only" in caplog.text
    assert not (pipeline / "train").exists()


@pytest.mark.slow
def test_a_failed_run_is_recorded_the_others_finish_and_the_stage_fails(
    pipeline: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from agcc.stages import train
    from agcc.training.anchoring import Anchoring
    from agcc.training.trainer import FitResult

    real_fit = train.fit

    def fit(
        model: object,
        src: object,
        tgt: object,
        anchoring: Anchoring,
        *args: object,
        **kwargs: object,
    ) -> FitResult:
        if anchoring.kind == "coral" and src.name == "corp_a":
            raise RuntimeError("simulated crash")
        return real_fit(model, src, tgt, anchoring, *args, **kwargs)

    monkeypatch.setattr(train, "fit", fit)
    p = load_params(write_params(pipeline, methods=["la_cc", "source_only"]))
    inputs = train.Inputs(*(pipeline / d for d in ("features", "segments", "prepared", "cluster")))
    out = pipeline / "train" / "la_cc"
    with pytest.raises(RuntimeError, match=r"1 of 2 la_cc train runs failed: \['la_cc:corp_a->"):
        train.run(inputs, "la_cc", p.train, p.base, p.analyze.common_threshold, out)
    runs = _runs(pipeline, "la_cc")
    assert runs.set_index("direction")["status"].to_dict() == {
        "corp_a_to_corp_b": "FAILED",
        "corp_b_to_corp_a": "FINISHED",
    }
    assert not (out / "metrics.json").exists()  # a failed stage never looks finished
    import mlflow

    children = mlflow.search_runs(
        experiment_names=["agcc"],
        output_format="list",
        filter_string="tags.parent_stage = 'train@la_cc'",
    )
    status = {r.data.tags["agcc.run"]: r.info.status for r in children}  # names: seed first
    assert status == {
        "la_cc:corp_a->corp_b:seed1": "FAILED",
        "la_cc:corp_b->corp_a:seed1": "FINISHED",
    }
    stages = mlflow.search_runs(
        experiment_names=["agcc"], output_format="list", filter_string="tags.stage = 'train'"
    )
    assert "train:la_cc" in {r.info.run_name for r in stages}  # the stage run, children nested


@pytest.mark.slow
def test_oracle_runs_are_labelled_everywhere(pipeline: Path) -> None:
    params = write_params(
        pipeline,
        methods=["source_only", "pa_cc", "ag_cc"],
        oracle=True,
        upper_bound=False,
        directions=[list(CORPORA)],
    )
    _train_all(pipeline, params)
    method_dirs = [_runs(pipeline, m)["method_dir"].tolist() for m in ("source_only", "ag_cc")]
    assert method_dirs == [["source_only"], ["ag_cc_ORACLE"]]
    folder = pipeline / "train" / "ag_cc" / "runs" / "corp_a_to_corp_b_ORACLE" / "seed1"
    assert folder.is_dir()
    assert _evaluate(pipeline, params) == 0
    labels = pd.read_csv(pipeline / "evaluate" / "table2.csv")["method_label"].tolist()
    assert labels == ["Source only", "PA-CC (ORACLE)", "AG-CC (ORACLE)"]
    md = (pipeline / "evaluate" / "table2.md").read_text()
    assert "AG-CC (ORACLE) − PA-CC (ORACLE)" in md and "AG-CC (ORACLE) − Source only" in md
    ckpt = torch.load(folder / "model.pt", weights_only=True)
    assert ckpt["meta"]["oracle"] is True and ckpt["meta"]["hyper"]["beta"] == 0.2


# ---------------------------------------------------------------------------------------------
# Bad input


def _load(root: Path, name: str = "corp_a", skips: SkipReport | None = None) -> object:
    """load_corpus on one fake corpus."""
    from agcc.io.corpus import load_corpus

    return load_corpus(
        name,
        root / "features" / name,
        root / "prepared" / name / "manifest.csv",
        root / "segments" / name,
        root / "cluster",
        K,
        EMOTIONS,
        skips or SkipReport("train"),
    )


def _rewrite_features(root: Path, edit: object) -> None:
    """Apply edit(utt_ids, frames list) to corp_a's features and write them back."""
    with np.load(root / "features" / "corp_a" / "features.npz") as z:
        ids, off, frames = list(z["utt_id"]), z["offsets"], z["frames"].astype("f4")
    chunks = [frames[off[i] : off[i + 1]] for i in range(len(ids))]
    ids, chunks = edit(ids, chunks)
    write_features(root / "features" / "corp_a", ids, chunks)


def test_segments_are_frame_ranges_of_their_utterance(pipeline: Path) -> None:
    data, meta = _load(pipeline)
    s = data.segments
    assert meta["frame_rate"] == RATE and len(s.seg_id) == 3 * len(data.utt_ids)
    assert (s.lo < s.hi).all() and (s.hi <= data.length[s.row]).all()
    table = pd.read_csv(pipeline / "segments" / "corp_a" / "segments.csv").set_index("seg_id")
    first = table.loc[s.seg_id[0]]
    assert s.lo[0] == round(first["seg_start"] * RATE) and s.hi[0] == round(first["seg_end"] * RATE)
    assert data.utt_ids[s.row[0]] == first["utt_id"]


def test_utterance_without_features_is_skipped_and_counted(pipeline: Path) -> None:
    _rewrite_features(pipeline, lambda ids, ch: (ids[1:], ch[1:]))
    skips = SkipReport("train")
    data, _ = _load(pipeline, skips=skips)
    assert skips.n_skipped == 1 and skips.skips[0].item == "corp_a_train_neutral_0"
    assert "features.npz" in skips.skips[0].path
    assert "corp_a_train_neutral_0" not in data.utt_ids
    assert len(data.segments.seg_id) == 3 * len(data.utt_ids)  # its segments went with it


def test_segment_utterances_mostly_without_features_fail_before_training(pipeline: Path) -> None:
    _rewrite_features(pipeline, lambda ids, ch: (ids[:5], ch[:5]))
    with pytest.raises(TooManySkipsError, match="no features"):
        _run_train(pipeline)
    assert not (pipeline / "train" / "source_only" / "runs.csv").exists()


def _run_train(root: Path) -> None:
    """train.run on the fake pipeline with the tiny params."""
    from agcc.stages import train

    p = load_params(write_params(root))
    inputs = train.Inputs(root / "features", root / "segments", root / "prepared", root / "cluster")
    out = root / "train" / "source_only"
    train.run(inputs, "source_only", p.train, p.base, p.analyze.common_threshold, out)


def test_nan_features_name_the_file_and_utterance(pipeline: Path) -> None:
    def poison(ids: list, ch: list) -> tuple[list, list]:
        ch[3][2, 1] = np.nan
        return ids, ch

    _rewrite_features(pipeline, poison)
    with pytest.raises(ValueError, match=r"features\.npz: utterance 'corp_a_train_neutral_3'"):
        _load(pipeline)


def test_segments_of_utterances_not_in_the_manifest_are_stale(pipeline: Path) -> None:
    path = pipeline / "prepared" / "corp_a" / "manifest.csv"
    manifest = pd.read_csv(path, keep_default_na=False)
    drop = (manifest["split"] == "train") & (manifest["emotion"] == "sadness")
    manifest[~drop].to_csv(path, index=False)
    seg = pd.read_csv(pipeline / "segments" / "corp_a" / "segments.csv")
    assert seg["utt_id"].isin(manifest.loc[drop, "utt_id"]).any()  # their segments are stale
    with pytest.raises(ValueError, match="not in the manifest"):
        _load(pipeline)


def test_class_missing_from_source_training_split_is_named(pipeline: Path) -> None:
    from agcc.training.data import check_direction

    src, _ = _load(pipeline)
    tgt, _ = _load(pipeline, "corp_b")
    src.labels = np.where((src.splits == "train") & (src.labels == 3), 0, src.labels)
    with pytest.raises(ValueError, match=r"'corp_a'.*train split has no utterances.*sadness"):
        check_direction(src, tgt, ("ag_cc",), EMOTIONS)
    check_direction(src, tgt, ("upper_bound",), EMOTIONS)  # corp_b's own model only: fine


def test_direction_naming_an_unknown_corpus_is_a_params_error(tmp_path: Path) -> None:
    raw = yaml.safe_load((REPO / "params.yaml").read_text())
    raw["train"]["directions"] = [["demo_crema", "msp_podcast"]]
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(raw))
    params = load_params(path)  # only the stages that read the directions stop
    with pytest.raises(
        ParamsError, match=r"train.directions\[0\]\[1\]: unknown corpus 'msp_podcast'"
    ):
        params.check_directions()


def test_missing_checkpoint_and_features_are_clear_errors(pipeline: Path) -> None:
    from agcc.io.checkpoint import load_checkpoint
    from agcc.io.features import read_features

    with pytest.raises(FileNotFoundError, match=r"nowhere\.pt: no such checkpoint"):
        load_checkpoint(pipeline / "nowhere.pt")
    with pytest.raises(FileNotFoundError, match="run the features stage"):
        read_features(pipeline / "features" / "corp_c")
