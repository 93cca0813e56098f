"""Per-stage skip report: every dropped input is named with its file and reason, and counted.

A stage collects skips while it runs, writes them next to its outputs, logs them to MLflow, and
fails loudly (after writing the report) when it drops more than ``max_share`` of its input.
"""

from __future__ import annotations

import csv
import logging
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from agcc.errors import AgccError, DataError

log = logging.getLogger(__name__)


class TooManySkipsError(AgccError, RuntimeError):
    """A stage dropped more than the allowed share of its input."""


class InputError(DataError):
    """One input item (a file, a line, an utterance) cannot be used; the message names it."""

    def __init__(self, path: str | Path, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = str(path)
        self.reason = reason


@dataclass
class Skip:
    """One dropped item."""

    item: str
    path: str
    reason: str


@dataclass
class SkipReport:
    """Skips of one stage run, with the number of items it looked at."""

    stage: str
    skips: list[Skip] = field(default_factory=list)
    n_seen: int = 0

    def add(self, item: str, path: str | Path, reason: str) -> None:
        """Record one dropped item and log it."""
        self.skips.append(Skip(str(item), str(path), reason))
        log.warning("%s: skipped %s (%s): %s", self.stage, item, path, reason)

    def add_error(self, item: str, err: InputError) -> None:
        """Record an InputError raised while reading ``item``."""
        self.add(item, err.path, err.reason)

    @property
    def n_skipped(self) -> int:
        """Number of dropped items."""
        return len(self.skips)

    def share(self) -> float:
        """Dropped share of the input (0 when nothing was seen)."""
        return self.n_skipped / self.n_seen if self.n_seen else 0.0

    def counts(self) -> dict[str, int]:
        """Skips per reason, with the reason's first words as key (for metrics)."""
        return dict(Counter(_reason_key(s.reason) for s in self.skips))

    def write(self, path: str | Path) -> Path:
        """Write the report as CSV (item, path, reason); an empty report still gets a header."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["item", "path", "reason"])
            for s in self.skips:
                w.writerow([s.item, s.path, s.reason])
        return path

    def check(self, max_share: float) -> None:
        """Raise TooManySkipsError when more than ``max_share`` of the input was dropped."""
        if self.n_seen and self.share() > max_share:
            top = Counter(s.reason for s in self.skips).most_common(3)
            reasons = "; ".join(f"{n}x {r}" for r, n in top)
            raise TooManySkipsError(
                f"{self.stage}: dropped {self.n_skipped} of {self.n_seen} inputs "
                f"({self.share():.1%} > max_skip_share {max_share:.1%}); most common: {reasons}"
            )


def _reason_key(reason: str) -> str:
    """Short metric-safe key for a reason: text before the first colon, spaces as underscores."""
    head = reason.split(":", 1)[0].strip().lower()
    return "".join(c if c.isalnum() else "_" for c in head)[:60] or "other"
