"""Soft-DTW k-means: our engine against tslearn, same data, init and gamma.

Generates a seeded structured mixture of short multivariate series (mouth-landmark-like
trajectories: 5-25 frames x 24 dims, k warped prototypes plus noise), draws k-means++ centroids
once, runs both engines from them for the same number of iterations and prints the wall time of
each, the speed ratio, and the final inertias, both recomputed by ``agcc.sdtw.soft_dtw`` in
float64 on each engine's final centroids and labels (inertia = mean sdtw(x_i, c_{l_i})^2, the
tslearn definition). Target (docs/method.md section 10): ratio >= 20 on 2 CPU cores, inertia ratio
<= 1.01. Our engine runs the kernel ``--kernel`` selects (auto: the compiled numba kernel on CPU,
the fused Triton kernels on CUDA); ``--compare-torch`` also times the torch wavefront on the same
device from the same init (the engine before the compiled and fused kernels) and prints that
ratio too. ``--kernel fused --device cpu`` runs under ``TRITON_INTERPRET=1`` only (a slow smoke
test of the GPU path, not a timing).

    python benchmarks/sdtw_kmeans.py                    # 5,000 series, k = 10, 10 iterations
    python benchmarks/sdtw_kmeans.py --compare-torch    # ... and the torch kernel
    python benchmarks/sdtw_kmeans.py --threads 2        # 2 threads (default 1)
    python benchmarks/sdtw_kmeans.py --quick            # 600 series, 3 iterations
    python benchmarks/sdtw_kmeans.py --tslearn-iters 2  # time 2 tslearn iterations, extrapolate

GPU goals (absolute times, no reference; a CPU run of the compiled kernel can be added with
``--compare-cpu``):

    python benchmarks/sdtw_kmeans.py --device cuda --n 5000 --skip-tslearn --compare-torch
                                                                    # < 0.5 s, and x vs wavefront
    python benchmarks/sdtw_kmeans.py --device cuda --n 1000000 --skip-tslearn   # < 5 s
    python benchmarks/sdtw_kmeans.py --device cuda --n 100000 --sweep --skip-tslearn  # < 60 s
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

import numpy as np
import torch
from sklearn.metrics import adjusted_rand_score

from agcc.sdtw import ClusteringResult, SoftDTWKMeans, as_padded_dataset, fit_tslearn, soft_dtw

logger = logging.getLogger("sdtw_kmeans")


def make_segments(
    n: int, n_sources: int, dim: int, min_len: int, max_len: int, seed: int
) -> tuple[list[np.ndarray], np.ndarray]:
    """n series (T_i, dim), T_i in min_len..max_len, from n_sources warped smooth prototypes."""
    rng = np.random.default_rng(seed)
    grid = np.linspace(0.0, 1.0, 64)
    freq = rng.uniform(0.5, 2.0, size=(n_sources, 3, dim))
    phase = rng.uniform(0.0, 2 * np.pi, size=(n_sources, 3, dim))
    amp = rng.normal(0.0, 1.0, size=(n_sources, 3, dim))
    waves = amp[:, None] * np.sin(
        2 * np.pi * freq[:, None] * grid[None, :, None, None] + phase[:, None]
    )
    prototypes = waves.sum(axis=2)  # (n_sources, 64, dim)
    sources = rng.integers(0, n_sources, size=n)
    series = []
    for source in sources:
        steps = np.cumsum(rng.uniform(0.5, 1.5, size=rng.integers(min_len, max_len + 1)))
        warp = (steps - steps[0]) / (steps[-1] - steps[0])  # random monotone time warp
        clean = np.stack([np.interp(warp, grid, prototypes[source, :, j]) for j in range(dim)], 1)
        series.append(clean * rng.uniform(0.8, 1.2) + rng.normal(0.0, 0.3, size=clean.shape))
    return series, sources


def evaluate(
    X: list[np.ndarray], centers: np.ndarray, labels: np.ndarray, gamma: float, device: str
) -> dict:
    """Inertia mean sdtw^2 and mean sdtw of each series to its centroid, float64 on ``device``
    (the torch kernel, the same for every engine)."""
    values, lengths = as_padded_dataset(X)
    own = torch.as_tensor(centers, dtype=torch.float64)[torch.as_tensor(labels)]  # (n, T_c, D)
    sdtw = torch.cat(
        [
            soft_dtw(
                own[s].to(device),
                torch.as_tensor(values[s], device=device),
                gamma,
                None,
                torch.as_tensor(lengths[s], device=device),
            ).cpu()
            for s in (slice(i, i + 4096) for i in range(0, len(X), 4096))
        ]
    )
    return {"inertia": float((sdtw**2).mean()), "mean_sdtw": float(sdtw.mean())}


def _model(
    args: argparse.Namespace, init: np.ndarray, kernel: str, device: str, k: int | None = None
) -> SoftDTWKMeans:
    """Our engine with the benchmark's settings, starting from ``init``."""
    return SoftDTWKMeans(
        k or args.k,
        args.gamma,
        max_iter=args.iters,
        tol=0.0,
        max_iter_barycenter=args.max_iter_barycenter,
        tol_barycenter=args.tol_barycenter,
        init=init,
        device=device,
        kernel=kernel,
        n_threads=args.threads,
    )


