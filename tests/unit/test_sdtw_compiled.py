"""The compiled CPU soft-DTW kernel against the torch kernel: values, gradients, assignment."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from agcc.sdtw import SoftDTWKMeans, compiled, soft_dtw, soft_dtw_cross


def _dataset(
    rng: np.random.Generator, n: int, size: int, dim: int, dtype: type
) -> tuple[np.ndarray, np.ndarray]:
    """n zero-padded series (n, size, dim) with lengths 1..size, sorted by length."""
    lengths = np.sort(rng.integers(1, size + 1, size=n))
    values = rng.normal(size=(n, size, dim)).astype(dtype)
    values[np.arange(size)[None, :] >= lengths[:, None]] = 0.0
    return values, lengths


@pytest.mark.parametrize(("dtype", "atol"), [(np.float64, 1e-10), (np.float32, 2e-4)])
def test_cross_matches_the_torch_kernel_with_variable_lengths(dtype: type, atol: float) -> None:
    rng = np.random.default_rng(0)
    values, lengths = _dataset(rng, 40, 9, 3, dtype)  # 40 series: a part-filled last block
    centers = rng.normal(size=(3, 7, 3)).astype(dtype)
    c_len = np.array([7, 5, 2])
    lanes = compiled.lanes_for(dtype)
    blocks = compiled.pack(values, lengths, compiled.consecutive_rows(40, lanes), 0.7)
    with compiled.threads(1):
        ours = compiled.cross(blocks, centers, c_len, 0.7)
    reference = soft_dtw_cross(
        torch.tensor(values, dtype=torch.float64),
        torch.tensor(centers, dtype=torch.float64),
        0.7,
        torch.tensor(lengths),
        torch.tensor(c_len),
    ).numpy()
    assert ours.dtype == dtype
    np.testing.assert_allclose(ours, reference, rtol=0, atol=atol * np.abs(reference).max())


def test_objective_value_and_gradient_match_autograd() -> None:
    rng = np.random.default_rng(1)
    values, lengths = _dataset(rng, 30, 8, 2, np.float64)
    labels = rng.integers(0, 3, size=30)
    centers = rng.normal(size=(3, 6, 2))
    rows, cluster = compiled.rows_by_cluster(labels, 3, compiled.lanes_for(np.float64))
    blocks = compiled.pack(values, lengths, rows, 0.5)
    active = np.array([True, False, True])
    value, grad, mass = compiled.objective(blocks, cluster, centers, active, 0.5)
    c = torch.tensor(centers, requires_grad=True)
    sdtw = soft_dtw(c[torch.tensor(labels)], torch.tensor(values), 0.5, None, torch.tensor(lengths))
    expected = torch.zeros(3, dtype=torch.float64).index_add(0, torch.tensor(labels), sdtw)
    (expected * torch.tensor(active)).sum().backward()
    np.testing.assert_allclose(value, expected.detach().numpy() * active, atol=1e-10)
    np.testing.assert_allclose(grad, c.grad.numpy(), atol=1e-9)
    assert (mass[active] >= 1.0 - 1e-9).all()  # every path visits each centroid frame
    assert (mass[~active] == 0).all() and (grad[~active] == 0).all()


def test_assign_with_abandoning_equals_the_argmin_of_the_full_matrix() -> None:
    rng = np.random.default_rng(2)
    values, lengths = _dataset(rng, 200, 12, 3, np.float32)
    centers = values[rng.choice(np.flatnonzero(lengths == 12), 5, replace=False)]
    lanes = compiled.lanes_for(np.float32)
    blocks = compiled.pack(values, lengths, compiled.consecutive_rows(200, lanes), 1.0)
    with compiled.threads(1):
        full = compiled.cross(blocks, centers, np.full(5, 12), 1.0)
        labels, own = compiled.assign(blocks, centers, 1.0)
        rows, cluster = compiled.rows_by_cluster(labels, 5, lanes)
        grouped = compiled.pack(values, lengths, rows, 1.0)
        labels_2, own_2 = compiled.assign(grouped, centers, 1.0, cluster)
    np.testing.assert_array_equal(labels, full.argmin(1))
    np.testing.assert_array_equal(own, full.min(1))
    np.testing.assert_array_equal(labels_2, labels)
    np.testing.assert_array_equal(own_2, own)


def test_kmeans_results_do_not_depend_on_the_thread_count() -> None:
    rng = np.random.default_rng(3)
    series = [rng.normal(size=(int(t), 2)) for t in rng.integers(3, 10, size=90)]
    fits = [
        SoftDTWKMeans(3, 0.5, max_iter=4, random_state=0, n_threads=t).fit(series) for t in (1, 2)
    ]
    np.testing.assert_array_equal(fits[0].labels_, fits[1].labels_)
    np.testing.assert_array_equal(fits[0].cluster_centers_, fits[1].cluster_centers_)
    assert fits[0].inertia_ == fits[1].inertia_


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_compiled_and_torch_kernels_fit_the_same_clustering(dtype: torch.dtype) -> None:
    rng = np.random.default_rng(4)
    series = [
        np.stack([np.full(int(t), level), np.linspace(0, slope, int(t))], 1)
        + rng.normal(0, 0.1, (int(t), 2))
        for level, slope in ((0, 0), (3, 0), (0, 3))
        for t in rng.integers(5, 12, size=20)
    ]
    fits = {
        kernel: SoftDTWKMeans(3, 0.5, max_iter=5, random_state=0, dtype=dtype, kernel=kernel)
        for kernel in ("compiled", "torch")
    }
    for model in fits.values():
        model.fit(series)
    np.testing.assert_array_equal(fits["compiled"].labels_, fits["torch"].labels_)
    assert fits["compiled"].inertia_ == pytest.approx(fits["torch"].inertia_, rel=1e-3)
    np.testing.assert_allclose(
        fits["compiled"].cluster_centers_, fits["torch"].cluster_centers_, atol=1e-2
    )


def test_kernel_choice_is_checked() -> None:
    series = [np.ones((4, 2)), np.zeros((5, 2))]
    with pytest.raises(ValueError, match="kernel must be one of .* got 'fast'"):
        SoftDTWKMeans(2, kernel="fast").fit(series)
    with pytest.raises(ValueError, match="compiled kernel runs float32/float64 on the CPU"):
        SoftDTWKMeans(2, kernel="compiled", dtype=torch.float16).fit(series)


def test_sdtw_cross_on_cpu_matches_the_torch_kernel(monkeypatch: pytest.MonkeyPatch) -> None:
    from agcc.sdtw import series as series_module

    monkeypatch.setattr(series_module, "CROSS_CHUNK", 3)  # several chunks of b
    rng = np.random.default_rng(5)
    a = [rng.normal(size=(int(t), 2)) for t in rng.integers(2, 9, size=20)]
    b = [rng.normal(size=(int(t), 2)) for t in rng.integers(2, 9, size=7)]
    ours = series_module.sdtw_cross(a, b, 0.3, "cpu")
    xa, la = series_module._padded(a, "cpu")
    xb, lb = series_module._padded(b, "cpu")
    reference = soft_dtw_cross(xa, xb, 0.3, la, lb).numpy()
    np.testing.assert_allclose(ours, reference, rtol=1e-12, atol=1e-10)
