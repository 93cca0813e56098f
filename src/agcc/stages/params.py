"""Stage ``params``: validate the whole params.yaml on every change, before any other stage.

DVC tracks the params keys of each stage one by one, so a misspelt key that no stage tracks
(``base.max_skip_shar``) would change nothing and never be read. This stage depends on the whole
file, so any edit runs it; it fails naming every offending key, and every other stage depends
on its output. The output's content does not depend on the values, so a valid edit re-runs only
the stages whose own keys changed.
"""

from __future__ import annotations

import logging
from pathlib import Path

from agcc.params import load_params

log = logging.getLogger(__name__)

VALID = "params.yaml is valid\n"


def run(params_path: Path, out: Path) -> None:
    """Validate ``params_path`` (an error names each bad key) and write the marker ``out``."""
    load_params(params_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(VALID)
    log.info("%s: every key valid; wrote %s", params_path, out)
