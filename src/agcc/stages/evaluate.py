"""Stage ``evaluate``: the paper's Table II from the train stage's predictions (METHOD.md sec. 8).

For every method and direction (and the upper bounds, labelled target->target as the paper's
C->C / I->I rows), on the target test split:

* 4-class UAR: unweighted average recall = macro recall, the mean over the classes present in
  the true labels of TP_c / (TP_c + FN_c).
* Binary UARs (Neu, Ang, Hap, Sad): one-vs-rest UAR, (TPR + TNR) / 2 for "emotion e" against
  "any other", DERIVED FROM THE 4-CLASS POSTERIORS: an utterance is predicted e iff e is the
  4-class argmax. The paper trains dedicated binary models; ``evaluate.binary_models: true``
  asks for those, which this pipeline does not implement (NotImplementedError naming the param).
* Mean and sample standard deviation over the seeds of each method and direction.
* Paired bootstrap CIs of AG-CC minus each cross-corpus baseline (4-class UAR): each of
  ``evaluate.bootstrap`` resamples draws test utterances with replacement once, applies the same
  draw to every method and seed (paired), and takes the difference of the seed-averaged UARs;
  the CI is the central ``evaluate.ci`` interval of those differences.

Outputs: table2.csv, table2.md (our table, the CIs, then the paper's own Table II as a separate
reference block, never mixed with ours), table2.png (4-class UAR per row with the seed spread)
and metrics.json. Runs trained with ``train.oracle`` carry "ORACLE" in their label everywhere.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from agcc import tracking
from agcc.io.predictions import ORACLE_SUFFIX, load_runs, method_dir, read_predictions
from agcc.params import BaseParams, EvaluateParams
from agcc.stats import binary_uar, paired_bootstrap_diff, uar

log = logging.getLogger(__name__)

METHOD_LABELS = {
    "upper_bound": "Upper Bound", "source_only": "Source only", "pa_cc": "PA-CC",
    "la_cc": "LA-CC", "ag_cc": "AG-CC", "hard_ag": "Hard-AG",
}  # fmt: skip
#: Baselines AG-CC is compared with in the bootstrap (the upper bounds train on the target).
BASELINES = ("source_only", "pa_cc", "la_cc", "hard_ag")
BINARY_LABELS = {"neutral": "Neu", "anger": "Ang", "happiness": "Hap", "sadness": "Sad"}

#: The paper's Table II (UAR %, CREMA-D and MSP-IMPROV, wav2vec2 features; binary columns from
#: dedicated binary models). A reference only: never merged with this pipeline's numbers.
PAPER_TABLE2 = (
    ("Upper Bound", "C→C", 66.36, 89.44, 88.27, 85.35, 79.51),
    ("Upper Bound", "I→I", 62.10, 87.84, 85.33, 83.68, 75.05),
    ("PA-CC [13]", "C→I", 55.33, 75.35, 73.33, 74.82, 66.98),
    ("PA-CC [13]", "I→C", 53.18, 75.46, 72.14, 73.64, 63.35),
    ("LA-CC [32]", "C→I", 56.04, 78.24, 75.49, 73.50, 66.73),
    ("LA-CC [32]", "I→C", 52.95, 77.67, 76.52, 74.52, 67.73),
    ("AG-CC", "C→I", 57.37, 78.51, 75.03, 76.74, 68.10),
    ("AG-CC", "I→C", 53.83, 77.46, 77.72, 75.30, 65.85),
    ("Hard-AG", "C→I", 54.87, 72.35, 74.46, 71.90, 69.41),
    ("Hard-AG", "I→C", 52.90, 70.68, 71.53, 70.24, 63.24),
)


# ---------------------------------------------------------------------------------------------
# Metrics (pure)


# ---------------------------------------------------------------------------------------------
# Reading the train stage's outputs


def score_runs(
    runs: pd.DataFrame, train_dir: Path, emotions: tuple[str, ...]
) -> tuple[pd.DataFrame, dict[tuple[str, str], tuple[np.ndarray, np.ndarray]]]:
    """Per-run UARs (fractions), and per (direction, method_dir) the labels and predictions.

    Returns the runs with columns ``uar_4cat`` and one binary UAR per emotion, and a dict of
    (y_true (n,), y_pred (seeds, n)) on test utterances sorted by utt_id.
    """
    n = len(emotions)
    scores, preds, utts = [], {}, {}
    for _, r in runs.iterrows():
        frame = read_predictions(train_dir / r["predictions"], emotions)
        y, p = frame["y_true"].to_numpy(), frame["y_pred"].to_numpy()
        key = (r["direction"], method_dir(r["method"], r["oracle"]))
        ids = utts.setdefault(r["direction"], frame["utt_id"].tolist())
        if frame["utt_id"].tolist() != ids:
            raise ValueError(
                f"{train_dir / r['predictions']}: test utterances differ from the "
                f"other runs of {r['direction']}; re-run the train stage"
            )
        preds[key] = (y, np.vstack([preds[key][1], p]) if key in preds else p[None, :])
        scores.append(
            r.to_dict()
            | {"uar_4cat": uar(y, p, n)}
            | {e: binary_uar(y, p, i) for i, e in enumerate(emotions)}
        )
    return pd.DataFrame(scores), preds


# ---------------------------------------------------------------------------------------------
# Table II


def row_labels(method: str, oracle: bool, source: str, target: str) -> tuple[str, str]:
    """(method label, direction label) of a Table II row: upper bounds read target->target."""
    label = key_label(method_dir(method, oracle))
    return label, (f"{target}→{target}" if method == "upper_bound" else f"{source}→{target}")


def table2(scores: pd.DataFrame, emotions: tuple[str, ...]) -> pd.DataFrame:
    """Mean and sample std (percent) over seeds per direction and method, in the paper's order."""
    cols = ["uar_4cat", *emotions]
    rows = []
    for (direction, method, oracle), part in scores.groupby(
        ["direction", "method", "oracle"], sort=False
    ):
        src, tgt = part["source"].iloc[0], part["target"].iloc[0]
        label, dir_label = row_labels(method, bool(oracle), src, tgt)
        row = {
            "method": method,
            "oracle": bool(oracle),
            "method_label": label,
            "direction": direction,
            "direction_label": dir_label,
            "source": src,
            "target": tgt,
            "n_seeds": len(part),
            "seeds": " ".join(str(s) for s in sorted(part["seed"])),
        }
        for c in cols:
            values = 100.0 * part[c].to_numpy(float)
            row[f"{c}_mean"] = round(float(values.mean()), 2)
            row[f"{c}_std"] = round(float(values.std(ddof=1)), 2) if len(values) > 1 else math.nan
        rows.append(row)
    frame = pd.DataFrame(rows)
    order = {m: i for i, m in enumerate(METHOD_LABELS)}
    directions = {d: i for i, d in enumerate(dict.fromkeys(scores["direction"]))}
    frame["_o"] = frame["method"].map(lambda m: order.get(m, len(order)))
    frame["_d"] = frame["direction"].map(directions)
    return (
        frame.sort_values(["_o", "oracle", "_d"]).drop(columns=["_o", "_d"]).reset_index(drop=True)
    )


