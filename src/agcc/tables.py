"""Tables I and II: building them, their Markdown and their flat metrics.

Table I from cluster assignments (:mod:`agcc.overlap`); Table II from the train stage's
prediction files (:mod:`agcc.io.predictions`) scored by :mod:`agcc.stats`.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from agcc.errors import DataError
from agcc.figures import demo_prefix
from agcc.io.predictions import ORACLE_SUFFIX, method_dir, read_predictions
from agcc.overlap import EMOTION_ORDER, IPA, cluster_shares, corpus_counts, overlap, overlap_cell
from agcc.params import VOWELS, EvaluateParams
from agcc.stats import (
    MIN_CI_SEEDS,
    BootstrapDiff,
    binary_uar,
    hierarchical_paired_bootstrap,
    holm,
    uar,
)


def table1(
    frame: pd.DataFrame,
    corpora: tuple[str, str],
    k: int,
    emotions: tuple[str, ...],
    threshold: float,
) -> pd.DataFrame:
    """Table I from segment assignments (columns corpus, vowel, emotion, cluster).

    Returns a frame with columns ``section`` (overlap | average | eq1), ``row`` (Cluster_1 ..
    Cluster_k, then All and one row per emotion in the paper's order) and one column per vowel
    in IPA (/a/ /ə/ /ɛ/ /i/ /æ/ /u/).
    """
    rows = [("All", None)] + [(e.capitalize(), e) for e in EMOTION_ORDER if e in emotions]
    top = {f"Cluster_{i + 1}": {} for i in range(k)}
    avg: dict[str, dict[str, float]] = {name: {} for name, _ in rows}
    eq1: dict[str, dict[str, float]] = {name: {} for name, _ in rows}
    for v in VOWELS:
        sub = frame[frame["vowel"] == v]
        p = cluster_shares(corpus_counts(sub, corpora, k))
        for i, o in enumerate(overlap(p[0], p[1])):
            top[f"Cluster_{i + 1}"][IPA[v]] = o
        for name, emotion in rows:
            cell = sub if emotion is None else sub[sub["emotion"] == emotion]
            avg[name][IPA[v]], eq1[name][IPA[v]] = overlap_cell(cell, corpora, k, threshold)
    parts = [
        pd.DataFrame.from_dict(d, orient="index").rename_axis("row").reset_index().assign(section=s)
        for s, d in (("overlap", top), ("average", avg), ("eq1", eq1))
    ]
    return pd.concat(parts, ignore_index=True)[["section", "row", *IPA.values()]]


def table1_markdown(table: pd.DataFrame, corpora: tuple[str, str], threshold: float) -> str:
    """Table I as Markdown in the paper's layout; NaN cells are shown as "-"."""
    cols = list(IPA.values())
    rows = []
    titles = {"average": "**Average Cluster Overlap**", "eq1": "**Eq. 1 Sim**"}
    for section, part in table.groupby("section", sort=False):
        if section in titles:
            rows.append([titles[section]] + [""] * len(cols))
        rows += [[r["row"], *(_one_decimal(r[c]) for c in cols)] for _, r in part.iterrows()]
    out = [
        f"# {demo_prefix(corpora)}Table I: AG cluster overlap across corpora",
        "",
        f"Percentage overlap of AG clusters across corpora ({corpora[0]} vs {corpora[1]}) for six "
        f"vowels; averages over the common clusters (overlap >= {threshold:g} %).",
        "",
        *_md_table(["AG Cluster", *cols], rows, text_columns=1),
    ]
    return "\n".join(out) + "\n"


def _one_decimal(x: float) -> str:
    """A Table I cell: one decimal, "-" for NaN."""
    return "-" if not np.isfinite(x) else f"{x:.1f}"


def table1_metrics(table: pd.DataFrame) -> dict[str, float]:
    """Finite average overlaps and Eq. 1 values as flat metrics, e.g. ``avg_overlap.all.AA``."""
    to_code = {ipa: code for code, ipa in IPA.items()}
    metrics = {}
    for section, key in (("average", "avg_overlap"), ("eq1", "eq1_sim")):
        part = table[table["section"] == section].set_index("row")[list(IPA.values())]
        for row, values in part.iterrows():
            metrics |= {
                f"{key}.{str(row).lower()}.{to_code[ipa]}": round(float(x), 4)
                for ipa, x in values.items()
                if np.isfinite(x)
            }
        all_values = part.loc["All"].to_numpy(float)
        if np.isfinite(all_values).any():
            metrics[f"{key}.all.mean"] = round(float(np.nanmean(all_values)), 4)
    return metrics


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


#: One (direction, method key)'s test labels (n,), predictions (S, n) and seeds (S,), by seed.
Preds = dict[tuple[str, str], tuple[np.ndarray, np.ndarray, np.ndarray]]

#: runs.csv task of the models with one output per emotion (the others: binary_<emotion>).
MULTICLASS = "multiclass"


def derived_column(emotion: str) -> str:
    """Column of the binary UAR of ``emotion`` derived from the multiclass model's argmax."""
    return f"{emotion}_derived"


def binary_column(emotion: str) -> str:
    """Column of the binary UAR of ``emotion``'s dedicated one-vs-rest model."""
    return f"{emotion}_binary"


def _checked_predictions(
    r: pd.Series, train_dir: Path, classes: tuple[str, ...], utts: dict[str, list]
) -> pd.DataFrame:
    """A run's predictions, checked to cover the same test utterances as its direction's."""
    frame = read_predictions(train_dir / r["predictions"], classes)
    ids = utts.setdefault(r["direction"], frame["utt_id"].tolist())
    if frame["utt_id"].tolist() != ids:
        raise DataError(
            f"{train_dir / r['predictions']}: test utterances differ from the other runs of "
            f"{r['direction']}; re-run the train stage"
        )
    return frame


def score_runs(
    runs: pd.DataFrame, train_dir: Path, emotions: tuple[str, ...]
) -> tuple[pd.DataFrame, Preds]:
    """Per-run UARs (fractions), and per (direction, method_dir) the labels and predictions.

    Returns one row per multiclass run with ``uar_4cat`` and one binary UAR per emotion derived
    from its argmax (:func:`derived_column`: predicted e iff e is the argmax, a rule fixed in
    advance), plus, where runs.csv has dedicated binary models (task ``binary_<e>``), their
    UARs (:func:`binary_column`) for the same (direction, method, seed); and a dict of
    (y_true (n,), y_pred (seeds, n), seeds (seeds,)) of the multiclass models on test
    utterances sorted by utt_id, the prediction rows in increasing seed order.
    """
    if "task" not in runs.columns:
        runs = runs.assign(task=MULTICLASS)
    n, utts = len(emotions), {}
    scores, rows = [], {}
    for _, r in runs[runs["task"] == MULTICLASS].iterrows():
        frame = _checked_predictions(r, train_dir, emotions, utts)
        y, p = frame["y_true"].to_numpy(), frame["y_pred"].to_numpy()
        key = (r["direction"], method_dir(r["method"], r["oracle"]))
        rows.setdefault(key, (y, []))[1].append((int(r["seed"]), p))
        derived = {derived_column(e): binary_uar(y, p, i) for i, e in enumerate(emotions)}
        scores.append(r.to_dict() | {"uar_4cat": uar(y, p, n)} | derived)
    frame = pd.DataFrame(scores)
    binary = _binary_scores(runs, train_dir, emotions, utts)
    if len(binary):
        frame = frame.merge(binary, on=["direction", "method", "oracle", "seed"], how="left")
    preds = {}
    for key, (y, seeded) in rows.items():
        seeded.sort(key=lambda sp: sp[0])
        preds[key] = (y, np.stack([p for _, p in seeded]), np.array([s for s, _ in seeded]))
    return frame, preds


def _binary_scores(
    runs: pd.DataFrame, train_dir: Path, emotions: tuple[str, ...], utts: dict[str, list]
) -> pd.DataFrame:
    """One row per (direction, method, oracle, seed) with each binary model's UAR.

    Every multiclass (direction, method, seed) needs all the binary models once binary runs
    exist; a missing one is a DataError naming it.
    """
    tasks = {f"binary_{e}": e for e in emotions}
    binary = runs[runs["task"].isin(tasks)]
    if binary.empty:
        return binary
    cells: dict[tuple, dict[str, float]] = {}
    for _, r in binary.iterrows():
        e = tasks[r["task"]]
        frame = _checked_predictions(r, train_dir, (f"not_{e}", e), utts)
        key = (r["direction"], r["method"], bool(r["oracle"]), int(r["seed"]))
        cell = cells.setdefault(key, {})
        if binary_column(e) in cell:
            raise DataError(f"{train_dir}: two {r['task']} runs of {key}; re-run the train stage")
        cell[binary_column(e)] = uar(frame["y_true"].to_numpy(), frame["y_pred"].to_numpy(), 2)
    multi = runs[runs["task"] == MULTICLASS]
    for _, r in multi.iterrows():
        key = (r["direction"], r["method"], bool(r["oracle"]), int(r["seed"]))
        missing = [t for t, e in tasks.items() if binary_column(e) not in cells.get(key, {})]
        if missing:
            raise DataError(
                f"{train_dir}: {r['method']} {r['direction']} seed {r['seed']} lacks the binary "
                f"models {missing}; re-run that train stage (train.binary_models: true)"
            )
    keys = ["direction", "method", "oracle", "seed"]
    return pd.DataFrame([dict(zip(keys, k, strict=True)) | v for k, v in cells.items()])


def check_seed_sets(scores: pd.DataFrame) -> None:
    """Raise DataError unless every Table II method and direction has the same seeds, once each.

    The expected seeds are those of any run; a (direction, method) lacking some (a failed or
    missing train run) or repeating one is named with its seeds, so no method is compared on
    a different seed set than another.
    """
    keys = [method_dir(m, o) for m, o in zip(scores["method"], scores["oracle"], strict=True)]
    groups = scores.assign(_key=keys).groupby(["direction", "_key"], sort=False)["seed"]
    expected = sorted({int(s) for s in scores["seed"]})
    bad = [
        f"{direction} {key}: seeds {sorted(int(s) for s in seeds)}"
        for (direction, key), seeds in groups
        if sorted(int(s) for s in seeds) != expected
    ]
    if bad:
        raise DataError(
            f"Table II needs the same seeds {expected} for every method and direction (each "
            f"once), but {'; '.join(bad)}; a train run failed or is missing: see "
            "<method>/runs.csv and re-run that train stage"
        )


def row_labels(method: str, oracle: bool, source: str, target: str) -> tuple[str, str]:
    """(method label, direction label) of a Table II row: upper bounds read target->target."""
    label = key_label(method_dir(method, oracle))
    return label, (f"{target}→{target}" if method == "upper_bound" else f"{source}→{target}")


def score_columns(scores: pd.DataFrame, emotions: tuple[str, ...]) -> list[str]:
    """Table II's score columns: 4-class UAR, dedicated binary UARs (when trained), derived."""
    binary = [binary_column(e) for e in emotions if binary_column(e) in scores.columns]
    return ["uar_4cat", *binary, *(derived_column(e) for e in emotions)]


def table2(
    scores: pd.DataFrame, emotions: tuple[str, ...], tuned: tuple[str, ...] = ()
) -> pd.DataFrame:
    """Mean and sample std (percent) over seeds per direction and method, in the paper's order.

    ``tuned`` methods (hyperparameters from a study on the target dev split) have ``tuned``
    True and "(tuned)" in their label.
    """
    cols = score_columns(scores, emotions)
    rows = []
    for (direction, method, oracle), part in scores.groupby(
        ["direction", "method", "oracle"], sort=False
    ):
        src, tgt = part["source"].iloc[0], part["target"].iloc[0]
        label, dir_label = row_labels(method, bool(oracle), src, tgt)
        label += " (tuned)" if method in tuned else ""
        row = {
            "method": method,
            "oracle": bool(oracle),
            "method_label": label,
            "direction": direction,
            "direction_label": dir_label,
            "source": src,
            "target": tgt,
            "tuned": method in tuned,
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


#: ci_flag of a CI from fewer than MIN_CI_SEEDS seeds: reported, but marked.
CI_FLAG = f"not meaningful (< {MIN_CI_SEEDS} seeds)"


CI_COLUMNS = [
    "direction", "ag_cc", "baseline", "diff", "ci_low", "ci_high", "p", "p_holm", "n_seeds",
    "ci_flag", "n_test",
]  # fmt: skip


def bootstrap_cis(preds: Preds, ep: EvaluateParams, seed: int, n_classes: int) -> pd.DataFrame:
    """AG-CC minus each baseline per direction: 4-class UAR difference, CI and p (percent).

    Hierarchical paired bootstrap over seeds and test utterances
    (:func:`agcc.stats.hierarchical_paired_bootstrap`), one Generator seeded with ``seed`` per
    direction (every comparison of a direction sees the same draws); p-values are
    Holm-adjusted over the comparisons against each AG-CC key within a direction. Seed sets
    must match (:func:`check_seed_sets`); ``ci_flag`` marks CIs from fewer than MIN_CI_SEEDS.
    """
    rows = []
    for direction in dict.fromkeys(d for d, _ in preds):
        keys = [k for d, k in preds if d == direction]
        for ag_key in (k for k in keys if k.removesuffix(ORACLE_SUFFIX) == "ag_cc"):
            family, p_raw = [], []
            for base_key in (k for k in keys if k.removesuffix(ORACLE_SUFFIX) in BASELINES):
                y, ag_pred, ag_seeds = preds[(direction, ag_key)]
                _, base_pred, base_seeds = preds[(direction, base_key)]
                if not np.array_equal(ag_seeds, base_seeds):
                    raise DataError(
                        f"{direction}: {ag_key} has seeds {ag_seeds.tolist()} but {base_key} "
                        f"has {base_seeds.tolist()}; compare methods on the same seeds"
                    )
                rng = np.random.default_rng(seed)
                res = hierarchical_paired_bootstrap(
                    y, ag_pred, base_pred, ep.bootstrap, ep.ci, rng, n_classes
                )
                family.append(_ci_row(direction, ag_key, base_key, res, len(y)))
                p_raw.append(res.p)
            for row, p in zip(family, holm(np.array(p_raw)), strict=True):
                rows.append(row | {"p_holm": round(float(p), 4)})
    return pd.DataFrame(rows, columns=CI_COLUMNS)


def _ci_row(direction: str, ag_key: str, base_key: str, res: BootstrapDiff, n_test: int) -> dict:
    """One CI table row (percent, rounded), before the Holm adjustment."""
    return {
        "direction": direction,
        "ag_cc": ag_key,
        "baseline": base_key,
        "diff": round(100 * res.diff, 2),
        "ci_low": round(100 * res.low, 2),
        "ci_high": round(100 * res.high, 2),
        "p": round(res.p, 4),
        "n_seeds": res.n_seeds,
        "ci_flag": "" if res.meaningful else CI_FLAG,
        "n_test": n_test,
    }


def _mean_std(mean: float, std: float) -> str:
    """``mean ± std`` (or the mean alone with one seed)."""
    return f"{mean:.2f}" if not np.isfinite(std) else f"{mean:.2f} ± {std:.2f}"


def _md_table(header: list[str], rows: list[list[str]], text_columns: int = 2) -> list[str]:
    """Markdown table lines; the first ``text_columns`` columns left-aligned, the rest right."""
    return [
        _md_line(header),
        _md_line(["---"] * text_columns + ["---:"] * (len(header) - text_columns)),
        *(_md_line(r) for r in rows),
    ]


def _md_line(cells: list[str]) -> str:
    """One Markdown table row."""
    return "| " + " | ".join(cells) + " |"


def table2_markdown(
    t2: pd.DataFrame, cis: pd.DataFrame, emotions: tuple[str, ...], ep: EvaluateParams
) -> str:
    """Our Table II, the bootstrap CIs and the paper's Table II as a separate reference block."""
    short = [BINARY_LABELS.get(e, e[:3].title()) for e in emotions]
    has_binary = f"{binary_column(emotions[0])}_mean" in t2.columns
    corpora = [*t2["source"], *t2["target"]]
    out = [
        f"# {demo_prefix(corpora)}Table II (this pipeline): SER UAR (%) on the target test split",
        "",
        "Mean ± sample std over seeds. "
        + (
            "Binary columns (bin): UAR of the dedicated one-vs-rest model of each emotion "
            "(`train.binary_models: true`), trained like the 4-class model. "
            if has_binary
            else "No dedicated binary models were trained (`train.binary_models: false`). "
        )
        + "Derived columns (der): one-vs-rest UAR derived from the 4-class model (an utterance "
        "counts as emotion e iff e is its 4-class argmax), not a model of its own. Rows marked "
        "ORACLE used true target labels for the anchors (analysis only).",
        "",
        *_tuning_note(t2, ep),
    ]
    header = ["Method", "Direction", "4-CAT"]
    header += [f"{b} (bin)" for b in short] if has_binary else []
    header += [f"{b} (der)" for b in short]
    cols = score_columns(t2.rename(columns=lambda c: c.removesuffix("_mean")), emotions)
    rows = [
        [
            r["method_label"],
            r["direction_label"],
            *(_mean_std(r[f"{c}_mean"], r[f"{c}_std"]) for c in cols),
            r["seeds"],
        ]
        for _, r in t2.iterrows()
    ]
    out += _md_table([*header, "seeds"], rows)
    out += ["", *ci_markdown(cis, ep)]
    return "\n".join(out + ["", *paper_reference()]) + "\n"


#: Methods with hyperparameters of their own, which fair tuning tunes all of or none of.
ANCHORED = ("pa_cc", "hard_ag", "la_cc", "ag_cc")


def _tuning_note(t2: pd.DataFrame, ep: EvaluateParams) -> list[str]:
    """How the anchored rows' hyperparameters were chosen (``evaluate.tuned``), as lines."""
    anchored = [m for m in ANCHORED if m in set(t2["method"])]
    tuned = [m for m in anchored if m in ep.tuned]
    if not tuned:
        return [
            "Hyperparameters: every anchored method uses its params.yaml values; none was "
            "tuned on the target (`evaluate.tuned` is empty).",
            "",
        ]
    untuned = [m for m in anchored if m not in tuned]
    note = (
        f"Rows marked (tuned): {', '.join(key_label(m) for m in tuned)} took their "
        "hyperparameters from a study on the labelled target dev split (`evaluate.tuned`)."
    )
    if untuned:
        note += (
            f" **Unequal tuning**: {', '.join(key_label(m) for m in untuned)} were not tuned, "
            "so their rows are not a fair comparison; tune every anchored method with the "
            "same budget, or none."
        )
    return [note, ""]


def ci_markdown(cis: pd.DataFrame, ep: EvaluateParams) -> list[str]:
    """The CI section of table2.md: heading, how the CIs and p-values were made, the table."""
    out = [
        f"## {demo_prefix(cis.get('direction', []))}AG-CC minus each baseline: 4-class UAR "
        f"(percentage points), hierarchical paired bootstrap {ep.ci:.0%} CI",
        "",
        f"The CIs are over seeds and test utterances: each of {ep.bootstrap} resamples draws "
        "the seeds with replacement, then the test utterances with replacement (the same seeds "
        "and utterances for both methods: paired), and takes the difference of the UARs "
        "averaged over the drawn seeds. p: two-sided bootstrap p-value of no difference, "
        "Holm-adjusted over the comparisons against AG-CC within each direction. With fewer "
        f"than {MIN_CI_SEEDS} seeds the CI is reported but not meaningful (flagged in the note).",
        "",
    ]
    rows = [
        [
            r["direction"].replace("_to_", "→"),
            f"{key_label(r['ag_cc'])} − {key_label(r['baseline'])}",
            f"{r['diff']:+.2f}",
            f"[{r['ci_low']:+.2f}, {r['ci_high']:+.2f}]",
            _p_text(r["p_holm"]),
            str(r["n_seeds"]),
            str(r["n_test"]),
            r["ci_flag"],
        ]
        for _, r in cis.iterrows()
    ]
    header = ["Direction", "Comparison", "Δ UAR", "CI", "p (Holm)", "seeds", "test utts", "note"]
    lines = _md_table(header, rows)
    lines[1] = _md_line(["---"] * 2 + ["---:"] * 5 + ["---"])  # the note is text
    return out + lines


def _p_text(p: float) -> str:
    """A p-value cell: three decimals, "< 0.001" below that."""
    return "< 0.001" if p < 0.001 else f"{p:.3f}"


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


def table2_metrics(t2: pd.DataFrame, cis: pd.DataFrame, emotions: tuple[str, ...]) -> dict:
    """Flat metrics: UAR means/stds per direction and method, and the CI rows.

    Per comparison: diff, low, high, p_holm, n_seeds and ci_meaningful (0 when the CI comes
    from fewer than MIN_CI_SEEDS seeds, the flag of table2.md).
    """
    metrics: dict[str, float] = {}
    cols = score_columns(t2.rename(columns=lambda c: c.removesuffix("_mean")), emotions)
    for _, r in t2.iterrows():
        key = f"{r['direction']}.{method_dir(r['method'], r['oracle'])}"
        for c in cols:
            metrics[f"{key}.{c}"] = r[f"{c}_mean"]
            if np.isfinite(r[f"{c}_std"]):
                metrics[f"{key}.{c}_std"] = r[f"{c}_std"]
    for _, r in cis.iterrows():
        key = f"ci.{r['direction']}.{r['ag_cc']}_minus_{r['baseline']}"
        metrics |= {
            f"{key}.diff": r["diff"],
            f"{key}.low": r["ci_low"],
            f"{key}.high": r["ci_high"],
            f"{key}.p_holm": r["p_holm"],
            f"{key}.n_seeds": int(r["n_seeds"]),
            f"{key}.ci_meaningful": int(not r["ci_flag"]),
        }
    return metrics
