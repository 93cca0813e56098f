"""The fused soft-DTW path for CUDA: the whole recursion of a batch in one Triton launch.

The torch wavefront (:mod:`agcc.sdtw.kernel`) runs one batch of pairs as about ten small
torch ops per anti-diagonal, forward and backward: some thousand kernel launches per batch,
which leave a GPU idle on all but the largest batches. The Triton kernels of
:mod:`agcc.sdtw.triton_kernels` give each pair one lane and run the whole recursion (or its
gradient) in one launch, in float32, on the same cost matrices, with the same softmin and
floor; they differ from the wavefront in rounding only. Costs and reductions around them stay
in torch.

Triton ships with the CUDA builds of PyTorch. Without it (or for float64) the wavefront runs.
On the CPU the kernels run only under Triton's interpreter (``TRITON_INTERPRET=1``), which the
tests use to check them against the wavefront.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.util
import os
from types import ModuleType

import torch
from torch import Tensor

#: Pairs per Triton program (one lane each).
BLOCK = 128

#: The soft-DTW kernels of the torch path: "auto" (fused on CUDA when Triton is importable,
#: else the wavefront), "fused" or "wavefront".
CHOICES = ("auto", "fused", "wavefront")


def available() -> bool:
    """Whether Triton can be imported."""
    return importlib.util.find_spec("triton") is not None


def interpreted() -> bool:
    """Whether Triton runs kernels in its CPU interpreter (``TRITON_INTERPRET=1``)."""
    return os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")


def wanted(choice: str, like: Tensor) -> bool:
    """Whether soft-DTW on tensors like ``like`` takes the fused path under ``choice``.

    "fused" demands it: a ValueError when Triton is missing, the dtype is not float32, or the
    tensor is on the CPU without the interpreter. "auto" takes it for float32 on CUDA (or under
    the interpreter) when Triton is importable.
    """
    if choice not in CHOICES:
        raise ValueError(f"soft-DTW kernel must be one of {CHOICES}, got {choice!r}")
    if choice == "wavefront":
        return False
    runs_here = like.is_cuda or interpreted()
    if choice == "auto":
        return runs_here and like.dtype == torch.float32 and available()
    if not available():
        raise ValueError("the fused soft-DTW kernel needs triton (pip install triton)")
    if like.dtype != torch.float32 or not runs_here:
        raise ValueError(
            f"the fused soft-DTW kernel runs float32 on CUDA, got {like.dtype} on {like.device} "
            "(on the CPU only under TRITON_INTERPRET=1)"
        )
    return True


@functools.cache
def _kernels() -> ModuleType:
    """The Triton kernels, imported on first use (importing triton costs about a second)."""
    import agcc.sdtw.triton_kernels as triton_kernels

    return triton_kernels


def _on(device: torch.device) -> contextlib.AbstractContextManager:
    """Make ``device`` current while launching: Triton launches on the current CUDA device,
    which need not be the tensors' (``cluster.device: cuda:1``)."""
    return torch.cuda.device(device) if device.type == "cuda" else contextlib.nullcontext()


def _grid(n_pairs: int) -> tuple[int]:
    """Programs of one launch over n_pairs pairs."""
    return (max(1, -(-n_pairs // BLOCK)),)


def forward(cost: Tensor, x_len: Tensor, y_len: Tensor, keep: bool) -> tuple[Tensor, Tensor | None]:
    """Soft-DTW values (B,) of cost matrices (n, m, B) in units of gamma, and R (n, m, B) for the
    gradient when ``keep`` (else None)."""
    n, m, batch = cost.shape
    cost = cost.contiguous()
    values = cost.new_empty(batch)
    r = cost.new_empty((n, m, batch) if keep else (m, batch))
    if batch:
        with _on(cost.device):
            _kernels().sdtw_forward_kernel[_grid(batch)](
                cost, r, x_len.contiguous(), y_len.contiguous(), values, batch, m,
                m if keep else 0, BLOCK=BLOCK,
            )  # fmt: skip
    return values, (r if keep else None)


def backward(cost: Tensor, r: Tensor, grad_out: Tensor, x_len: Tensor, y_len: Tensor) -> Tensor:
    """Gradient (n, m, B) of the values w.r.t. the costs (n, m, B), seeded by grad_out (B,)."""
    n, m, batch = cost.shape
    grad = torch.zeros_like(cost)  # cells beyond a program's longest pair are never visited
    if batch:
        with _on(cost.device):
            _kernels().sdtw_backward_kernel[_grid(batch)](
                cost.contiguous(), r, grad_out.contiguous(), x_len.contiguous(),
                y_len.contiguous(), grad, batch, m, BLOCK=BLOCK,
            )  # fmt: skip
    return grad
