"""The anchoring losses of AG-CC and its baselines: pure tensor functions, no I/O.

* :func:`soft_triplet` - the soft-weighted triplet loss of the paper's Eq. 2.
* :func:`soft_weights` - the soft weight of Eq. 3, w = exp(-beta * d(C_{k_a}, C_{k_n})).
* :func:`mine_triplets` - one random positive and negative per anchor, vectorised.
* :func:`coral` - CORAL (Sun & Saenko 2016), the alignment loss of the layer-anchoring baseline.
* :func:`linear_cka` - linear CKA (Kornblith et al. 2019); :func:`layer_similarity` applies it
  to two corpora to pick the anchored layers.
* :func:`pseudo_label_mask` - confident pseudo-labels for the unlabelled target corpus.
"""

from __future__ import annotations

import torch
from torch import Tensor


def soft_triplet(z_a: Tensor, z_p: Tensor, z_n: Tensor, w: Tensor | float, alpha: float) -> Tensor:
    r"""Soft-weighted triplet loss, the paper's Eq. 2 averaged over triplets.

    L = (1 / N) sum_i max(0, d(z_a_i, z_p_i) - w_i * d(z_a_i, z_n_i) + alpha), d Euclidean.

    The paper writes a sum over anchors; the mean keeps the loss scale independent of how many
    triplets a batch yields, so gamma means the same thing for every batch. With no triplet
    (N = 0) the loss is a zero that is still connected to the inputs, so ``backward()`` works and
    gives zero gradients.

    Args:
        z_a, z_p, z_n: (N, d) anchor, positive and negative embeddings.
        w: (N,) soft weights (Eq. 3) or a scalar (w = 1 is the plain triplet loss).
        alpha: the margin (0.3 in the paper).

    Returns:
        A scalar tensor.
    """
    if not (z_a.shape == z_p.shape == z_n.shape) or z_a.ndim != 2:
        raise ValueError(
            f"z_a, z_p, z_n must be (N, d) of equal shape, got {tuple(z_a.shape)}, "
            f"{tuple(z_p.shape)}, {tuple(z_n.shape)}"
        )
    if z_a.shape[0] == 0:
        return (z_a.sum() + z_p.sum() + z_n.sum()) * 0.0
    d_ap = torch.linalg.vector_norm(z_a - z_p, dim=1)  # (N,)
    d_an = torch.linalg.vector_norm(z_a - z_n, dim=1)  # (N,)
    return torch.relu(d_ap - w * d_an + alpha).mean()


def soft_weights(distance: Tensor, k_a: Tensor, k_n: Tensor, beta: float) -> Tensor:
    r"""Soft weight of each triplet, the paper's Eq. 3: w = exp(-beta * D[k_a, k_n]).

    Args:
        distance: (K, K) distances between group centroids (AG clusters: the soft-DTW
            divergence between cluster centroids; Hard-AG: between per-vowel barycentres).
        k_a: (N,) group of each anchor; k_n: (N,) group of each negative.
        beta: scale (0.2 in the paper); beta = 0 gives w = 1.

    Returns:
        (N,) weights in (0, 1] for non-negative distances.
    """
    if distance.ndim != 2 or distance.shape[0] != distance.shape[1]:
        raise ValueError(f"distance must be (K, K), got {tuple(distance.shape)}")
    return torch.exp(-beta * distance[k_a, k_n])


def _pick(mask: Tensor, keys: Tensor) -> Tensor:
    """Per row of mask (A, P), the column of the largest key among the True entries."""
    return torch.where(mask, keys, torch.full_like(keys, -1.0)).argmax(dim=1)


def mine_triplets(
    anchor_groups: Tensor,
    anchor_emotions: Tensor,
    pool_groups: Tensor,
    pool_emotions: Tensor,
    generator: torch.Generator | None = None,
) -> tuple[Tensor, Tensor, Tensor]:
    r"""One random positive and one random negative from the pool for each anchor (vectorised).

    Positive of anchor a: a pool item with the same group and the same emotion; negative: a pool
    item of another group and the same emotion (paper Sec. III). Each is drawn uniformly among
    the candidates by taking the candidate with the largest uniform random key, so there is no
    Python loop over anchors. Anchors without both a positive and a negative are dropped.

    Args:
        anchor_groups, anchor_emotions: (A,) integer group (AG cluster or vowel) and emotion
            of each anchor.
        pool_groups, pool_emotions: (P,) the same for the pool (source segments).
        generator: torch random generator for the keys (its device is used for them).

    Returns:
        (a_idx, p_idx, n_idx): (N,) indices into the anchors and into the pool, N <= A.
    """
    same_emotion = anchor_emotions[:, None] == pool_emotions[None, :]  # (A, P)
    same_group = anchor_groups[:, None] == pool_groups[None, :]  # (A, P)
    pos, neg = same_emotion & same_group, same_emotion & ~same_group
    valid = pos.any(dim=1) & neg.any(dim=1)  # (A,)
    device = generator.device if generator is not None else anchor_groups.device
    keys = torch.rand(2, *pos.shape, generator=generator, device=device).to(pos.device)
    a_idx = valid.nonzero().squeeze(1)
    return a_idx, _pick(pos, keys[0])[a_idx], _pick(neg, keys[1])[a_idx]


