"""nanoentropy/diagnostics.py on examples small enough to compute by hand: the token covariance of Cui et al.
(eq. 10) and its top fractions, both theorems' predictions of the entropy change, FEC's four regions with
their clipped shares, the entropy-performance law fit, and the correlation the lab's claim 7 uses."""
import math

import pytest
import torch

from nanoentropy.diagnostics import correlation, entropy_diagnostics, fit_entropy_law


def test_entropy_diagnostics_by_hand():
    # three real tokens: (log p, H, A) = (-0.1, 0.5, +1), (-2.0, 1.0, +1), (-0.5, 0.3, -1); the 4th is padding
    old_logp = torch.tensor([[-0.1, -2.0], [-0.5, -9.0]])
    entropy = torch.tensor([[0.5, 1.0], [0.3, 9.0]])
    adv = torch.tensor([1.0, -1.0])
    mask = torch.tensor([[1, 1], [1, 0]])
    clipped = torch.tensor([[False, True], [True, True]])       # the padding's flag must not count
    out = entropy_diagnostics(old_logp, entropy, adv, mask, clipped)
    # means: log p -2.6/3, A 1/3. Token covariances: 0.7667 * 0.6667, -1.1333 * 0.6667, 0.3667 * -1.3333
    cov = [(-0.1 + 2.6 / 3) * (2 / 3), (-2.0 + 2.6 / 3) * (2 / 3), (-0.5 + 2.6 / 3) * (-4 / 3)]
    assert out["diag/cov"] == pytest.approx(sum(cov) / 3)                       # -0.2444
    # Thm 2: -mean[(log p + H) A] = -mean[0.4, -1.0, 0.2];  Thm 1: the same terms weighted by p = exp(log p)
    assert out["diag/entropy_change_pred"] == pytest.approx(0.4 / 3)
    pg = 0.4 * math.exp(-0.1) - 1.0 * math.exp(-2.0) + 0.2 * math.exp(-0.5)
    assert out["diag/entropy_change_pred_pg"] == pytest.approx(-pg / 3)
    for f in ("0.02", "0.2", "2", "20"):                                         # 3 tokens: each top is the max
        assert out[f"diag/cov_top{f}%"] == pytest.approx(max(cov))
    # likely = surprisal below the position's entropy: only the first token (0.1 < 0.5)
    assert [out[f"diag/E{k}_frac"] for k in (1, 2, 3, 4)] == pytest.approx([1 / 3, 1 / 3, 0, 1 / 3])
    assert [out[f"diag/E{k}_clipped"] for k in (1, 2, 3, 4)] == [0.0, 1.0, 0.0, 1.0]
    assert entropy_diagnostics(old_logp, entropy, adv, torch.zeros_like(mask), clipped) == {}


def test_entropy_law_fit_recovers_its_parameters():
    H = [0.1, 0.3, 0.6, 1.0]
    R = [-0.5 * math.exp(h) + 1.2 for h in H]
    fit = fit_entropy_law(H, R)
    assert (fit["a"], fit["b"], fit["r2"], fit["ceiling"]) == pytest.approx((0.5, 1.2, 1.0, 0.7))
    noisy = fit_entropy_law(H, [r + d for r, d in zip(R, (0.05, -0.05, 0.05, -0.05))])
    assert 0 < noisy["r2"] < 1
    assert fit_entropy_law([0.1, 0.2], [0.5, 0.6]) == {} and fit_entropy_law([0.3] * 4, R) == {}


def test_correlation():
    assert correlation([1, 2, 3], [2, 4, 7]) == pytest.approx(0.9934, abs=1e-4)
    assert correlation([1, 2, 3], [3, 2, 1]) == pytest.approx(-1.0)
    assert math.isnan(correlation([1, 2, 3], [5, 5, 5])) and math.isnan(correlation([1], [2]))
