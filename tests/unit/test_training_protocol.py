"""Training protocol: target labels and the target test split's mouth data never shape training.

Every method is trained as the train stage trains it (anchoring from the registry, la_cc's layers
chosen after its source-only warm-up) on toy corpora read through
:func:`agcc.training.data.corpus_data`, then trained again on a changed target corpus; the
weights and histories must be bit-identical.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from agcc.params import VOWELS
from agcc.skips import SkipReport
from agcc.training.anchoring import AGInfo, method_anchoring, vowel_distance
from agcc.training.data import CorpusData, FeatureArrays, corpus_data
from agcc.training.trainer import build_model, fit, input_stats, model_config
from tests.unit.training_toy import tiny_train_params, toy_corpus

CPU = torch.device("cpu")
EMOTIONS = ("neutral", "happiness", "anger", "sadness")
RATE = 50.0
K = 3
# pseudo_label_threshold 0: every target utterance anchors, so the labels would matter
TP = tiny_train_params(n_layers=2, dropout=0.1)
TRAINED = ("source_only", "pa_cc", "hard_ag", "la_cc", "ag_cc")


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    """One torch thread: the shared machine and reproducible float sums."""
    torch.set_num_threads(1)


def _corpus(name: str, seed: int, test_shift: int = 0, test_mouth: float = 1.0) -> CorpusData:
    """A toy corpus assembled from a manifest, clustered segments and mouth series.

    ``test_shift`` moves the AG cluster of every test-split segment, ``test_mouth`` scales the
    test-split mouth series: neither may change any training.
    """
    toy = toy_corpus(name, seed)
    manifest = pd.DataFrame(
        {"utt_id": toy.utt_ids, "emotion": np.array(EMOTIONS)[toy.labels], "split": toy.splits}
    )
    offsets = np.concatenate([[0], np.cumsum(toy.length)])
    features = FeatureArrays(toy.utt_ids, offsets, toy.frames, RATE, Path(f"{name}/f.npz"))
    seg = toy.segments
    split = toy.splits[seg.row]
    test = split == "test"
    table = pd.DataFrame(
        {
            "utt_id": toy.utt_ids[seg.row],
            "seg_id": seg.seg_id,
            "vowel": np.array(VOWELS)[seg.vowel],
            "seg_start": seg.lo / RATE,
            "seg_end": seg.hi / RATE,
            "cluster": np.where(test, (seg.cluster + test_shift) % K, seg.cluster),
            "split": split,
        }
    )
    rng = np.random.default_rng(seed)
    mouth = [rng.normal(size=(6, 24)) * (test_mouth if t else 1.0) for t in test]
    segments = (table, mouth, Path(f"{name}/segments"))
    man_path = Path(f"{name}/manifest.csv")
    return corpus_data(name, features, manifest, man_path, segments, EMOTIONS, SkipReport("t"))


def _fit(method: str, src: CorpusData, tgt: CorpusData, oracle: bool = False) -> tuple:
    """Train one method as the train stage does; its history and weights."""
    distance = np.array([[0.0, 1.0, 2.0], [1.0, 0.0, 1.5], [2.0, 1.5, 0.0]])
    vowel_d = vowel_distance([src, tgt], 0.1, 0, "cpu") if method == "hard_ag" else None
    ag = AGInfo(K, distance, 0.1, 30.0, vowel_distance=vowel_d)
    anchoring = method_anchoring(method, src, tgt, ag, oracle, CPU, TP.hyper(method))
    config = model_config(TP, src.frames.shape[1:], len(EMOTIONS))
    model = build_model(config, 1, input_stats(src, src.rows("train")), CPU)
    second = tgt if anchoring.kind != "none" else None  # la_cc: layers chosen in fit
    result = fit(model, src, second, anchoring, TP, 1)
    return result.history, model.state_dict()


def _same(a: tuple, b: tuple) -> bool:
    """Bit-identical histories and weights."""
    (hist_a, w_a), (hist_b, w_b) = a, b
    return hist_a == hist_b and all(torch.equal(w_a[k], w_b[k]) for k in w_a)


@pytest.fixture(scope="module")
def corpora() -> dict[str, CorpusData]:
    """The source, the target, the target with shuffled labels and with changed test mouths."""
    tgt = _corpus("tgt", 2)
    shuffled = dataclasses.replace(tgt, labels=np.random.default_rng(0).permutation(tgt.labels))
    assert (shuffled.labels != tgt.labels).mean() > 0.5
    return {
        "src": _corpus("src", 1),
        "tgt": tgt,
        "shuffled": shuffled,
        "test_changed": _corpus("tgt", 2, test_shift=1, test_mouth=5.0),
    }


@pytest.mark.parametrize("method", TRAINED)
def test_shuffled_target_labels_change_no_training(method: str, corpora: dict) -> None:
    src = corpora["src"]
    assert _same(_fit(method, src, corpora["tgt"]), _fit(method, src, corpora["shuffled"]))


def test_oracle_training_does_read_the_target_labels(corpora: dict) -> None:
    src = corpora["src"]
    a = _fit("ag_cc", src, corpora["tgt"], oracle=True)
    assert not _same(a, _fit("ag_cc", src, corpora["shuffled"], oracle=True))


@pytest.mark.parametrize("method", TRAINED)
def test_target_test_mouth_segments_change_no_training(method: str, corpora: dict) -> None:
    tgt, changed = corpora["tgt"], corpora["test_changed"]
    test = tgt.splits[tgt.segments.row] == "test"
    assert (tgt.segments.cluster[test] != changed.segments.cluster[test]).all()
    np.testing.assert_array_equal(tgt.segments.cluster[~test], changed.segments.cluster[~test])
    assert tgt.mouth_val.keys() == changed.mouth_val.keys()
    for v, series in tgt.mouth_val.items():  # only val-split mouths are kept
        assert all(np.array_equal(a, b) for a, b in zip(series, changed.mouth_val[v], strict=True))
    assert _same(_fit(method, corpora["src"], tgt), _fit(method, corpora["src"], changed))
