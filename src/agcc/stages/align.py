"""Stage ``align``: the manifest whose ``textgrid`` column the segments stage reads.

TextGrids are read by :mod:`agcc.io.textgrid`, phones mapped to the six vowels by
:mod:`agcc.phones`. For a corpus with ``align_source: pocketsphinx`` the built-in aligner
(``agcc.extract.phones``) writes MFA-layout TextGrids of the transcripts to ``<out>/textgrids``
and ``<out>/manifest.csv`` points the ``textgrid`` column there; with ``align_source: textgrid``
the manifest is copied unchanged. The ``segments`` stage always reads ``<out>/manifest.csv``.
"""

from __future__ import annotations

import logging
from pathlib import Path

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
        frame = read_manifest(manifest)
        stage.skips.n_seen = len(frame)
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
