"""Parameters out of range for the checks added here: an error naming the key, nothing run."""

from __future__ import annotations

import pytest
import yaml

from tests.faults.conftest import Corpus


@pytest.mark.parametrize(
    ("section", "values", "message"),
    [
        ("segments", {"max_duration_mismatch_s": -1}, "segments.max_duration_mismatch_s"),
        ("tune", {"heartbeat_s": 60, "grace_s": 30}, "grace_s must exceed heartbeat_s"),
    ],
)
def test_out_of_range_parameter_names_the_key(
    corpus: Corpus, section: str, values: dict, message: str, caplog: pytest.LogCaptureFixture
) -> None:
    raw = yaml.safe_load(corpus.params.read_text())
    raw[section] |= values
    corpus.params.write_text(yaml.safe_dump(raw, allow_unicode=True, sort_keys=False))
    assert corpus.segments() == 2
    assert f"{corpus.params}: invalid parameters" in caplog.text and message in caplog.text
    assert not (corpus.root / "seg").exists()
