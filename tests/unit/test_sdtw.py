"""Soft-DTW and Soft-DTW k-means: hand values, limits, gradients, tslearn agreement, k-means."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from agcc.sdtw import (
    SoftDTWKMeans,
    as_padded_dataset,
    fit_tslearn,
    resample,
    soft_dtw,
    soft_dtw_cross,
    soft_dtw_divergence,
)
from agcc.sdtw.barycentre import _barycenter_objective, _lbfgs_barycenters, _Series


def _series(values: list[float]) -> torch.Tensor:
    """A univariate series as a (1, T, 1) float64 batch."""
    return torch.tensor(values, dtype=torch.float64)[None, :, None]


def _dtw_squared(x: np.ndarray, y: np.ndarray) -> float:
    """Plain DTW with squared Euclidean cost (the gamma -> 0 limit of soft-DTW)."""
    acc = np.full((len(x) + 1, len(y) + 1), np.inf)
    acc[0, 0] = 0.0
    for i in range(1, len(x) + 1):
        for j in range(1, len(y) + 1):
            cost = float(((x[i - 1] - y[j - 1]) ** 2).sum())
            acc[i, j] = cost + min(acc[i - 1, j - 1], acc[i - 1, j], acc[i, j - 1])
    return float(acc[-1, -1])


def _soft_dtw_numpy(x: np.ndarray, y: np.ndarray, gamma: float) -> float:
    """Cell-by-cell soft-DTW recursion with squared Euclidean cost (Cuturi & Blondel 2017)."""
    acc = np.full((len(x) + 1, len(y) + 1), np.inf)
    acc[0, 0] = 0.0
    for i in range(1, len(x) + 1):
        for j in range(1, len(y) + 1):
            prev = np.array([acc[i - 1, j - 1], acc[i - 1, j], acc[i, j - 1]])
            low = prev.min()
            softmin = low - gamma * np.log(np.exp(-(prev - low) / gamma).sum())
            acc[i, j] = float(((x[i - 1] - y[j - 1]) ** 2).sum()) + softmin
    return float(acc[-1, -1])


def _random_batch(
    rng: np.random.Generator, batch: int, n: int, m: int, dim: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Random float64 series x (B, n, D), y (B, m, D) with random lengths >= 1."""
    x = torch.tensor(rng.normal(size=(batch, n, dim)))
    y = torch.tensor(rng.normal(size=(batch, m, dim)))
    x_len = torch.tensor(rng.integers(1, n + 1, size=batch))
    y_len = torch.tensor(rng.integers(1, m + 1, size=batch))
    return x, y, x_len, y_len


def _toy_clusters(rng: np.random.Generator, per_cluster: int = 8) -> tuple[list, np.ndarray]:
    """Three obvious groups of 2-d series of 6-12 frames: flat low, ramp, flat high."""
    series, truth = [], []
    for group in range(3):
        for _ in range(per_cluster):
            t = np.linspace(0.0, 1.0, int(rng.integers(6, 13)))
            base = {0: np.zeros_like(t), 1: 5.0 * t, 2: np.full_like(t, 5.0)}[group]
            series.append(np.stack([base, base], axis=1) + rng.normal(0, 0.1, (len(t), 2)))
            truth.append(group)
    return series, np.array(truth)


# ---------------------------------------------------------------------------- hand values


def test_self_similarity_is_minus_gamma_log_three() -> None:
    # three zero-cost alignments of the repeated 2 (diagonal, right-down, down-right)
    x = _series([1, 2, 2, 3])
    assert soft_dtw(x, x, gamma=0.01).item() == pytest.approx(-0.01 * math.log(3), abs=1e-9)
    assert soft_dtw(x, x, gamma=0.01).item() == pytest.approx(-0.010986, abs=1e-6)


def test_shifted_series_tends_to_one() -> None:
    # the only alignment of cost 1 matches the final 3 with 4 (all others cost >= 2)
    x, y = _series([1, 2, 2, 3]), _series([1, 2, 3, 4])
    assert soft_dtw(x, y, gamma=0.01).item() == pytest.approx(1.0, abs=1e-9)
    assert soft_dtw(x, y, gamma=1.0).item() == pytest.approx(-0.8954437807, abs=1e-8)


def test_small_gamma_tends_to_squared_euclidean_dtw() -> None:
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(7, 3)), rng.normal(size=(5, 3))
    dtw = _dtw_squared(x, y)
    for gamma in (0.1, 0.01, 0.001):
        value = soft_dtw(torch.tensor(x)[None], torch.tensor(y)[None], gamma).item()
        # softmin <= min, and the soft minimum over <= 3^(n+m) paths loses <= gamma log(#paths)
        assert dtw - gamma * (7 + 5) * math.log(3) - 1e-12 <= value <= dtw + 1e-12
    assert soft_dtw(torch.tensor(x)[None], torch.tensor(y)[None], 1e-4).item() == pytest.approx(
        dtw, abs=1e-2
    )