def _covariance(x: Tensor) -> Tensor:
    """Unbiased covariance (d, d) of the rows of x (n, d)."""
    centred = x - x.mean(dim=0, keepdim=True)  # (n, d)
    return centred.T @ centred / (x.shape[0] - 1)


def coral(a: Tensor, b: Tensor) -> Tensor:
    r"""CORAL loss (Sun & Saenko, "Deep CORAL", ECCV-W 2016): ||C_a - C_b||_F^2 / (4 d^2).

    C_a, C_b are the (d, d) unbiased covariances of the rows of a (n_a, d) and b (n_b, d). The
    loss is 0 when the two sets have the same second-order statistics, whatever their means.

    Args:
        a: (n_a, d) source features, n_a >= 2; b: (n_b, d) target features, n_b >= 2.

    Returns:
        A scalar tensor.
    """
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1]:
        raise ValueError(
            f"a, b must be (n, d) with equal d, got {tuple(a.shape)}, {tuple(b.shape)}"
        )
    if a.shape[0] < 2 or b.shape[0] < 2:
        raise ValueError(f"CORAL needs >= 2 rows per set, got {a.shape[0]} and {b.shape[0]}")
    d = a.shape[1]
    return ((_covariance(a) - _covariance(b)) ** 2).sum() / (4 * d * d)


def linear_cka(x: Tensor, y: Tensor) -> Tensor:
    r"""Linear centred kernel alignment (Kornblith et al., ICML 2019, Eq. 5).

    CKA(X, Y) = ||Y_c^T X_c||_F^2 / (||X_c^T X_c||_F ||Y_c^T Y_c||_F), with X_c, Y_c the
    column-centred X (n, p) and Y (n, q) whose rows are the same n examples. It lies in [0, 1],
    is 1 for Y = X Q (Q orthogonal) times any scale, and invariant to isotropic scaling.
    Degenerate input (a constant representation) gives 0.

    Args:
        x: (n, p); y: (n, q).

    Returns:
        A scalar tensor.
    """
    if x.ndim != 2 or y.ndim != 2 or x.shape[0] != y.shape[0]:
        raise ValueError(f"x, y must be (n, p), (n, q), got {tuple(x.shape)}, {tuple(y.shape)}")
    xc, yc = x - x.mean(dim=0, keepdim=True), y - y.mean(dim=0, keepdim=True)
    cross = torch.linalg.matrix_norm(yc.T @ xc) ** 2
    norm = torch.linalg.matrix_norm(xc.T @ xc) * torch.linalg.matrix_norm(yc.T @ yc)
    return torch.where(norm > 0, cross / norm.clamp_min(torch.finfo(x.dtype).tiny), 0.0)


def pseudo_label_mask(probs: Tensor, threshold: float) -> tuple[Tensor, Tensor]:
    """Pseudo-labels (B,) = argmax of class probabilities (B, C), and mask (B,) max >= threshold.

    The probabilities are detached: a pseudo-label never carries gradient.
    """
    conf, labels = probs.detach().max(dim=1)
    return labels, conf >= threshold


def layer_similarity(a: Tensor, b: Tensor) -> Tensor:
    r"""Similarity of one layer's outputs on two corpora: linear CKA of their feature structure.

    Source and target utterances are different examples, so linear CKA cannot compare their rows
    directly. The units (columns) of a layer are the same on both corpora, so they are taken as
    the paired examples: with A_c, B_c the (n_a, d), (n_b, d) sample-centred outputs,

        sim(a, b) = linear_cka(A_c^T, B_c^T)
                  = <A_c^T A_c, B_c^T B_c>_F / (||A_c^T A_c||_F ||B_c^T B_c||_F)  (after CKA's
                    own centring over units),

    the cosine between the two corpora's (d, d) unit covariance structures: 1 when the layer's
    second-order statistics agree up to scale (what CORAL aligns), lower as they drift apart.

    Args:
        a: (n_a, d) pooled layer outputs of source utterances; b: (n_b, d) of target utterances.

    Returns:
        A scalar tensor in [0, 1].
    """
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1]:
        raise ValueError(
            f"a, b must be (n, d) with equal d, got {tuple(a.shape)}, {tuple(b.shape)}"
        )
    grams = []
    for x in (a, b):
        xc = x - x.mean(dim=0, keepdim=True)  # sample-centred (n, d)
        xc = xc - xc.mean(dim=1, keepdim=True)  # CKA's centring over the paired units
        grams.append(xc.T @ xc)  # (d, d) Gram of the units
    # linear_cka(A_c^T, B_c^T) = <K_a, K_b>_F / (||K_a||_F ||K_b||_F) with the (d, d) unit
    # Grams, so the cost is O(n d^2) and the memory (d, d), whatever the number of utterances
    k_a, k_b = grams
    norm = torch.linalg.matrix_norm(k_a) * torch.linalg.matrix_norm(k_b)
    return torch.where(norm > 0, (k_a * k_b).sum() / norm.clamp_min(torch.finfo(a.dtype).tiny), 0.0)
