"""The offline grapheme-to-phoneme model: g2p_en's weights, our numpy decoder."""

from __future__ import annotations

import random

import pytest

from agcc.extract import g2p
from agcc.extract.phones import cmu_dictionary


def test_symbol_tables_match_the_checkpoint() -> None:
    weights = g2p._weights()
    assert weights["enc_emb"].shape[0] == len(g2p.GRAPHEMES) == 29
    assert weights["fc_w"].shape[0] == len(g2p.PHONEMES) == 74


def test_known_words_and_non_letters() -> None:
    assert g2p.predict("meeting") == ["M", "IY1", "T", "IH0", "NG"]
    assert g2p.predict("Blorf!") == ["B", "L", "AO1", "R", "F"]
    assert g2p.predict("1971") == []


def test_most_cmudict_words_are_reproduced_exactly() -> None:
    words = sorted(w for w in cmu_dictionary() if w.isalpha())
    sample = random.Random(0).sample(words, 150)
    exact = sum(g2p.predict(w) in cmu_dictionary()[w] for w in sample) / len(sample)
    assert exact >= 0.65  # about 0.75 measured; a broken decoder gives ~0


def test_missing_package_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(g2p, "PACKAGE", "no_such_g2p_package")
    with pytest.raises(FileNotFoundError, match="pip install no_such_g2p_package"):
        g2p.checkpoint_path()