# ------------------------------------------------------------------------- batch semantics


def test_gradcheck_variable_lengths() -> None:
    rng = np.random.default_rng(1)
    x, y, x_len, y_len = _random_batch(rng, 4, 5, 4, 2)
    x.requires_grad_(True)
    y.requires_grad_(True)
    assert torch.autograd.gradcheck(lambda a, b: soft_dtw(a, b, 0.7, x_len, y_len), (x, y))


def test_padding_does_not_change_values_or_gradients() -> None:
    rng = np.random.default_rng(2)
    x, y, x_len, y_len = _random_batch(rng, 6, 6, 5, 3)
    padded = torch.cat([x, torch.full((6, 3, 3), float("nan"))], dim=1)  # NaN padding
    garbage = torch.cat([y, torch.tensor(rng.normal(size=(6, 4, 3))) * 100], dim=1)
    y_garbage = garbage.clone()
    y_garbage[:, :5][torch.arange(5)[None, :] >= y_len[:, None]] = 1e3  # beyond y_len too
    reference = soft_dtw(x, y, 0.5, x_len, y_len)
    y_garbage.requires_grad_(True)
    value = soft_dtw(padded, y_garbage, 0.5, x_len, y_len)
    assert torch.allclose(value, reference, atol=1e-12)
    value.sum().backward()
    beyond = torch.arange(9)[None, :] >= y_len[:, None]  # (B, 9) frames past each length
    assert float(y_garbage.grad[beyond].abs().max()) == 0.0


def test_agrees_with_cellwise_recursion_on_variable_length_multivariate() -> None:
    rng = np.random.default_rng(3)
    x, y, x_len, y_len = _random_batch(rng, 12, 9, 7, 4)
    ours = soft_dtw(x, y, 0.3, x_len, y_len).numpy()
    reference = [
        _soft_dtw_numpy(x[b, : x_len[b]].numpy(), y[b, : y_len[b]].numpy(), 0.3) for b in range(12)
    ]
    np.testing.assert_allclose(ours, reference, rtol=0, atol=1e-9)


@pytest.mark.slow  # importing tslearn and compiling its numba kernels takes ~10 s
@pytest.mark.filterwarnings("ignore:h5py not installed")
def test_agrees_with_tslearn_on_variable_length_multivariate() -> None:
    metrics = pytest.importorskip("tslearn.metrics")
    rng = np.random.default_rng(3)
    x, y, x_len, y_len = _random_batch(rng, 12, 9, 7, 4)
    ours = soft_dtw(x, y, 0.8, x_len, y_len).numpy()
    reference = [
        metrics.soft_dtw(x[b, : x_len[b]].numpy(), y[b, : y_len[b]].numpy(), gamma=0.8)
        for b in range(12)
    ]
    np.testing.assert_allclose(ours, reference, rtol=0, atol=1e-6)


def test_cross_matches_pairwise_and_is_symmetric() -> None:
    rng = np.random.default_rng(4)
    x, y, x_len, y_len = _random_batch(rng, 5, 6, 6, 2)
    cross = soft_dtw_cross(x, y, 1.0, x_len, y_len, max_pairs=7)  # several uneven batches
    pairs = soft_dtw(
        x.repeat_interleave(5, 0),
        y.repeat(5, 1, 1),
        1.0,
        x_len.repeat_interleave(5),
        y_len.repeat(5),
    )
    assert torch.allclose(cross, pairs.view(5, 5), atol=1e-10)
    assert torch.allclose(soft_dtw_cross(y, x, 1.0, y_len, x_len), cross.T, atol=1e-10)


def test_divergence_is_zero_on_identical_and_positive_otherwise() -> None:
    rng = np.random.default_rng(5)
    x, y, x_len, y_len = _random_batch(rng, 8, 5, 5, 2)
    assert float(soft_dtw_divergence(x, x, 1.0, x_len, x_len).abs().max()) < 1e-10
    assert float(soft_dtw_divergence(x, y, 1.0, x_len, y_len).min()) > 0.0


def test_invalid_arguments_quote_the_value() -> None:
    x = torch.zeros(2, 3, 1)
    with pytest.raises(ValueError, match="gamma.*-1"):
        soft_dtw(x, x, gamma=-1.0)
    with pytest.raises(ValueError, match="1..3.*max 4"):
        soft_dtw(x, x, 1.0, torch.tensor([1, 4]))


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu() -> None:
    rng = np.random.default_rng(6)
    x, y, x_len, y_len = _random_batch(rng, 16, 8, 6, 3)
    on_gpu = soft_dtw(x.cuda(), y.cuda(), 1.0, x_len.cuda(), y_len.cuda()).cpu()
    assert torch.allclose(on_gpu, soft_dtw(x, y, 1.0, x_len, y_len), atol=1e-9)


