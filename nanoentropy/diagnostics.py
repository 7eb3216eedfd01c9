"""
The measurements that explain why entropy moves, cheap enough to log every step, and the entropy-performance
law the lab fits per run. Shapes: B = sequences in the rollout batch (this rank), T = completion length.

1) The covariance term (Cui et al., https://arxiv.org/abs/2505.22617): a policy-gradient step changes the
   entropy of a state by about -Cov_a~pi(log pi(a), A(a)) (Theorem 2, natural gradient) or
   -Cov_a~pi(log pi(a), pi(a) A(a)) (Theorem 1, plain softmax gradient). We log the mean token covariance
   of eq. 10 (centred by batch means, the statistic Clip-Cov and KL-Cov act on) and its mean over the top
   0.02 / 0.2 / 2 / 20 percent of tokens (their Table 1), and both theorems' predictions of the entropy
   change, next to the measured change (entropy of the same rollout batch before the first update and
   after the last; see train.py). Departure: the predictions centre each token's log p by its own
   position's mean, -H (each token is a one-sample estimate of its state's covariance), where eq. 10 uses
   the batch mean, which mixes states; and the paper's own check (its Fig. 8) is sequence-level, per group.
2) The four regions of Flexible Entropy Control (https://arxiv.org/abs/2602.09782, research note 001): a
   token is "likely" when its surprisal -log p is below its position's entropy H. A > 0 on a likely token
   (E1) or A < 0 on an unlikely one (E4) lowers entropy; E2 (unlikely, A > 0) and E3 (likely, A < 0) raise
   it. We log each region's share of tokens and the share of it the clip removed.
3) R = -a exp(H) + b (Cui et al., eq. 6), least squares on (entropy, held-out accuracy) pairs; -a + b is
   the accuracy it predicts at entropy 0.
"""
import math

import torch

TOP_FRACTIONS = (0.0002, 0.002, 0.02, 0.2)   # 0.02%, 0.2%, 2%, 20%, as in the paper's Table 1


def entropy_diagnostics(old_logp, entropy, adv, mask, clipped, gather=lambda x: x):
    """
    old_logp: (B, T) log p of the sampled tokens under the policy that sampled them
    entropy:  (B, T) full-vocabulary entropy at each position, same policy
    adv:      (B,)   advantage of each sequence
    mask:     (B, T) 1 on completion tokens
    clipped:  (B, T) bool, tokens whose gradient the clip removed during this step's updates
    gather:   concatenates a 1-D tensor over ranks (dist.all_gather_cat), so the statistics are global
    Returns a dict of floats.
    """
    sel = mask.bool()
    lp, H = gather(old_logp[sel]), gather(entropy[sel])                               # (N,), (N,)
    A = gather(adv[:, None].expand_as(mask)[sel])                                       # (N,)
    clip = gather(clipped[sel].float())                                                 # (N,)
    if lp.numel() == 0:
        return {}
    cov = (lp - lp.mean()) * (A - A.mean())                                             # (N,) token covariance
    out = {"diag/cov": cov.mean().item()}
    # Theorems 1 and 2 of Cui et al. predict the entropy change of one state s from a covariance over a ~ pi(.|s):
    #   Thm 2 (natural PG):  dH(s) ~ -Cov(log pi(a), A(a))          Thm 1 (softmax PG): -Cov(log pi(a), pi(a) A(a))
    # Since E_a[log pi(a)] = -H(s), each token is a one-sample estimate of its position's covariance, without
    # bias: (log p + H) A and (log p + H) p A. Centring by the batch mean instead (diag/cov, eq. 10) mixes states
    out["diag/entropy_change_pred"] = -((lp + H) * A).mean().item()                    # sign and relative size only
    out["diag/entropy_change_pred_pg"] = -((lp + H) * lp.exp() * A).mean().item()      # (the lr scale is unknown)
    ranked = cov.sort(descending=True).values
    for f in TOP_FRACTIONS:
        out[f"diag/cov_top{100 * f:g}%"] = ranked[:max(1, int(f * len(ranked)))].mean().item()
    likely = -lp < H                                                                    # (N,) surprisal below entropy
    regions = {"E1": likely & (A > 0), "E2": ~likely & (A > 0), "E3": likely & (A < 0), "E4": ~likely & (A < 0)}
    for name, r in regions.items():
        n = r.sum().item()
        out[f"diag/{name}_frac"] = n / len(r)
        out[f"diag/{name}_clipped"] = (clip[r].sum().item() / n) if n else 0.0
    return out


def fit_entropy_law(entropies, accuracies):
    """Least-squares fit of R = -a exp(H) + b. Returns dict a, b, r2, ceiling (= -a + b), n points.
    Needs at least 3 points with different entropies; returns {} otherwise."""
    H = torch.tensor(entropies, dtype=torch.float64)
    R = torch.tensor(accuracies, dtype=torch.float64)
    if len(H) < 3 or H.std() == 0:
        return {}
    X = torch.stack([-torch.exp(H), torch.ones_like(H)], 1)                             # (n, 2)
    a, b = torch.linalg.lstsq(X, R[:, None]).solution[:, 0].tolist()
    resid = R - X @ torch.tensor([a, b], dtype=torch.float64)
    ss_tot = ((R - R.mean()) ** 2).sum().item()
    r2 = 1 - (resid ** 2).sum().item() / ss_tot if ss_tot > 0 else float("nan")
    return {"a": a, "b": b, "r2": r2, "ceiling": -a + b, "n": len(H)}


def correlation(x, y):
    """Pearson correlation of two equal-length lists (nan if either is constant)."""
    x, y = torch.tensor(x, dtype=torch.float64), torch.tensor(y, dtype=torch.float64)
    if len(x) < 2 or x.std() == 0 or y.std() == 0:
        return math.nan
    return torch.corrcoef(torch.stack([x, y]))[0, 1].item()
