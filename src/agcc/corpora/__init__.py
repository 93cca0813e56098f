"""Corpus adapters: one per layout (CREMA-D, MSP-IMPROV, a generic manifest CSV)."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable

from agcc.corpora import crema_d, manifest, msp_improv
from agcc.corpora.base import LayoutError, Manifest, Row, attach_side_paths, rows_to_frame
from agcc.corpora.splits import assign_splits
from agcc.io.manifest import MANIFEST_COLUMNS, read_manifest
from agcc.params import CorpusParams
from agcc.skips import SkipReport

__all__ = [
    "MANIFEST_COLUMNS",
    "LayoutError",
    "Manifest",
    "assign_splits",
    "build_manifest",
    "read_manifest",
]

log = logging.getLogger(__name__)

Reader = Callable[[CorpusParams, SkipReport], tuple[list[Row], Counter[str]]]
ADAPTERS: dict[str, Reader] = {
    "crema_d": crema_d.read,
    "msp_improv": msp_improv.read,
    "manifest": manifest.read,
}


def build_manifest(name: str, cp: CorpusParams, skips: SkipReport) -> Manifest:
    """Read corpus ``name`` with its adapter into a Manifest (kept rows, dropped labels, n_seen).

    Raises LayoutError (a ValueError) when ``cp.root`` is not the adapter's layout; every unusable
    item is added to ``skips`` with its file and reason.
    """
    n_skips_before = skips.n_skipped
    rows, dropped = ADAPTERS[cp.adapter](cp, skips)
    frame = attach_side_paths(rows_to_frame(rows, name), cp.landmarks_dir, cp.textgrid_dir)
    n_seen = len(frame) + sum(dropped.values()) + skips.n_skipped - n_skips_before
    log.info(
        "%s (%s): %d utterances kept, %d dropped %s, %d skipped",
        name,
        cp.adapter,
        len(frame),
        sum(dropped.values()),
        dict(dropped),
        skips.n_skipped - n_skips_before,
    )
    return Manifest(frame=frame, dropped=dropped, n_seen=n_seen)
