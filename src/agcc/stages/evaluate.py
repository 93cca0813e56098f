"""Stage ``evaluate``: the paper's Table II from the train stages' predictions.

Reads ``<train>/<method>/runs.csv`` of every method of ``train.methods`` (and the upper_bound
rows of source_only's, with ``train.upper_bound``).

docs/method.md section 8. For every method and direction (and the upper bounds, labelled
target->target as the paper's C->C / I->I rows), on the target test split:

* 4-class UAR: unweighted average recall = macro recall, the mean over the classes present in
  the true labels of TP_c / (TP_c + FN_c).
* Binary UARs (Neu, Ang, Hap, Sad): one-vs-rest UAR, (TPR + TNR) / 2 for "emotion e" against
  "any other", twice: from the dedicated one-vs-rest model of e (``train.binary_models:
  true``; task ``binary_<e>`` in runs.csv; columns "(bin)"), and DERIVED from the 4-class
  model by a rule fixed in advance: an utterance is predicted e iff e is its 4-class argmax
  (columns "(der)"). Without binary models only the derived columns exist.
* ``evaluate.tuned``: the methods whose hyperparameters came from a tuning study on the target
  dev split; their rows say "(tuned)" and the table says when the tuning was unequal.
* Mean and sample standard deviation over the seeds of each method and direction.
* Every method and direction must have the same seeds: a failed or missing train run is a
  DataError naming the method, direction and seeds (no silent dropping).
* Hierarchical paired bootstrap CIs of AG-CC minus each cross-corpus baseline (4-class UAR):
  each of ``evaluate.bootstrap`` resamples draws seeds with replacement, then test utterances
  with replacement (the same draws for both methods: paired), and takes the difference of the
  UARs averaged over the drawn seeds; the CI is the central ``evaluate.ci`` interval of those
  differences, so it covers seed and utterance variation. Two-sided bootstrap p-values,
  Holm-adjusted over the comparisons against AG-CC within each direction. With fewer than 3
  seeds the CI is reported but flagged "not meaningful".

Outputs: table2.csv, table2.md (our table, the CIs, then the paper's own Table II as a separate
reference block, never mixed with ours), table2.png (4-class UAR per row with the seed spread)
and metrics.json. Runs trained with ``train.oracle`` carry "ORACLE" in their label everywhere.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd

from agcc import tracking
from agcc.errors import ConfigError
from agcc.figures.table2 import plot_table2
from agcc.io.predictions import load_runs
from agcc.params import BaseParams, EvaluateParams
from agcc.tables import (
    bootstrap_cis,
    check_seed_sets,
    score_runs,
    table2,
    table2_markdown,
    table2_metrics,
)

log = logging.getLogger(__name__)


def run(
    train_dir: Path,
    methods: tuple[str, ...],
    ep: EvaluateParams,
    base: BaseParams,
    out_dir: Path,
) -> pd.DataFrame:
    """Table II of ``methods`` from ``train_dir/<method>/runs.csv`` into ``out_dir``.

    ``methods`` are :meth:`agcc.params.TrainParams.table_methods` (upper_bound rows are read from
    source_only's runs). Returns the table.
    """
    unknown = sorted(set(ep.tuned) - set(methods))
    if unknown:
        raise ConfigError(
            f"evaluate.tuned lists {unknown}, which are not Table II methods {list(methods)}"
        )
    train_dir, out_dir = Path(train_dir), Path(out_dir)
    params = {
        "evaluate": ep.model_dump(),
        "seed": base.seed,
        "emotions": base.emotions,
        "train_dir": str(train_dir),
        "methods": list(methods),
    }
    with tracking.stage_run("evaluate", params=params, metrics_path=out_dir / "metrics.json") as st:
        runs = load_runs(train_dir, methods)
        log.info("scoring %d runs from %s", len(runs), train_dir)
        scores, preds = score_runs(runs, train_dir, base.emotions)
        check_seed_sets(scores)
        t2 = table2(scores, base.emotions, ep.tuned)
        log.info("bootstrap: %d resamples per comparison", ep.bootstrap)
        cis = bootstrap_cis(preds, ep, base.seed, len(base.emotions))
        if (cis["ci_flag"] != "").any():
            log.warning("fewer than 3 seeds: the bootstrap CIs are reported but not meaningful")
        out_dir.mkdir(parents=True, exist_ok=True)
        t2.to_csv(out_dir / "table2.csv", index=False)
        (out_dir / "table2.md").write_text(table2_markdown(t2, cis, base.emotions, ep), "utf-8")
        plot_table2(t2).savefig(out_dir / "table2.png", dpi=110)
        for name in ("table2.csv", "table2.md", "table2.png"):
            st.log_artifact(out_dir / name)
        st.metrics |= table2_metrics(t2, cis, base.emotions)
        diffs = [v for k, v in st.metrics.items() if k.endswith("ag_cc_minus_source_only.diff")]
        if diffs:  # AG-CC minus source-only, 4-class UAR points, mean over directions
            st.headline["ag_cc_gain"] = sum(diffs) / len(diffs)
    return t2
