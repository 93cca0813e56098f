"""Series prepared once for the fits of a sweep give the fits a fresh preparation gives."""

from __future__ import annotations

import numpy as np
import pytest

from agcc.sdtw import SoftDTWKMeans


def _series(n: int = 200, seed: int = 0) -> list[np.ndarray]:
    """Four groups of variable-length 6-d series."""
    rng = np.random.default_rng(seed)
    return [
        rng.normal(size=(int(rng.integers(5, 20)), 6)).astype(np.float32) + (i % 4)
        for i in range(n)
    ]


@pytest.mark.parametrize("kernel", ["compiled", "torch"])
def test_a_prepared_sweep_equals_fresh_fits_and_shares_the_seeding_work(kernel: str) -> None:
    X = _series()
    prepared = SoftDTWKMeans(2, 0.5, random_state=3, kernel=kernel).prepare(X)
    computed = []
    for k in (3, 4, 5):
        shared = SoftDTWKMeans(k, 0.5, max_iter=3, random_state=3, kernel=kernel).fit(prepared)
        fresh = SoftDTWKMeans(k, 0.5, max_iter=3, random_state=3, kernel=kernel).fit(X)
        np.testing.assert_array_equal(shared.cluster_centers_, fresh.cluster_centers_)
        np.testing.assert_array_equal(shared.labels_, fresh.labels_)
        assert shared.inertia_ == fresh.inertia_
        computed.append(len(prepared.data.potentials))
    # k-means++ for k = 3, 4, 5 looks at 2 + ln k candidates per seed after the first: 7 + 10
    # + 13 columns without sharing; the shared first draws cut that down
    assert computed[0] <= 7 and computed[-1] < 7 + 10 + 13


def test_series_prepared_for_other_settings_are_refused() -> None:
    prepared = SoftDTWKMeans(2, 0.5).prepare(_series(20))
    with pytest.raises(ValueError, match="prepared for"):
        SoftDTWKMeans(2, 1.0).fit(prepared)
    with pytest.raises(ValueError, match="n_clusters"):
        SoftDTWKMeans(50, 0.5).fit(prepared)