def run_ours(
    X: list[np.ndarray], init: np.ndarray, args: argparse.Namespace, kernel: str, device: str
) -> tuple[ClusteringResult, dict]:
    """Fit our engine from ``init``; returns the result and its wall and CPU seconds."""
    _model(args, init, kernel, device).fit(X[: min(len(X), 500)])  # compile / warm up
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    start, cpu = time.perf_counter(), time.process_time()
    model = _model(args, init, kernel, device).fit(X)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    seconds = {"wall": time.perf_counter() - start, "cpu": time.process_time() - cpu}
    result = ClusteringResult(model.cluster_centers_, model.labels_, model.inertia_, model.n_iter_)
    return result, seconds


def run_sweep(X: list[np.ndarray], args: argparse.Namespace) -> dict:
    """Wall seconds of the whole k = 5..30 sweep as the cluster stage runs it: the series
    prepared once, then per k its k-means++ init (sharing the candidates' soft-DTW with the
    other k) and fit, all timed."""
    seconds = {}

    def model(k: int) -> SoftDTWKMeans:
        return SoftDTWKMeans(
            k, args.gamma, max_iter=args.iters, tol=0.0, random_state=args.seed,
            max_iter_barycenter=args.max_iter_barycenter, tol_barycenter=args.tol_barycenter,
            device=args.device, kernel=args.kernel, n_threads=args.threads,
        )  # fmt: skip

    start = time.perf_counter()
    prepared = model(5).prepare(X)
    seconds["prepare"] = time.perf_counter() - start
    for k in range(5, 31):
        begin = time.perf_counter()
        model(k).fit(prepared)
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()
        seconds[k] = time.perf_counter() - begin
    return {"sweep_seconds": time.perf_counter() - start, "per_k": seconds}


def run_tslearn(
    X: list[np.ndarray], init: np.ndarray, args: argparse.Namespace
) -> tuple[ClusteringResult, dict]:
    """Fit tslearn from ``init`` for --tslearn-iters iterations; returns result and seconds."""
    fit_tslearn(X[: min(len(X), 500)], args.k, args.gamma, init, 1, args.seed)  # numba JIT warm-up
    start, cpu = time.perf_counter(), time.process_time()
    result = fit_tslearn(X, args.k, args.gamma, init, args.tslearn_iters, args.seed, tol=0.0)
    return result, {"wall": time.perf_counter() - start, "cpu": time.process_time() - cpu}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n", type=int, default=5000, help="number of series")
    parser.add_argument("--k", type=int, default=10, help="clusters (also mixture sources)")
    parser.add_argument("--iters", type=int, default=10, help="k-means iterations")
    parser.add_argument("--gamma", type=float, default=1.0)
    parser.add_argument(
        "--max-iter-barycenter", type=int, default=20, help="torch engine L-BFGS iterations"
    )
    parser.add_argument(
        "--tol-barycenter", type=float, default=1e-4, help="torch engine L-BFGS relative ftol"
    )
    parser.add_argument(
        "--threads", type=int, default=1, help="torch intra-op threads of the torch engine"
    )
    parser.add_argument("--device", default="cpu")
    parser.add_argument(
        "--kernel",
        default="auto",
        choices=["auto", "compiled", "torch", "fused"],
        help="our kernel",
    )
    parser.add_argument(
        "--compare-torch", action="store_true", help="also time the torch kernel (same device)"
    )
    parser.add_argument(
        "--compare-cpu", action="store_true", help="also time the compiled kernel on the CPU"
    )
    parser.add_argument("--sweep", action="store_true", help="time the k = 5..30 sweep")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--tslearn-iters",
        type=int,
        default=None,
        help="time fewer tslearn iterations and extrapolate",
    )
    parser.add_argument("--skip-tslearn", action="store_true", help="time the torch engine only")
    parser.add_argument("--quick", action="store_true", help="600 series, 3 iterations")
    parser.add_argument("--json", type=Path, default=None, help="also write the numbers here")
    args = parser.parse_args(argv)
    if args.quick:
        args.n, args.iters = 600, 3
    args.tslearn_iters = min(args.tslearn_iters or args.iters, args.iters)
    return args


