"""The fused (Triton) soft-DTW kernels against the torch wavefront.

Without a GPU the kernels run in Triton's CPU interpreter, which must be switched on before
triton compiles anything: :func:`test_fused_kernels_under_the_interpreter` runs the
``interpreted`` tests of this file in a fresh process with ``TRITON_INTERPRET=1``. On a CUDA
machine the same comparisons run on the GPU (:func:`test_fused_on_cuda_matches_the_wavefront`).
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from agcc.sdtw import SoftDTWKMeans, fused, soft_dtw
from agcc.sdtw.kernel import _sdtw_wavefront, _sdtw_wavefront_grad, soft_dtw_cross

HAS_TRITON = importlib.util.find_spec("triton") is not None
INTERPRETED = os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")
needs_triton = pytest.mark.skipif(not HAS_TRITON, reason="triton is not installed")
interpreted = pytest.mark.skipif(
    not (HAS_TRITON and INTERPRETED), reason="runs in a TRITON_INTERPRET=1 subprocess"
)


def _batch(device: str = "cpu", n: int = 7, m: int = 9, batch: int = 300):
    """Random costs (n, m, B) in units of gamma and lengths of a variable-length batch."""
    gen = torch.Generator().manual_seed(0)
    cost = (torch.rand(n, m, batch, generator=gen) * 3).to(device)
    x_len = torch.randint(1, n + 1, (batch,), generator=gen).to(device)
    y_len = torch.randint(1, m + 1, (batch,), generator=gen).to(device)
    return cost, x_len, y_len


def _check_against_wavefront(device: str) -> None:
    """Values, values without the kept matrix, and gradients of both paths agree."""
    cost, x_len, y_len = _batch(device)
    values, r = fused.forward(cost, x_len, y_len, True)
    expected, weights = _sdtw_wavefront(cost.clone(), x_len, y_len, True)
    torch.testing.assert_close(values, expected, rtol=1e-5, atol=1e-5)
    only_values, none = fused.forward(cost, x_len, y_len, False)
    assert none is None
    torch.testing.assert_close(only_values, values, rtol=0, atol=0)
    seed = torch.rand(cost.shape[2], device=device) + 0.5
    grad = fused.backward(cost, r, seed, x_len, y_len)
    expected_grad = _sdtw_wavefront_grad(weights, seed, x_len, y_len, cost.shape[:2])
    torch.testing.assert_close(grad, expected_grad, rtol=1e-4, atol=1e-5)
    outside = torch.arange(cost.shape[0], device=device)[:, None, None] >= x_len
    assert bool((grad[outside.expand_as(grad)] == 0).all())  # rows beyond a pair's length


def _series(n: int = 60, seed: int = 0) -> list[np.ndarray]:
    """Three groups of variable-length 4-d series."""
    rng = np.random.default_rng(seed)
    return [
        rng.normal(size=(int(rng.integers(5, 12)), 4)).astype(np.float32) + (i % 3)
        for i in range(n)
    ]


def _fit(kernel: str, device: str = "cpu") -> SoftDTWKMeans:
    """A short k-means fit with ``kernel``."""
    km = SoftDTWKMeans(
        3, gamma=0.5, max_iter=3, max_iter_barycenter=5, random_state=0, kernel=kernel,
        device=device,
    )  # fmt: skip
    return km.fit(_series())


@interpreted
def test_interpreted_forward_and_gradient_match_the_wavefront() -> None:
    _check_against_wavefront("cpu")


@interpreted
def test_interpreted_autograd_soft_dtw_takes_the_fused_path() -> None:
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(5, 8, 3, generator=gen, requires_grad=True)
    y = torch.randn(5, 6, 3, generator=gen)
    x_len, y_len = torch.tensor([8, 5, 3, 8, 1]), torch.tensor([6, 6, 2, 1, 4])
    value = soft_dtw(x, y, 0.7, x_len, y_len)
    (grad,) = torch.autograd.grad(value.sum(), x)
    x64 = x.detach().double().requires_grad_()  # float64: the wavefront
    expected = soft_dtw(x64, y.double(), 0.7, x_len, y_len)
    (expected_grad,) = torch.autograd.grad(expected.sum(), x64)
    torch.testing.assert_close(value.double(), expected.detach(), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(grad.double(), expected_grad, rtol=1e-4, atol=1e-4)


@interpreted
def test_interpreted_cross_matrix_matches_the_wavefront() -> None:
    gen = torch.Generator().manual_seed(2)
    x, y = torch.randn(9, 7, 2, generator=gen), torch.randn(4, 5, 2, generator=gen)
    x_len = torch.randint(1, 8, (9,), generator=gen)
    y_len = torch.randint(1, 6, (4,), generator=gen)
    got = soft_dtw_cross(x, y, 0.3, x_len, y_len, max_pairs=8, kernel="fused")
    want = soft_dtw_cross(x, y, 0.3, x_len, y_len, max_pairs=8, kernel="wavefront")
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)


@interpreted
def test_interpreted_kmeans_fit_matches_the_wavefront_fit() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # inf - inf in the masked-off lanes
        got, want = _fit("fused"), _fit("torch")
    np.testing.assert_array_equal(got.labels_, want.labels_)
    assert got.inertia_ == pytest.approx(want.inertia_, rel=1e-5)
    np.testing.assert_allclose(got.cluster_centers_, want.cluster_centers_, atol=1e-3)


@needs_triton
def test_fused_kernels_under_the_interpreter() -> None:
    env = os.environ | {"TRITON_INTERPRET": "1"}
    args = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", __file__]
    args += ["-k", "interpreted"]
    done = subprocess.run(
        args, env=env, capture_output=True, text=True, timeout=900, cwd=Path(__file__).parents[2]
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert "4 passed" in done.stdout, done.stdout[-2000:]


@pytest.mark.skipif(INTERPRETED, reason="checks the compiled-kernel refusals")
def test_fused_choice_is_refused_where_it_cannot_run() -> None:
    cpu32 = torch.empty(0)
    if HAS_TRITON:
        with pytest.raises(ValueError, match="TRITON_INTERPRET"):
            fused.wanted("fused", cpu32)
        with pytest.raises(ValueError, match="float32"):
            fused.wanted("fused", torch.empty(0, dtype=torch.float64))
    assert not fused.wanted("auto", cpu32)  # the CPU takes the wavefront (or compiled kernel)
    assert not fused.wanted("wavefront", cpu32)
    with pytest.raises(ValueError, match="one of"):
        fused.wanted("triton", cpu32)
    with pytest.raises(ValueError):
        SoftDTWKMeans(2, kernel="fused").fit(_series(10))


@pytest.mark.skipif(not (HAS_TRITON and torch.cuda.is_available()), reason="needs CUDA and triton")
def test_fused_on_cuda_matches_the_wavefront() -> None:
    _check_against_wavefront("cuda")
    got, want = _fit("fused", "cuda"), _fit("torch", "cuda")
    np.testing.assert_array_equal(got.labels_, want.labels_)
    assert got.inertia_ == pytest.approx(want.inertia_, rel=1e-4)


@needs_triton
@pytest.mark.skipif(INTERPRETED, reason="compiles the kernels for a GPU, not the interpreter")
@pytest.mark.parametrize("arch", [80, 90])  # A100, H100/H200
def test_fused_kernels_compile_to_a_cubin_without_a_gpu(arch: int) -> None:
    """Ahead-of-time compilation for an NVIDIA target (Triton's own ptxas; no GPU needed)
    catches what the interpreter lets through: globals, types, loop-carried values."""
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    import agcc.sdtw.triton_kernels as kernels

    common = {"x_len": "*i64", "y_len": "*i64", "n_pairs": "i32", "n_cols": "i32"}
    signatures = {
        kernels.sdtw_forward_kernel: {
            "cost": "*fp32", "r_out": "*fp32", "values": "*fp32", "row_stride": "i32",
        },
        kernels.sdtw_backward_kernel: {
            "cost": "*fp32", "r": "*fp32", "grad_out": "*fp32", "e_out": "*fp32",
        },
    }  # fmt: skip
    for kernel, own in signatures.items():
        names = kernel.arg_names
        signature = {name: (own | common).get(name, "constexpr") for name in names}
        source = ASTSource(fn=kernel, signature=signature, constexprs={"BLOCK": fused.BLOCK})
        compiled = triton.compile(source, target=GPUTarget("cuda", arch, 32))
        assert compiled.asm["cubin"], kernel.__name__
