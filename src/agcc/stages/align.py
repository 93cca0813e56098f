"""Stage ``align``: the manifest whose ``textgrid`` column the segments stage reads.

TextGrids are read by :mod:`agcc.io.textgrid`, phones mapped to the six vowels by
:mod:`agcc.phones`. For a corpus with ``align_source: pocketsphinx`` the built-in aligner
(``agcc.extract.phones``) writes MFA-layout TextGrids of the transcripts to ``<out>/textgrids``
and ``<out>/manifest.csv`` points the ``textgrid`` column there; with ``align_source: textgrid``
the manifest is copied unchanged. The ``segments`` stage always reads ``<out>/manifest.csv``.

Audio-only clips (no video and no landmark CSV in the prepared manifest) have no mouth track to
cut: they are left out of ``<out>/manifest.csv`` (and not aligned), counted in
``absent.audio_only`` and named in one log line, not skipped. The features and train stages read
the prepared manifest, so those clips still train the SER model.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd

from agcc import tracking
from agcc.errors import ConfigError
from agcc.io.manifest import read_manifest, write_manifest
from agcc.params import AlignParams, BaseParams

log = logging.getLogger(__name__)


def run(
    name: str, manifest: Path, source: str, ap: AlignParams, base: BaseParams, out_dir: Path
) -> None:
    """Write ``out_dir/manifest.csv`` whose ``textgrid`` column the segments stage reads.

    ``source="pocketsphinx"``: align every transcript into ``out_dir/textgrids`` and keep the
    aligned rows (the others go to ``skips.csv``); ``source="textgrid"``: copy the manifest.
    ``out_dir/textgrids`` always exists (empty for a copy), as DVC tracks it.
    """
    out_dir = Path(out_dir)
    params = {"source": source, "align": ap.model_dump(), "max_skip_share": base.max_skip_share}
    with tracking.corpus_stage_run("align", name, params, out_dir, base.max_skip_share) as stage:
        frame, n_absent = without_audio_only(read_manifest(manifest), name)
        stage.skips.n_seen = len(frame)
        stage.metrics["absent.audio_only"] = n_absent
        (out_dir / "textgrids").mkdir(parents=True, exist_ok=True)
        log.info("align %s: %d utterances from %s, source %s", name, len(frame), manifest, source)
        if source == "pocketsphinx":
            from agcc.extract import phones  # pocketsphinx only when the corpus uses it

            frame, counts = phones.align_manifest(
                frame, out_dir / "textgrids", ap, stage.skips, name
            )
            stage.metrics |= counts
        elif source != "textgrid":
            raise ConfigError(f"align source must be textgrid or pocketsphinx, got {source!r}")
        write_manifest(frame, out_dir / "manifest.csv")
        log.info("align %s: wrote %s (%d utterances)", name, out_dir / "manifest.csv", len(frame))
        stage.metrics["utterances"] = stage.headline["utterances"] = len(frame)


def without_audio_only(frame: pd.DataFrame, name: str) -> tuple[pd.DataFrame, int]:
    """The rows with a video or a landmark CSV, and the number of audio-only rows left out."""
    audio_only = (frame["video"].str.strip() == "") & (frame["landmarks"].str.strip() == "")
    ids = frame.loc[audio_only, "utt_id"].tolist()
    if ids:
        log.info(
            "align %s: %d audio-only clips left out (no video, no landmark CSV: no mouth track "
            "to segment; absent by design, not skips): %s%s",
            name,
            len(ids),
            ", ".join(ids[:5]),
            ", ..." if len(ids) > 5 else "",
        )
    return frame[~audio_only].reset_index(drop=True), len(ids)