def key_label(key: str) -> str:
    """Display label of a method key such as ``ag_cc`` or ``pa_cc_ORACLE``."""
    method = key.removesuffix(ORACLE_SUFFIX)
    return METHOD_LABELS.get(method, method) + (" (ORACLE)" if key != method else "")


def bootstrap_cis(
    preds: dict[tuple[str, str], tuple[np.ndarray, np.ndarray]],
    ep: EvaluateParams,
    seed: int,
    n_classes: int,
) -> pd.DataFrame:
    """AG-CC minus each baseline per direction: 4-class UAR difference and CI, in percent."""
    rows = []
    rng = np.random.default_rng(seed)
    for direction in dict.fromkeys(d for d, _ in preds):
        keys = [k for d, k in preds if d == direction]
        ags = [k for k in keys if k.removesuffix(ORACLE_SUFFIX) == "ag_cc"]
        bases = [k for k in keys if k.removesuffix(ORACLE_SUFFIX) in BASELINES]
        for ag_key, base_key in ((a, b) for a in ags for b in bases):
            y, ag_pred = preds[(direction, ag_key)]
            diff, lo, hi = paired_bootstrap_diff(
                y, ag_pred, preds[(direction, base_key)][1], ep.bootstrap, ep.ci, rng, n_classes
            )
            rows.append(
                {
                    "direction": direction,
                    "ag_cc": ag_key,
                    "baseline": base_key,
                    "diff": round(100 * diff, 2),
                    "ci_low": round(100 * lo, 2),
                    "ci_high": round(100 * hi, 2),
                    "n_test": len(y),
                }
            )
    return pd.DataFrame(
        rows, columns=["direction", "ag_cc", "baseline", "diff", "ci_low", "ci_high", "n_test"]
    )


