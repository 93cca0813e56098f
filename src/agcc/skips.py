"""Per-stage skip report: every dropped input is named with its file and reason, and counted.

A stage collects skips while it runs, writes them next to its outputs, logs them to MLflow, and
fails loudly (after writing the report) when it drops more than ``max_share`` of its input.

Each skip has a ``kind``, a short stable code (``missing_file``, ``duration_mismatch``, ...)
that counts and the too-many-skips summary group by, and a ``detail`` naming the file and the
reason. skips.csv has the columns item, path, reason, kind, detail. A text cell that a
spreadsheet would run as a formula (starting with ``=``, ``+``, ``-``, ``@``, a tab or a
carriage return) is written with a leading apostrophe, so opening the report is harmless.

Outputs of a stage are written to a staging folder (:func:`staged_outputs`) and moved into
place only once the stage has passed its skip check, so a stage that fails leaves the outputs
of its previous successful run (or none) rather than a finished-looking partial set.
"""

from __future__ import annotations

import csv
import logging
import os
import re
import shutil
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from agcc.errors import AgccError, DataError

log = logging.getLogger(__name__)

#: First characters that make a spreadsheet read a cell as a formula.
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


class TooManySkipsError(AgccError, RuntimeError):
    """A stage dropped more than the allowed share of its input."""


class InputError(DataError):
    """One input item (a file, a line, an utterance) cannot be used; the message names it.

    ``kind`` is the short code the skip is counted under; by default the reason's first words.
    """

    def __init__(self, path: str | Path, reason: str, kind: str | None = None) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = str(path)
        self.reason = reason
        self.kind = kind or reason_kind(reason)


@dataclass
class Skip:
    """One dropped item."""

    item: str
    path: str
    reason: str
    kind: str = ""

    def __post_init__(self) -> None:
        """Derive the kind from the reason when none was given."""
        self.kind = metric_key(self.kind) if self.kind else reason_kind(self.reason)

    @property
    def detail(self) -> str:
        """The file and the reason in one line."""
        return f"{self.path}: {self.reason}" if self.path else self.reason


@dataclass
class SkipReport:
    """Skips of one stage run, with the number of items it looked at."""

    stage: str
    skips: list[Skip] = field(default_factory=list)
    n_seen: int = 0

    def add(self, item: str, path: str | Path, reason: str, kind: str | None = None) -> None:
        """Record one dropped item and log it."""
        self.skips.append(Skip(str(item), str(path), reason, kind or ""))
        log.warning("%s: skipped %s (%s): %s", self.stage, item, path, reason)

    def add_error(self, item: str, err: InputError) -> None:
        """Record an InputError raised while reading ``item``."""
        self.add(item, err.path, err.reason, getattr(err, "kind", None))

    @property
    def n_skipped(self) -> int:
        """Number of dropped items."""
        return len(self.skips)

    def share(self) -> float:
        """Dropped share of the input (0 when nothing was seen)."""
        return self.n_skipped / self.n_seen if self.n_seen else 0.0

    def counts(self) -> dict[str, int]:
        """Skips per kind (metric-safe keys, for metrics)."""
        return dict(Counter(s.kind for s in self.skips))

    def write(self, path: str | Path) -> Path:
        """Write the report as CSV; an empty report still gets a header (see module doc)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["item", "path", "reason", "kind", "detail"])
            for s in self.skips:
                w.writerow(map(neutralise, (s.item, s.path, s.reason, s.kind, s.detail)))
        return path

    def check(self, max_share: float) -> None:
        """Raise TooManySkipsError when more than ``max_share`` of the input was dropped.

        The message groups the skips by kind, most frequent first, with one example each.
        """
        if self.n_seen and self.share() > max_share:
            raise TooManySkipsError(
                f"{self.stage}: dropped {self.n_skipped} of {self.n_seen} inputs "
                f"({self.share():.1%} > max_skip_share {max_share:.1%}); by kind: "
                f"{self.summary()}"
            )

    def summary(self) -> str:
        """'3x missing_file (e.g. a.csv: missing file); 1x ...' over every kind."""
        first: dict[str, Skip] = {}
        for s in self.skips:
            first.setdefault(s.kind, s)
        counts = Counter(s.kind for s in self.skips).most_common()
        return "; ".join(f"{n}x {k} (e.g. {first[k].detail})" for k, n in counts)


def neutralise(value: object) -> str:
    """Text safe to open in a spreadsheet: a leading apostrophe before a formula character."""
    text = str(value)
    return "'" + text if text.startswith(FORMULA_START) else text


def metric_key(text: str, limit: int = 60) -> str:
    """``text`` as a metric-name-safe key: ASCII letters, digits and underscores only.

    Any other run of characters becomes one underscore; an empty result is ``other``. Used for
    every name taken from input data (phone labels, reasons) before it becomes a metric name.
    """
    key = re.sub(r"[^A-Za-z0-9_]+", "_", text.strip()).strip("_")
    return key[:limit] or "other"


def reason_kind(reason: str) -> str:
    """Default kind of a reason: its leading words (at most five) before any value or colon.

    ``"too short: 50.0 ms < 25 ms"`` -> ``too_short``; ``"missing file"`` -> ``missing_file``.
    """
    head = re.match(r"[A-Za-z][A-Za-z _-]*", reason.strip())
    words = head.group(0).split()[:5] if head else []
    return metric_key(" ".join(words).lower())


@contextmanager
def staged_outputs(out_dir: str | Path) -> Iterator[Path]:
    """A staging folder beside ``out_dir``; its files move into ``out_dir`` on normal exit.

    On an exception the staging folder is removed and ``out_dir`` is left as it was (a folder
    left by a killed process is removed by the next run). Call the stage's skip check inside
    the block so a stage that drops too much publishes nothing.
    """
    out_dir = Path(out_dir)
    for stale in out_dir.parent.glob(f".{out_dir.name}.staging-*"):
        shutil.rmtree(stale, ignore_errors=True)  # left by a killed run of this stage
    stage = out_dir.parent / f".{out_dir.name}.staging-{os.getpid()}"
    stage.mkdir(parents=True)
    try:
        yield stage
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise
    publish(stage, out_dir)


def publish(stage: Path, out_dir: Path) -> None:
    """Move every file of ``stage`` to the same place under ``out_dir``, then remove ``stage``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    for src in sorted(p for p in stage.rglob("*") if p.is_file()):
        dst = out_dir / src.relative_to(stage)
        dst.parent.mkdir(parents=True, exist_ok=True)
        os.replace(src, dst)
    shutil.rmtree(stage, ignore_errors=True)