# ----------------------------------------------------------------------------- datasets


def test_nan_padded_array_equals_list_input() -> None:
    series = [np.ones((3, 2)), np.arange(10.0).reshape(5, 2)]
    padded = np.full((2, 5, 2), np.nan)
    padded[0, :3], padded[1] = series[0], series[1]
    values, lengths = as_padded_dataset(padded)
    values_list, lengths_list = as_padded_dataset(series)
    np.testing.assert_array_equal(lengths, [3, 5])
    np.testing.assert_array_equal(values, values_list)
    assert values[0, 3:].sum() == 0.0  # zero padding


@pytest.mark.parametrize(
    ("series", "message"),
    [
        ([np.array([[0.0], [np.nan], [1.0]])], "non-finite value nan at frame 1"),
        ([np.ones((4, 2)), np.ones((1, 2))], "series 1 has 1 frame"),
        ([np.ones((0, 2))], "series 0 has 0 frame"),
        ([np.ones((4, 2)), np.ones((4, 3))], r"same number of features, got \[2, 3\]"),
        ([], "empty"),
    ],
)
def test_bad_series_are_rejected(series: list, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        as_padded_dataset(series)


def test_resample_matches_linear_interpolation() -> None:
    out = resample(np.array([[0.0], [2.0]]), 5)
    np.testing.assert_allclose(out[:, 0], [0.0, 0.5, 1.0, 1.5, 2.0])


# ------------------------------------------------------------------------------ k-means


def test_kmeans_recovers_obvious_clusters() -> None:
    series, truth = _toy_clusters(np.random.default_rng(7))
    model = SoftDTWKMeans(3, gamma=0.5, max_iter=10, random_state=0, dtype=torch.float64)
    labels = model.fit_predict(series)
    mapping = {int(t): {int(label) for label in labels[truth == t]} for t in range(3)}
    assert all(len(found) == 1 for found in mapping.values())  # each group in one cluster
    assert len({next(iter(found)) for found in mapping.values()}) == 3  # distinct clusters
    assert model.cluster_centers_.shape == (3, max(len(s) for s in series), 2)
    np.testing.assert_array_equal(model.predict(series), labels)
    assert 1 <= model.n_iter_ <= 10
    assert model.inertia_ == pytest.approx(float((model.transform(series).min(1) ** 2).mean()))


def test_kmeans_reseeds_an_empty_cluster() -> None:
    series, _ = _toy_clusters(np.random.default_rng(8))
    far = np.full((3, 12, 2), 100.0)  # no series is closer to the 3rd centroid than to the 1st
    far[0] = 0.0
    far[1] = 5.0
    model = SoftDTWKMeans(3, 0.5, max_iter=3, init=far, dtype=torch.float64).fit(series)
    assert sorted(np.unique(model.labels_)) == [0, 1, 2]
    assert np.abs(model.cluster_centers_[2]).max() < 50  # moved to a series


def test_kmeans_validation_quotes_the_value() -> None:
    series, _ = _toy_clusters(np.random.default_rng(9), per_cluster=1)
    with pytest.raises(ValueError, match="n_clusters.*got 4"):
        SoftDTWKMeans(4).fit(series)
    with pytest.raises(ValueError, match=r"init must have shape \(2, T_c, 2\)"):
        SoftDTWKMeans(2, init=np.zeros((2, 5, 3))).fit(series)
    with pytest.raises(ValueError, match="non-finite"):
        SoftDTWKMeans(2).fit([np.ones((4, 2)), np.array([[1.0, np.nan], [0.0, 0.0]])])
    with pytest.raises(RuntimeError, match="not fitted"):
        SoftDTWKMeans(2).predict(series)
    with pytest.raises(ValueError, match="max_iter_barycenter must be >= 1, got 0"):
        SoftDTWKMeans(2, max_iter_barycenter=0).fit(series)
    with pytest.raises(ValueError, match="n_threads must be >= 1, got 0"):
        SoftDTWKMeans(2, n_threads=0).fit(series)


def test_lbfgs_barycenter_of_copies_is_the_copy() -> None:
    rng = np.random.default_rng(10)
    target = np.cumsum(rng.normal(size=(8, 2)), axis=0)
    values = torch.tensor(np.repeat(target[None], 4, axis=0))  # (4, 8, 2) identical members
    data = _Series(values, torch.full((4,), 8), np.arange(4))
    labels = torch.zeros(4, dtype=torch.long)

    def evaluate(centers: torch.Tensor, clusters: torch.Tensor):  # noqa: ANN202
        return _barycenter_objective(centers, data, labels, clusters, 0.01, 64)

    start = values[:1] + torch.tensor(rng.normal(0, 0.5, size=(1, 8, 2)))
    found = _lbfgs_barycenters(start, evaluate, max_iter=50, ftol=1e-9)
    assert float(evaluate(found, torch.ones(1, dtype=torch.bool)).value) < float(
        evaluate(start, torch.ones(1, dtype=torch.bool)).value
    )
    np.testing.assert_allclose(found[0].numpy(), target, atol=0.05)


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:h5py not installed")
def test_both_engines_reach_similar_inertia_from_the_same_init() -> None:
    pytest.importorskip("tslearn")
    series, _ = _toy_clusters(np.random.default_rng(11), per_cluster=15)
    init = SoftDTWKMeans(3, 1.0, random_state=1).init_centers(series)
    ours = SoftDTWKMeans(3, 1.0, max_iter=5, init=init, dtype=torch.float64).fit(series)
    reference = fit_tslearn(series, 3, 1.0, init, max_iter=5, random_state=0)
    values, lengths = as_padded_dataset(series)

    def inertia(centers: np.ndarray, labels: np.ndarray) -> float:
        """Mean sdtw^2 of each series to its centroid, by our float64 soft-DTW."""
        own = torch.tensor(centers)[torch.tensor(labels)]
        return float(
            (soft_dtw(own, torch.tensor(values), 1.0, None, torch.tensor(lengths)) ** 2).mean()
        )

    ratio = inertia(ours.cluster_centers_, ours.labels_) / inertia(
        reference.cluster_centers, reference.labels
    )
    assert 0.9 < ratio < 1.03


# --- package layout --------------------------------------------------------------------------


def _agcc_imports(module: str) -> set[str]:
    """Modules imported anywhere in ``agcc.sdtw.<module>`` (absolute names)."""
    import ast
    import importlib.util

    spec = importlib.util.find_spec(f"agcc.sdtw.{module}")
    assert spec is not None and spec.origin is not None
    tree = ast.parse(open(spec.origin, encoding="utf-8").read())
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
    return found


@pytest.mark.parametrize(
    ("module", "allowed"),
    [
        ("compiled", set()),
        ("triton_kernels", set()),
        ("fused", {"agcc.sdtw.triton_kernels"}),
        ("kernel", {"agcc.sdtw.fused"}),
        ("series", {"agcc.sdtw.kernel", "agcc.sdtw.compiled"}),
        ("barycentre", {"agcc.sdtw.kernel", "agcc.sdtw.compiled", "agcc.sdtw.fused"}),
        (
            "kmeans",
            {
                "agcc.sdtw.kernel",
                "agcc.sdtw.series",
                "agcc.sdtw.barycentre",
                "agcc.sdtw.compiled",
                "agcc.sdtw.fused",
            },
        ),
        ("reference", {"agcc.sdtw.series", "agcc.sdtw.kmeans"}),
    ],
)
def test_sdtw_modules_import_one_way_and_no_io(module: str, allowed: set[str]) -> None:
    imports = _agcc_imports(module)
    assert {m for m in imports if m.startswith("agcc")} <= allowed
    assert not any(m.split(".")[0] in {"mlflow", "optuna"} for m in imports)
    assert any(m.startswith("tslearn") for m in imports) == (module == "reference")


def test_kmeans_init_only_stores_and_fit_sets_trailing_underscore_attributes() -> None:
    series, _ = _toy_clusters(np.random.default_rng(3))
    model = SoftDTWKMeans(3, gamma=0.5, max_iter=2, device="cpu", batch_mb=None)
    assert model.device == "cpu" and model.batch_mb is None
    before = dict(vars(model))
    model.fit(series)
    added = set(vars(model)) - set(before)
    assert added == {"shift_", "cluster_centers_", "labels_", "inertia_", "n_iter_"}
    assert all(vars(model)[k] is v for k, v in before.items())  # parameters untouched
    np.testing.assert_allclose(model.shift_, np.concatenate(series).mean(axis=0))


def test_divergence_rule_is_shared_by_paired_and_pairwise_divergences() -> None:
    from agcc.sdtw import divergence, pairwise_divergence

    rng = np.random.default_rng(4)
    a, b = rng.normal(size=(5, 2)), rng.normal(size=(7, 2))
    paired = soft_dtw_divergence(
        torch.from_numpy(a)[None], torch.from_numpy(b)[None], 0.5, None, None
    )
    pairwise = pairwise_divergence([a, b], 0.5, "cpu")
    assert float(paired[0]) == pytest.approx(pairwise[0, 1], rel=1e-12)
    assert divergence(np.float64(3.0), np.float64(1.0), np.float64(2.0)) == 1.5
    assert float(divergence(torch.tensor(3.0), torch.tensor(1.0), torch.tensor(2.0))) == 1.5
