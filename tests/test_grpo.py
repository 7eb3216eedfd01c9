"""GRPO pieces on small hand-computed examples: advantages, aggregation modes, the clipped objective,
gradient-preserving clipping, dual-clip, the k3 KL, and micro-batch invariance of the loss."""
import math

import pytest
import torch

from nanoentropy.config import Config
from nanoentropy.grpo import group_advantages, grpo_loss, kl_k3, masked_agg, token_objective


def test_group_advantages_by_hand():
    r = torch.tensor([[1.0, 0.0, 0.0, 1.0], [1.0, 1.0, 1.0, 1.0]])
    # group 1: mean 0.5, unbiased std sqrt(4 * 0.25 / 3) = 0.57735 -> +/- 0.866; group 2: no spread -> 0
    adv = group_advantages(r, std_norm=True)  # eps 1e-6 keeps the no-spread group at 0, not nan
    s = 0.5 / math.sqrt(1 / 3)
    assert torch.allclose(adv, torch.tensor([s, -s, -s, s, 0.0, 0.0, 0.0, 0.0]), atol=1e-5)
    # Dr. GRPO: no std division
    assert torch.allclose(group_advantages(r, std_norm=False), torch.tensor([0.5, -0.5, -0.5, 0.5, 0, 0, 0, 0]))


def test_masked_agg_modes_by_hand():
    x = torch.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    mask = torch.tensor([[1, 1, 0], [1, 0, 0]])
    norm = {"n_tok": 3, "n_seq": 2, "max_len": 3}
    assert masked_agg(x, mask, "token-mean", norm).item() == pytest.approx(7 / 3)           # (1+2+4)/3
    assert masked_agg(x, mask, "seq-mean-token-mean", norm).item() == pytest.approx(2.75)   # (1.5+4)/2
    assert masked_agg(x, mask, "seq-mean-token-sum-norm", norm).item() == pytest.approx(7 / 6)  # 7/(2*3)


def _objective(ratios, adv, **kw):
    logp = torch.log(torch.tensor([ratios])).requires_grad_()   # old_logp = 0, so r = exp(logp)
    obj, info = token_objective(logp, torch.zeros_like(logp), torch.tensor([adv]), **kw)
    obj.sum().backward()
    return obj.detach()[0], logp.grad[0], info


def test_clip_by_hand():
    # A > 0: r = 1.5 is above 1 + 0.2 -> frozen at 1.2 A, no gradient; r = 0.5 is not clipped (min picks r A)
    obj, grad, info = _objective([1.5, 0.5, 1.0], 2.0, clip_low=0.2, clip_high=0.2)
    assert torch.allclose(obj, torch.tensor([2.4, 1.0, 2.0]))
    assert torch.allclose(grad, torch.tensor([0.0, 1.0, 2.0]))     # d(r A)/d logp = r A
    assert info["clip_high"].tolist() == [[True, False, False]] and not info["clip_low"].any()
    # A < 0: r = 0.5 is below 1 - 0.2 -> frozen at 0.8 A; r = 1.5 keeps its gradient (pessimistic side)
    obj, grad, info = _objective([1.5, 0.5, 1.0], -1.0, clip_low=0.2, clip_high=0.28)
    assert torch.allclose(obj, torch.tensor([-1.5, -0.8, -1.0]))
    assert torch.allclose(grad, torch.tensor([-1.5, 0.0, -1.0]))
    assert info["clip_low"].tolist() == [[False, True, False]]


def test_gradient_preserving_by_hand():
    # clipped tokens keep value (1 + eps) A but get gradient beta * (1 + eps) * A
    obj, grad, _ = _objective([1.5, 0.5], 2.0, clip_low=0.2, clip_high=0.2, beta_high=0.5)
    assert torch.allclose(obj, torch.tensor([2.4, 1.0]))
    assert torch.allclose(grad, torch.tensor([0.5 * 1.2 * 2.0, 1.0]))
    obj, grad, _ = _objective([0.5, 1.5], -1.0, clip_low=0.2, clip_high=0.2, beta_low=1.0)
    assert torch.allclose(obj, torch.tensor([-0.8, -1.5]))
    assert torch.allclose(grad, torch.tensor([1.0 * 0.8 * -1.0, -1.5]))


def test_betas_zero_is_exactly_hard_clipping():
    """The literal PPO formula min(r A, clip(r) A): same values and the same gradients, bit for bit."""
    g = torch.Generator().manual_seed(0)
    logp0 = torch.randn(6, 5, generator=g) * 0.3
    old = torch.randn(6, 5, generator=g) * 0.3
    adv = torch.randn(6, generator=g)
    a = logp0.clone().requires_grad_()
    obj, _ = token_objective(a, old, adv, 0.2, 0.28, beta_low=0.0, beta_high=0.0)
    obj.sum().backward()
    b = logp0.clone().requires_grad_()
    r = torch.exp(b - old)
    ref = torch.minimum(r * adv[:, None], torch.clamp(r, 0.8, 1.28) * adv[:, None])
    ref.sum().backward()
    assert torch.equal(obj.detach(), ref.detach())
    assert torch.equal(a.grad, b.grad)