def _cell(mean: float, std: float) -> str:
    """``mean ± std`` (or the mean alone with one seed)."""
    return f"{mean:.2f}" if not np.isfinite(std) else f"{mean:.2f} ± {std:.2f}"


def _md_table(header: list[str], rows: list[list[str]]) -> list[str]:
    """Markdown table lines."""
    line = lambda cells: "| " + " | ".join(cells) + " |"  # noqa: E731
    return [
        line(header),
        line(["---"] * 2 + ["---:"] * (len(header) - 2)),
        *(line(r) for r in rows),
    ]


def table2_markdown(
    t2: pd.DataFrame, cis: pd.DataFrame, emotions: tuple[str, ...], ep: EvaluateParams
) -> str:
    """Our Table II, the bootstrap CIs and the paper's Table II as a separate reference block."""
    bins = [BINARY_LABELS.get(e, e[:3].title()) for e in emotions]
    out = [
        "# Table II (this pipeline): SER UAR (%) on the target test split",
        "",
        "Mean ± sample std over seeds. Binary columns: one-vs-rest UAR **derived from the "
        "4-class posteriors** (an utterance counts as emotion e iff e is the 4-class argmax; "
        "`evaluate.binary_models: false`), not dedicated binary models. Rows marked ORACLE "
        "used true target labels for the anchors (analysis only).",
        "",
    ]
    rows = [
        [
            r["method_label"],
            r["direction_label"],
            _cell(r["uar_4cat_mean"], r["uar_4cat_std"]),
            *(_cell(r[f"{e}_mean"], r[f"{e}_std"]) for e in emotions),
            r["seeds"],
        ]
        for _, r in t2.iterrows()
    ]
    out += _md_table(["Method", "Direction", "4-CAT", *bins, "seeds"], rows)
    out += [
        "",
        f"## AG-CC minus each baseline: 4-class UAR (percentage points), paired "
        f"bootstrap {ep.ci:.0%} CI ({ep.bootstrap} resamples of the test utterances, shared "
        "by all methods and seeds; seed-averaged UARs)",
        "",
    ]
    ci_rows = [
        [
            r["direction"].replace("_to_", "→"),
            f"{key_label(r['ag_cc'])} − {key_label(r['baseline'])}",
            f"{r['diff']:+.2f}",
            f"[{r['ci_low']:+.2f}, {r['ci_high']:+.2f}]",
            str(r["n_test"]),
        ]
        for _, r in cis.iterrows()
    ]
    out += _md_table(["Direction", "Comparison", "Δ UAR", "CI", "test utts"], ci_rows)
    return "\n".join(out + ["", *paper_reference()]) + "\n"