def summarise(args: argparse.Namespace, truth: np.ndarray, runs: dict) -> dict:
    """Numbers of the run: per engine time, inertia, agreement with the mixture; the ratios."""
    report: dict = {"n": args.n, "k": args.k, "iters": args.iters, "gamma": args.gamma}
    report["device"] = args.device
    report["kernel"] = args.kernel
    report["threads"] = args.threads
    for name, (result, seconds, quality) in runs.items():
        report[name] = {
            **{f"{kind}_seconds": value for kind, value in seconds.items()},
            "n_iter": result.n_iter,
            "reported_inertia": result.inertia,
            "ari_vs_sources": adjusted_rand_score(truth, result.labels),
            **quality,
        }
    for name in ("torch kernel", "compiled cpu"):
        if name in runs:
            report[f"speed_ratio_{name.replace(' ', '_')}"] = (
                report[name]["wall_seconds"] / report["ours"]["wall_seconds"]
            )
            report[f"inertia_ratio_{name.replace(' ', '_')}"] = (
                report["ours"]["inertia"] / report[name]["inertia"]
            )
    if "tslearn" in runs:
        tsl, ours = report["tslearn"], report["ours"]
        tsl["iters_timed"] = args.tslearn_iters
        for kind in ("wall", "cpu"):
            tsl[f"{kind}_seconds_for_iters"] = (
                tsl[f"{kind}_seconds"] * args.iters / args.tslearn_iters
            )
            report[f"speed_ratio_{kind}"] = (
                tsl[f"{kind}_seconds_for_iters"] / ours[f"{kind}_seconds"]
            )
        report["inertia_ratio"] = ours["inertia"] / tsl["inertia"]
    return report


def print_report(report: dict) -> None:
    """The final summary on stdout."""
    print(
        f"soft-DTW k-means: n={report['n']} k={report['k']} iters={report['iters']} "
        f"gamma={report['gamma']} device={report['device']} kernel={report['kernel']} "
        f"threads={report['threads']}"
    )
    for name in ("ours", "torch kernel", "compiled cpu", "tslearn"):
        if name in report:
            r = report[name]
            print(
                f"  {name:12s} wall {r['wall_seconds']:7.2f} s  cpu {r['cpu_seconds']:7.2f} s  "
                f"inertia {r['inertia']:.6g}  mean sdtw {r['mean_sdtw']:.6g}  "
                f"(own report {r['reported_inertia']:.6g})  "
                f"ARI vs sources {r['ari_vs_sources']:.3f}"
            )
    if "inertia_ratio" in report:
        tsl = report["tslearn"]
        if tsl["iters_timed"] < report["iters"]:
            print(
                f"  tslearn timed on {tsl['iters_timed']} of {report['iters']} iterations; its "
                f"times are EXTRAPOLATED linearly (wall {tsl['wall_seconds_for_iters']:.1f} s) and "
                f"its inertia is after {tsl['iters_timed']} iterations"
            )
        print(
            f"  speed ratio (tslearn / ours): wall {report['speed_ratio_wall']:.1f}x, "
            f"cpu {report['speed_ratio_cpu']:.1f}x   target >= 20"
        )
        print(f"  inertia ratio (ours / tslearn): {report['inertia_ratio']:.4f}   target <= 1.01")
    for name in ("torch_kernel", "compiled_cpu"):
        if f"speed_ratio_{name}" in report:
            print(
                f"  speed ratio ({name.replace('_', ' ')} / ours): wall "
                f"{report[f'speed_ratio_{name}']:.1f}x, inertia ratio (ours / "
                f"{name.replace('_', ' ')}) {report[f'inertia_ratio_{name}']:.4f}"
            )
    if "sweep_seconds" in report:
        print(
            f"  k = 5..30 sweep: {report['sweep_seconds']:.1f} s wall "
            "(target on an H200-class GPU at n = 100,000: < 60 s)"
        )
    if report["device"].startswith("cuda"):
        print(
            f"  ours on {report['device']}: {report['ours']['wall_seconds']:.2f} s "
            "(targets on an H200-class GPU: n = 5,000 < 0.5 s, n = 1,000,000 < 5 s)"
        )


def main(argv: list[str] | None = None) -> dict:
    """Run the benchmark and print the summary."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    args = parse_args(argv)
    X, truth = make_segments(args.n, args.k, 24, 5, 25, args.seed)
    start = time.perf_counter()
    seeding = SoftDTWKMeans(
        args.k, args.gamma, random_state=args.seed, device=args.device, n_threads=args.threads
    )
    init = seeding.init_centers(X)
    logger.info("k-means++ init: %.2f s (counted for neither engine)", time.perf_counter() - start)
    runs = {}
    engines = [("ours", args.kernel, args.device)]
    if args.compare_torch:
        engines.append(("torch kernel", "torch", args.device))
    if args.compare_cpu:
        engines.append(("compiled cpu", "compiled", "cpu"))
    for name, kernel, device in engines:
        result, seconds = run_ours(X, init, args, kernel, device)
        quality = evaluate(X, result.cluster_centers, result.labels, args.gamma, args.device)
        runs[name] = (result, seconds, quality)
        logger.info("%s: %.2f s wall", name, seconds["wall"])
    if not args.skip_tslearn:
        result, seconds = run_tslearn(X, init, args)
        quality = evaluate(X, result.cluster_centers, result.labels, args.gamma, args.device)
        runs["tslearn"] = (result, seconds, quality)
        logger.info("tslearn: %.2f s wall, %d iterations", seconds["wall"], args.tslearn_iters)
    report = summarise(args, truth, runs)
    if args.sweep:
        report |= run_sweep(X, args)
    print_report(report)
    if args.json is not None:
        args.json.write_text(json.dumps(report, indent=2))
    return report


if __name__ == "__main__":
    main()