def test_dual_clip():
    # A < 0 and r = 4 > c = 3: floored at 3 A, no gradient; r = 2 < c: plain r A
    obj, grad, info = _objective([4.0, 2.0], -1.0, clip_low=0.2, clip_high=0.2, dual_clip=3.0)
    assert torch.allclose(obj, torch.tensor([-3.0, -2.0]))
    assert torch.allclose(grad, torch.tensor([0.0, -2.0]))
    assert info["dual"].tolist() == [[True, False]]


def test_kl_k3_by_hand():
    logp, ref = torch.tensor([0.0, -1.0]), torch.tensor([0.0, -2.0])
    d = -1.0  # ref - logp for the second token
    assert torch.allclose(kl_k3(logp, ref), torch.tensor([0.0, math.exp(d) - d - 1]))


def _mb(g, B=4, T=5):
    logp = (torch.randn(B, T, generator=g) * 0.2 - 1).requires_grad_()
    mask = (torch.rand(B, T, generator=g) > 0.3).long()
    return {"logp": logp, "old_logp": logp.detach() + torch.randn(B, T, generator=g) * 0.2,
            "adv": torch.randn(B, generator=g), "mask": mask, "ref_logp": logp.detach() - 0.1,
            "entropy": torch.rand(B, T, generator=g)}


@pytest.mark.parametrize("mode", ["token-mean", "seq-mean-token-mean", "seq-mean-token-sum-norm"])
def test_micro_batches_add_up_to_the_batch(mode):
    """Splitting a mini-batch into micro-batches (the norm counts are over the whole mini-batch)
    gives the same loss and gradient as one big batch: gradient accumulation changes nothing."""
    cfg = Config(loss_agg=mode, kl_coef=0.1, clip_high=0.28)
    full = _mb(torch.Generator().manual_seed(1))
    norm = {"n_tok": full["mask"].sum(), "n_seq": 4, "max_len": 5}
    loss, _ = grpo_loss({**full, "norm": norm}, cfg)
    loss.backward()
    grad_full = full["logp"].grad.clone()
    full["logp"].grad = None
    total = 0.0
    for idx in (slice(0, 1), slice(1, 4)):
        part = {k: v[idx] for k, v in full.items()}
        part_loss, _ = grpo_loss({**part, "norm": norm}, cfg)
        part_loss.backward()
        total = total + part_loss.item()
    assert total == pytest.approx(loss.item(), abs=1e-6)
    assert torch.allclose(full["logp"].grad, grad_full, atol=1e-7)


def test_grpo_loss_stats_and_kl():
    cfg = Config(kl_coef=0.5)
    mb = {"logp": torch.log(torch.tensor([[1.5, 0.5, 1.0]])), "old_logp": torch.zeros(1, 3),
          "adv": torch.tensor([1.0]), "mask": torch.tensor([[1, 1, 0]]), "ref_logp": torch.zeros(1, 3),
          "norm": {"n_tok": 2, "n_seq": 1, "max_len": 3}}
    loss, stats = grpo_loss(mb, cfg)
    kl = kl_k3(mb["logp"], mb["ref_logp"])[0, :2].mean().item()
    assert loss.item() == pytest.approx(-(1.2 + 0.5) / 2 + 0.5 * kl)
    assert stats["policy/clip_frac_high"] == pytest.approx(0.5) and stats["policy/clip_frac_low"] == 0
    assert stats["policy/ref_kl"] == pytest.approx(kl)


@pytest.mark.parametrize("beta", [0.0, 0.5])
def test_extreme_log_ratios_stay_finite(beta):
    """Regression (issue 10): the gradient-preserving term was r / sg(r) - 1, which is 0 / 0 = nan where the
    ratio underflows to 0 (log ratio below about -103 in fp32), even with both betas 0; and the k3 KL's
    e^(ref - logp) overflowed past 88 nats. Both are finite now, with the values and gradients of the formulas."""
    logp = torch.tensor([[-150.0, -1.0]], requires_grad=True)
    obj, info = token_objective(logp, torch.tensor([[0.0, -1.0]]), torch.tensor([-1.0]), 0.2, 0.2, beta_low=beta)
    obj.sum().backward()
    assert info["ratio"][0, 0] == 0 and info["clip_low"][0, 0]    # underflowed to 0, and clipped low
    assert torch.equal(obj.detach(), torch.tensor([[-0.8, -1.0]]))  # (1 - eps) A, and r A with r = 1
    assert torch.allclose(logp.grad, torch.tensor([[beta * 0.8 * -1.0, -1.0]]))
    logp = torch.tensor([-150.0, 150.0, -1.0], requires_grad=True)
    kl = kl_k3(logp, torch.zeros(3))                                 # ref - logp = 150, -150, 1: clamped to +-20
    kl.sum().backward()
    assert torch.allclose(kl.detach(), torch.tensor([math.exp(20) - 21, math.exp(-20) + 19, math.exp(1) - 2]))
    assert torch.allclose(logp.grad, torch.tensor([0.0, 0.0, 1 - math.exp(1)]))   # no gradient past the clamp
