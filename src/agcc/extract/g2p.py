"""Grapheme-to-phoneme for words missing from every dictionary: g2p_en's network, offline.

The model is the GRU encoder-decoder of the ``g2p_en`` package (Park and Kim), trained on the
CMU dictionary; its weights ship inside the package (``checkpoint20.npz``). The package itself is
not imported: its ``__init__`` fetches NLTK data from the network (a POS tagger for homographs,
which a single out-of-vocabulary word does not need), so the file is located with
:func:`importlib.util.find_spec` and the greedy decoder below reads it with numpy.

For a word of letters ``c_1..c_n``: embeddings of ``c_1..c_n, </s>`` run through the encoder GRU;
its last state starts the decoder GRU, fed ``<s>`` and then its own previous output; each step's
phone is ``argmax(W h + b)`` over the 70 ARPAbet-with-stress symbols, until ``</s>`` (at most 20).
GRU cell (PyTorch layout, gates r, z, n):
``r, z = sigmoid(W_ir x + b_ir + W_hr h + b_hr), sigmoid(W_iz x + b_iz + W_hz h + b_hz)``,
``n = tanh(W_in x + b_in + r * (W_hn h + b_hn))``, ``h' = (1 - z) * n + z * h``.
"""

from __future__ import annotations

import functools
import importlib.util
import re
from pathlib import Path

import numpy as np

PACKAGE = "g2p_en"
CHECKPOINT = "checkpoint20.npz"
GRAPHEMES = ("<pad>", "<unk>", "</s>", *"abcdefghijklmnopqrstuvwxyz")
_VOWELS = ("AA", "AE", "AH", "AO", "AW", "AY", "EH", "ER", "EY", "IH", "IY", "OW", "OY", "UH")
PHONEMES = (
    "<pad>", "<unk>", "<s>", "</s>",
    *[f"{v}{s}" for v in _VOWELS[:4] for s in "012"],
    *[f"{v}{s}" for v in _VOWELS[4:6] for s in "012"],
    "B", "CH", "D", "DH",
    *[f"{v}{s}" for v in ("EH", "ER", "EY") for s in "012"],
    "F", "G", "HH",
    *[f"{v}{s}" for v in ("IH", "IY") for s in "012"],
    "JH", "K", "L", "M", "N", "NG",
    *[f"{v}{s}" for v in ("OW", "OY") for s in "012"],
    "P", "R", "S", "SH", "T", "TH",
    "UH0", "UH1", "UH2", "UW", "UW0", "UW1", "UW2",
    "V", "W", "Y", "Z", "ZH",
)  # fmt: skip
MAX_PHONES = 20


def checkpoint_path() -> Path:
    """The model file inside the installed ``g2p_en`` package (not imported, see module doc)."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            f"grapheme-to-phoneme needs the {PACKAGE} package (pip install {PACKAGE}; it is "
            "listed in requirements.txt)"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / CHECKPOINT
    if not path.is_file():
        raise FileNotFoundError(f"{path}: g2p model missing from the {PACKAGE} package")
    return path


@functools.cache
def _weights() -> dict[str, np.ndarray]:
    """The network's arrays, loaded once per process."""
    with np.load(checkpoint_path()) as z:
        return {k: z[k].astype(np.float32) for k in z.files}


def _gru_cell(x: np.ndarray, h: np.ndarray, w: dict[str, np.ndarray], p: str) -> np.ndarray:
    """One GRU step (module doc): x (1, E), h (1, H) -> (1, H)."""
    gi = x @ w[f"{p}_w_ih"].T + w[f"{p}_b_ih"]  # (1, 3H)
    gh = h @ w[f"{p}_w_hh"].T + w[f"{p}_b_hh"]  # (1, 3H)
    size = h.shape[1]
    rz = 1.0 / (1.0 + np.exp(-(gi[:, : 2 * size] + gh[:, : 2 * size])))
    r, z = rz[:, :size], rz[:, size:]
    n = np.tanh(gi[:, 2 * size :] + r * gh[:, 2 * size :])
    return (1.0 - z) * n + z * h


def predict(word: str) -> list[str]:
    """ARPAbet phones (with stress digits) of one lower-case word; letters only are read."""
    w = _weights()
    letters = re.sub(r"[^a-z]", "", word.lower())
    if not letters:
        return []
    ids = [GRAPHEMES.index(c) for c in letters] + [GRAPHEMES.index("</s>")]
    h = np.zeros((1, w["enc_w_hh"].shape[1]), np.float32)
    for i in ids:
        h = _gru_cell(w["enc_emb"][i][None, :], h, w, "enc")
    phones: list[str] = []
    prev = PHONEMES.index("<s>")
    for _ in range(MAX_PHONES):
        h = _gru_cell(w["dec_emb"][prev][None, :], h, w, "dec")
        prev = int(np.argmax(h @ w["fc_w"].T + w["fc_b"]))
        if PHONEMES[prev] == "</s>":
            break
        phones.append(PHONEMES[prev])
    return phones
