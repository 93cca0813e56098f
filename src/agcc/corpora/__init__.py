"""Corpus adapters: one per layout (CREMA-D, MSP-IMPROV, a generic manifest CSV)."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable

from agcc.corpora import crema_d, manifest, msp_improv
from agcc.corpora.base import (
    Absent,
    LayoutError,
    Manifest,
    Row,
    attach_side_paths,
    rows_to_frame,
)
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

Reader = Callable[[CorpusParams, SkipReport, Absent], tuple[list[Row], Counter[str]]]
ADAPTERS: dict[str, Reader] = {
    "crema_d": crema_d.read,
    "msp_improv": msp_improv.read,
    "manifest": manifest.read,
}
#: Where each adapter looks for a clip's video (for messages).
VIDEO_LOOKED_FOR: dict[str, Callable[[CorpusParams], str]] = {
    "crema_d": crema_d.video_hint,
    "msp_improv": msp_improv.video_hint,
    "manifest": manifest.video_hint,
}


def build_manifest(name: str, cp: CorpusParams, skips: SkipReport) -> Manifest:
    """Read corpus ``name`` with its adapter into a Manifest (kept rows, dropped labels, n_seen).

    Raises LayoutError (a ValueError) when ``cp.root`` is not the adapter's layout; every unusable
    item is added to ``skips`` with its file and reason, every item absent by design (a label
    row of a clip not on disk, an audio-only clip) to ``Manifest.absent``.
    """
    n_skips_before = skips.n_skipped
    absent = Absent()
    rows, dropped = ADAPTERS[cp.adapter](cp, skips, absent)
    frame = attach_side_paths(rows_to_frame(rows, name), cp)
    audio_only = frame.loc[(frame["video"] == "") & (frame["landmarks"] == ""), "utt_id"]
    reason = f"audio-only clips: no video at {VIDEO_LOOKED_FOR[cp.adapter](cp)}"
    if cp.landmarks_source == "openface_csv":
        reason += f" and no landmark CSV below {cp.landmarks_dir}"
    for utt in audio_only:
        absent.add("audio_only", reason, utt)
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
    absent.log(name)
    return Manifest(frame=frame, dropped=dropped, n_seen=n_seen, absent=absent)