def paper_reference() -> list[str]:
    """The paper's Table II as a clearly labelled reference block (Markdown lines)."""
    head = [
        "## Reference only: the paper's Table II (NOT produced by this pipeline)",
        "",
        "Values as printed in Upadhyay et al., arXiv 2412.19909, Table II: CREMA-D (C) and "
        "MSP-IMPROV (I), wav2vec2 features, binary columns from dedicated binary models. "
        "Numbers on the demo corpora are not comparable with these.",
        "",
    ]
    rows = [[m, d, *(f"{v:.2f}" for v in values)] for m, d, *values in PAPER_TABLE2]
    return head + _md_table(["Method", "Direction", "4-CAT", "Neu", "Ang", "Hap", "Sad"], rows)


def plot_table2(t2: pd.DataFrame) -> Any:
    """Horizontal bars of the 4-class UAR per Table II row, with the seed std as error bars."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7.5, 0.45 * len(t2) + 1.2), layout="constrained")
    ax = fig.subplots()
    labels = [f"{r['method_label']} ({r['direction_label']})" for _, r in t2.iterrows()]
    y = np.arange(len(t2))[::-1]
    colours = [f"C{i % 10}" for i in pd.factorize(t2["direction"])[0]]
    ax.barh(y, t2["uar_4cat_mean"], xerr=t2["uar_4cat_std"].fillna(0.0), color=colours, capsize=3)
    ax.set_yticks(y, labels, fontsize=8)
    ax.axvline(100.0 / 4, color="grey", ls=":", lw=1)
    ax.set_xlabel("4-class UAR (%) on the target test split; ± std over seeds")
    ax.set_title("Table II (this pipeline)")
    return fig


def table2_metrics(t2: pd.DataFrame, cis: pd.DataFrame, emotions: tuple[str, ...]) -> dict:
    """Flat metrics: UAR means/stds per direction and method, and the CI rows."""
    metrics: dict[str, float] = {}
    for _, r in t2.iterrows():
        key = f"{r['direction']}.{method_dir(r['method'], r['oracle'])}"
        for c in ("uar_4cat", *emotions):
            metrics[f"{key}.{c}"] = r[f"{c}_mean"]
            if np.isfinite(r[f"{c}_std"]):
                metrics[f"{key}.{c}_std"] = r[f"{c}_std"]
    for _, r in cis.iterrows():
        key = f"ci.{r['direction']}.{r['ag_cc']}_minus_{r['baseline']}"
        metrics |= {
            f"{key}.diff": r["diff"],
            f"{key}.low": r["ci_low"],
            f"{key}.high": r["ci_high"],
        }
    return metrics


# ---------------------------------------------------------------------------------------------
# Stage


def run(train_dir: Path, ep: EvaluateParams, base: BaseParams, out_dir: Path) -> pd.DataFrame:
    """Table II from ``train_dir`` into ``out_dir``; returns the table."""
    if ep.binary_models:
        raise NotImplementedError(
            "evaluate.binary_models=true: dedicated binary (one-vs-rest) models are not "
            "implemented; set it to false to derive the binary UARs from the 4-class posteriors"
        )
    train_dir, out_dir = Path(train_dir), Path(out_dir)
    params = {
        "evaluate": ep.model_dump(),
        "seed": base.seed,
        "emotions": base.emotions,
        "train_dir": str(train_dir),
    }
    with tracking.stage_run("evaluate", params=params, metrics_path=out_dir / "metrics.json") as st:
        runs = load_runs(train_dir)
        log.info("scoring %d runs from %s", len(runs), train_dir)
        scores, preds = score_runs(runs, train_dir, base.emotions)
        t2 = table2(scores, base.emotions)
        log.info("bootstrap: %d resamples per comparison", ep.bootstrap)
        cis = bootstrap_cis(preds, ep, base.seed, len(base.emotions))
        out_dir.mkdir(parents=True, exist_ok=True)
        t2.to_csv(out_dir / "table2.csv", index=False)
        (out_dir / "table2.md").write_text(table2_markdown(t2, cis, base.emotions, ep), "utf-8")
        plot_table2(t2).savefig(out_dir / "table2.png", dpi=110)
        for name in ("table2.csv", "table2.md", "table2.png"):
            st.log_artifact(out_dir / name)
        st.metrics |= table2_metrics(t2, cis, base.emotions)
    return t2
