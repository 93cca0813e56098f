"""Stage ``cluster``: AG clusters by Soft-DTW k-means over the vowel segments.

docs/method.md section 4. One model for all six vowels is fitted on the ``cluster.fit_split``
(validation) segments of every corpus together, all emotions included, as in the paper
(Sec. II-C). Every k of ``cluster.k_grid`` (plus ``cluster.k``) is fitted and cached in
``models/k{k:02d}.npz`` so tuning can pick k later without re-clustering; the elbow of the
inertia curve is reported and the chosen model (``cluster.k`` if set, else the elbow) assigns a
cluster id to every segment of every split of every corpus.

Outputs in ``out_dir``: ``models/k??.npz`` and ``model.npz`` (:mod:`agcc.io.cluster_model`),
``assignments.csv`` (seg_id, corpus, split, emotion, vowel, cluster; ids 0..k-1), ``elbow.csv``
(k, inertia, silhouette; a DVC plot), ``elbow.png`` and ``metrics.json``; all but metrics.json
are written to a staging folder and moved into ``out_dir`` once every one is written.

Assignments, silhouettes and the centroid distance matrix are computed with the batched soft-DTW
of :mod:`agcc.sdtw` whatever the fitting engine: a segment goes to the centroid of smallest
soft-DTW, the rule both engines use. Bad input is an error naming the folder and the segment:
NaN or infinite values, fewer than two frames, mixed frame widths, an empty corpus, a corpus
without fit-split segments, or a k larger than the number of fit segments.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from agcc import tracking
from agcc.clustering import elbow_k, fit_indices, summary_metrics, sweep, sweep_ks
from agcc.devices import resolve_device
from agcc.figures.elbow import plot_elbow
from agcc.io.cluster_model import AGModel, save_model, write_assignments
from agcc.io.segments import load_corpora
from agcc.params import BaseParams, ClusterParams
from agcc.sdtw import assign
from agcc.skips import staged_outputs

log = logging.getLogger(__name__)

#: Files of the stage logged as MLflow artefacts.
ARTIFACTS = ("assignments.csv", "model.npz", "elbow.csv", "elbow.png")


def run(seg_dirs: list[Path], cp: ClusterParams, base: BaseParams, out_dir: Path) -> AGModel:
    """Fit the k sweep on the fit split of all corpora, pick k, assign every segment, write all."""
    out_dir = Path(out_dir)
    params = {"cluster": cp.model_dump(), "seed": base.seed, "segments": [str(d) for d in seg_dirs]}
    with tracking.stage_run("cluster", params=params, metrics_path=out_dir / "metrics.json") as st:
        log.info("loading segments from %s", ", ".join(map(str, seg_dirs)))
        table, series = load_corpora([Path(d) for d in seg_dirs])
        st.skips.n_seen = len(table)
        idx = fit_indices(table, cp, base.seed)
        ks = sweep_ks(cp, len(idx))
        device = resolve_device(cp.device, "cluster.device")
        log.info(
            "fitting k = %s on %d %r segments (%s engine, %s)",
            ks,
            len(idx),
            cp.fit_split,
            cp.engine,
            device,
        )
        with staged_outputs(out_dir) as staging:  # nothing lands in out_dir unless all is written
            models, curve = sweep(
                [series[i] for i in idx], ks, cp, base.seed, device, st, staging / "models"
            )
            on_grid = curve[curve["k"].isin(cp.k_grid)]
            k_elbow = elbow_k(on_grid["k"].to_numpy(), on_grid["inertia"].to_numpy())
            model = models[cp.k if cp.k is not None else k_elbow]
            log.info("elbow at k=%d; using k=%d", k_elbow, model.k)
            labels = assign(series, model.centroids, cp.gamma, device)
            log.info("writing assignments of %d segments, model and elbow curve", len(labels))
            write_assignments(table, labels, staging / "assignments.csv")
            save_model(staging / "model.npz", model)
            curve.to_csv(staging / "elbow.csv", index=False)
            plot_elbow(curve, k_elbow, model.k).savefig(staging / "elbow.png", dpi=120)
            for name in ARTIFACTS:
                st.log_artifact(staging / name)
        counts = {
            "n_segments": len(table),
            "n_fit": len(idx),
            "n_empty_clusters": int((np.bincount(labels, minlength=model.k) == 0).sum()),
        }
        st.metrics |= summary_metrics(model, k_elbow, models, curve, counts)
        st.headline |= {"k": model.k, "k_elbow": k_elbow, "segments": len(table)}
        st.log_metrics({"fit_seconds": sum(f.seconds for f in models.values())})
    return model
