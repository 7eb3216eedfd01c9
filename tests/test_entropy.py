"""
Tests of nanoentropy/entropy.py: every strategy on small hand-computed tensors (which tokens are chosen,
which gradients vanish, the penalty, the bounds, the controllers), and every neutral setting against
grpo_loss exactly, value and gradient.
"""
import dataclasses
import math

import pytest
import torch

from nanoentropy.config import Config, ConfigError, validate
from nanoentropy.entropy import STRATEGIES, fec_bounds
from nanoentropy.grpo import grpo_loss


def make_mb(logp, old_logp, adv, mask=None, acc=None, entropy=None, ref_logp=None, step=0, seed=0):
    """A micro-batch dict as train.py builds it, with fresh leaf tensors (so .grad starts empty)."""
    logp = torch.tensor(logp, dtype=torch.float32, requires_grad=True)                  # (B, T)
    B, T = logp.shape
    mask = torch.ones(B, T, dtype=torch.long) if mask is None else torch.tensor(mask)   # (B, T)
    entropy = torch.full((B, T), 0.5) if entropy is None else torch.tensor(entropy, dtype=torch.float32)
    mb = {"logp": logp, "old_logp": torch.tensor(old_logp, dtype=torch.float32), "mask": mask,
          "adv": torch.tensor(adv, dtype=torch.float32), "entropy": entropy.clone().requires_grad_(True),
          "acc": torch.tensor([0.5] * B if acc is None else acc, dtype=torch.float32),
          "norm": {"n_tok": mask.sum().float().clamp(min=1), "n_seq": B, "max_len": T},
          "step": step, "gen": torch.Generator().manual_seed(seed)}
    if ref_logp is not None:
        mb["ref_logp"] = torch.tensor(ref_logp, dtype=torch.float32)
    return mb


def loss_and_grad(fn, mb, cfg, state=None, **kw):
    """Run a strategy (or grpo_loss, with state=None and its clip overrides in kw) and backprop."""
    loss, stats = fn(mb, cfg, **kw) if fn is grpo_loss else fn(mb, cfg, {} if state is None else state)
    loss.backward()
    return loss.detach(), mb["logp"].grad.clone(), stats


# -----------------------------------------------------------------------------
# neutral settings == grpo_loss, value and gradient


def random_data():
    """B=4, T=3 with padding, mixed-sign advantages and ratios far enough from 1 that clip-low,
    clip-high and dual-clip all bind somewhere."""
    g = torch.Generator().manual_seed(0)
    old = -3 * torch.rand(4, 3, generator=g)                                             # (4, 3)
    new = old + 0.5 * torch.randn(4, 3, generator=g)                                     # (4, 3)
    new[1, 0] = old[1, 0] + 1.5                      # r = 4.5 > dual_clip with A < 0
    new[0, 0], new[0, 1] = old[0, 0] + 0.4, old[0, 1] - 0.4                            # clip-high, and not
    new[3, 0] = old[3, 0] - 0.5                      # clip-low with A < 0
    return dict(logp=new.tolist(), old_logp=old.tolist(), adv=[1.2, -0.7, 0.4, -1.5],
                mask=[[1, 1, 1], [1, 1, 0], [1, 1, 1], [1, 0, 0]], acc=[0.25, 0.5, 0.75, 0.0],
                entropy=torch.rand(4, 3, generator=g).tolist(), ref_logp=(old + 0.1).tolist(), step=3)


NEUTRAL = {  # strategy -> (knobs that make it neutral, grpo_loss clip overrides it must then equal)
    "none": ({}, {}),
    "clip_higher": ({"clip_higher_eps_high": 0.2}, {}),
    "entropy_bonus": ({"entropy_bonus_coef": 0.0}, {}),
    "adaptive_entropy": ({"adaptive_entropy_init": 0.0, "adaptive_entropy_delta": 0.0}, {}),
    "clip_cov": ({"clip_cov_ratio": 0.0}, {}),
    # KL-Cov has no clip: it equals GRPO whose clips never bind (lower bound 1 - 1 = 0 < r, no dual)
    "kl_cov": ({"kl_cov_ratio": 0.0, "dual_clip": 0.0}, {"clip_low": 1.0, "clip_high": 1e9}),
    "aer": ({"aer_coef_init": 0.0, "aer_lr": 0.0}, {}),
    "fec": ({"fec_schedule": "static", "fec_upper_slope": 0.0, "fec_lower_slope": 0.0,
             "fec_upper_intercept": 0.2, "fec_lower_intercept": 0.2, "fec_eps_std": 0.2}, {}),
}


@pytest.mark.parametrize("loss_agg", ["token-mean", "seq-mean-token-mean", "seq-mean-token-sum-norm"])
@pytest.mark.parametrize("name", list(STRATEGIES))
def test_neutral_setting_is_grpo(name, loss_agg):
    """Every strategy at its neutral knobs gives grpo_loss exactly, with gradient-preserving clipping,
    dual-clip and the reference KL all on (so each clip-based strategy must pass them through)."""
    assert set(NEUTRAL) == set(STRATEGIES)
    knobs, overrides = NEUTRAL[name]
    cfg = Config(loss_agg=loss_agg, beta_low=0.3, beta_high=0.5, dual_clip=3.0, kl_coef=0.1, num_steps=10)
    cfg = dataclasses.replace(cfg, **knobs)
    loss_fn, update_fn = STRATEGIES[name]
    state = {}
    if update_fn is not None:  # one controller step must keep it neutral too
        loss_fn(make_mb(**random_data()), cfg, state)
        update_fn(state, cfg, {"step": 0, "policy/entropy": 0.05, "policy/surprisal": 0.1})
    loss, grad, stats = loss_and_grad(loss_fn, make_mb(**random_data()), cfg, state)
    ref_loss, ref_grad, ref_stats = loss_and_grad(grpo_loss, make_mb(**random_data()), cfg, **overrides)
    assert torch.equal(loss, ref_loss), (loss.item(), ref_loss.item())
    if name == "fec":
        # FEC hands grpo_loss (B, T) fp32 bounds where GRPO has Python floats: grpo.py forms
        # beta_low * (1 - eps) in double for a float and in fp32 for a tensor, one ulp apart
        assert torch.allclose(grad, ref_grad, rtol=0, atol=1e-7), (grad - ref_grad).abs().max()
    else:
        assert torch.equal(grad, ref_grad), (grad - ref_grad).abs().max()
    for k, v in ref_stats.items():
        assert stats[k] == pytest.approx(v, abs=1e-7), k
    assert stats["clipped"].dtype == torch.bool and stats["clipped"].shape == (4, 3)
    assert not (stats["clipped"] & (make_mb(**random_data())["mask"] == 0)).any()   # never on padding


def test_random_data_exercises_every_clip():
    """The neutral tests only mean something if the clips bind in the data."""
    _, _, stats = loss_and_grad(STRATEGIES["none"][0], make_mb(**random_data()), Config(dual_clip=3.0))
    assert stats["policy/clip_frac_high"] > 0 and stats["policy/clip_frac_low"] > 0
    assert stats["policy/dual_clip_frac"] > 0
    # r = [[1.49, .67, .70], [4.48, .74, -], [.65, 1.73, .59], [.61, -, -]], A = (1.2, -0.7, 0.4, -1.5):
    # high at (0, 0) and (2, 1), low at (1, 1) and (3, 0), dual at (1, 0)
    assert stats["clipped"].tolist() == [[True, False, False], [True, True, False], [False, True, False],
                                         [True, False, False]]


# -----------------------------------------------------------------------------
# clip_higher


def test_clip_higher_keeps_the_gradient_between_the_two_upper_bounds():
    """A > 0, ratios 1.25, 1.30, 1.00: clip 0.2 cuts the first two, clip-higher 0.28 only the second."""
    old = [[math.log(0.5)] * 3]
    new = [[math.log(0.5 * 1.25), math.log(0.5 * 1.3), math.log(0.5)]]
    cfg = Config()
    loss, grad, stats = loss_and_grad(STRATEGIES["clip_higher"][0], make_mb(new, old, [1.0]), cfg)
    # d(-r A / 3) / d logp = -r A / 3 where the gradient survives
    assert torch.allclose(grad, torch.tensor([[-1.25 / 3, 0.0, -1 / 3]]), atol=1e-6)
    assert loss.item() == pytest.approx(-(1.25 + 1.28 + 1.0) / 3, abs=1e-6)
    assert stats["clipped"].tolist() == [[False, True, False]]
    _, grad0, stats0 = loss_and_grad(STRATEGIES["none"][0], make_mb(new, old, [1.0]), cfg)
    assert grad0[0, 0] == 0 and grad0[0, 1] == 0 and stats0["clipped"].tolist() == [[True, True, False]]


# -----------------------------------------------------------------------------
# entropy_bonus and adaptive_entropy


def test_entropy_bonus_value_and_gradient_flows():
    """Regression: a TRL version computed the entropy bonus under no_grad, so it had no effect. Here the
    bonus must reach the entropy tensor: d loss / d H_t = -coef / n_tok on valid tokens, 0 on padding."""
    H = [[1.0, 2.0, 3.0], [0.5, 0.5, 9.0]]
    mask = [[1, 1, 1], [1, 1, 0]]
    zeros = [[0.0] * 3] * 2
    cfg = Config(entropy_bonus_coef=0.01)
    mb = make_mb(zeros, zeros, [1.0, -1.0], mask=mask, entropy=H)
    loss, _, _ = loss_and_grad(STRATEGIES["entropy_bonus"][0], mb, cfg)
    ref = grpo_loss(make_mb(zeros, zeros, [1.0, -1.0], mask=mask), cfg)[0]
    assert loss.item() == pytest.approx(ref.item() - 0.01 * (1 + 2 + 3 + 0.5 + 0.5) / 5, abs=1e-7)
    assert torch.allclose(mb["entropy"].grad, torch.tensor([[-0.002] * 3, [-0.002, -0.002, 0.0]]))


def test_adaptive_entropy_controller():
    """Skywork's rule: below target c += delta and on; above c -= delta and off; c stays in [0, max]."""
    cfg = Config(adaptive_entropy_target=0.2, adaptive_entropy_delta=1e-4, adaptive_entropy_max=5e-3)
    update = STRATEGIES["adaptive_entropy"][1]
    state = {}
    m = lambda e: {"step": 0, "policy/entropy": e, "policy/surprisal": e}
    assert update(state, cfg, m(0.1)) == {"entropy/coef": pytest.approx(1e-4), "entropy/enabled": 1.0}
    assert update(state, cfg, m(0.1))["entropy/coef"] == pytest.approx(2e-4)
    log = update(state, cfg, m(0.3))
    assert log["entropy/coef"] == pytest.approx(1e-4) and state["enabled"] is False
    assert update(state, cfg, m(0.3))["entropy/coef"] == 0.0 and update(state, cfg, m(0.3))["entropy/coef"] == 0.0
    state = {"coef": 4.95e-3}
    assert update(state, cfg, m(0.1))["entropy/coef"] == 5e-3   # clipped at the max


def test_adaptive_entropy_loss_uses_coef_only_when_enabled():
    zeros = [[0.0] * 3] * 2
    cfg = Config()
    ref = grpo_loss(make_mb(zeros, zeros, [1.0, -1.0]), cfg)[0]
    mb = make_mb(zeros, zeros, [1.0, -1.0], entropy=[[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    loss, _, _ = loss_and_grad(STRATEGIES["adaptive_entropy"][0], mb, cfg, {"coef": 0.002, "enabled": True})
    assert loss.item() == pytest.approx(ref.item() - 0.002 * 21 / 6, abs=1e-7)
    assert torch.allclose(mb["entropy"].grad, torch.full((2, 3), -0.002 / 6))
    mb = make_mb(zeros, zeros, [1.0, -1.0])
    loss, _, _ = loss_and_grad(STRATEGIES["adaptive_entropy"][0], mb, cfg, {"coef": 0.002, "enabled": False})
    assert torch.equal(loss, ref.detach())


# -----------------------------------------------------------------------------
# clip_cov
# logp rows [-1, -3, -5] twice, A = (+1, -1): mean A = 0, mean logp = -3, so
# cov = [[2, 0, -2], [-2, 0, 2]] and the candidates in (1, 5) are exactly (0, 0) and (1, 2).
LOGP = [[-1.0, -3.0, -5.0], [-1.0, -3.0, -5.0]]


def test_clip_cov_picks_all_candidates_and_zeroes_their_gradient():
    cfg = Config(clip_cov_ratio=1.0)          # n = 6 >= 2 candidates: both picked
    loss, grad, stats = loss_and_grad(STRATEGIES["clip_cov"][0], make_mb(LOGP, LOGP, [1.0, -1.0]), cfg)
    # r = 1: surviving tokens get d(-r A / 6) / d logp = -A / 6; picked ones exactly 0
    assert grad.flatten().tolist() == pytest.approx([0.0, -1 / 6, -1 / 6, 1 / 6, 1 / 6, 0.0])
    assert grad[0, 0].item() == 0.0 and grad[1, 2].item() == 0.0
    assert loss.item() == pytest.approx(0.0, abs=1e-7)   # (0 + 1 + 1 - 1 - 1 + 0) / 6: zeroed, still counted
    assert stats["entropy/clip_cov_frac"] == pytest.approx(2 / 6)
    assert stats["clipped"].tolist() == [[True, False, False], [False, False, True]]


def test_clip_cov_random_pick_uses_the_generator():
    """n = max(1, int(0.1 * 6)) = 1 of the 2 candidates, drawn with mb["gen"]: reproducible by seed,
    and both candidates come up across seeds."""
    cfg = Config(clip_cov_ratio=0.1)
    seen = set()
    for seed in range(10):
        _, grad, stats = loss_and_grad(STRATEGIES["clip_cov"][0], make_mb(LOGP, LOGP, [1.0, -1.0], seed=seed), cfg)
        expected = [0, 5][torch.randperm(2, generator=torch.Generator().manual_seed(seed))[0]]   # row-major index
        picked = stats["clipped"].flatten().nonzero().flatten().tolist()
        assert picked == [expected] and grad.flatten()[expected] == 0.0
        seen.add(expected)
    assert seen == {0, 5}


def test_clip_cov_bounds_and_ppo_clipped_tokens_are_excluded():
    # ub 1.9 < 2: no candidate at all, whatever the ratio
    _, _, stats = loss_and_grad(STRATEGIES["clip_cov"][0], make_mb(LOGP, LOGP, [1.0, -1.0]),
                                Config(clip_cov_ratio=1.0, clip_cov_ub=1.9))
    assert stats["entropy/clip_cov_frac"] == 0.0
    # (0, 0) already clipped high by PPO (r = e^0.5 > 1.2, A > 0): only (1, 2) is picked
    old = [[-1.5, -3.0, -5.0], [-1.0, -3.0, -5.0]]
    _, grad, stats = loss_and_grad(STRATEGIES["clip_cov"][0], make_mb(LOGP, old, [1.0, -1.0]), Config(clip_cov_ratio=1.0))
    assert stats["entropy/clip_cov_frac"] == pytest.approx(1 / 6)
    assert stats["policy/clip_frac_high"] == pytest.approx(1 / 6)
    assert stats["clipped"].tolist() == [[True, False, False], [False, False, True]]
    assert grad[0, 0] == 0 and grad[1, 2] == 0 and grad[0, 1] != 0


def test_clip_cov_means_are_over_valid_tokens():
    """Pad (1, 1): mean A = (3 - 2) / 5 = 0.2, mean logp = -15 / 5 = -3, so cov(0, 0) = 0.8 * 2 = 1.6 and
    cov(1, 2) = -1.2 * -2 = 2.4; with lb = 1.7 only (1, 2) remains a candidate."""
    logp = [[-1.0, -3.0, -5.0], [-1.0, 0.0, -5.0]]
    mb = make_mb(logp, logp, [1.0, -1.0], mask=[[1, 1, 1], [1, 0, 1]])
    _, _, stats = loss_and_grad(STRATEGIES["clip_cov"][0], mb, Config(clip_cov_ratio=1.0, clip_cov_lb=1.7))
    assert stats["clipped"].tolist() == [[False, False, False], [False, False, True]]


# -----------------------------------------------------------------------------
# kl_cov
# logp [[-1, -3, -5], [-1, -3, -6]], A = (+1, -1): mean logp = -19/6, so
# cov = [[13/6, 1/6, -11/6], [-13/6, -1/6, 17/6]]; signed top-3 = (1, 2), (0, 0), (0, 1).
LOGP2 = [[-1.0, -3.0, -5.0], [-1.0, -3.0, -6.0]]


def test_kl_cov_top_k_penalty_value_and_gradient():
    old = [[l - 0.1 for l in row] for row in LOGP2]
    old[0][1] = LOGP2[0][1] - 1.0                   # r = e: far outside any clip, and KL-Cov has none
    cfg = Config(kl_cov_ratio=0.5, kl_cov_coef=1.0)  # n = int(0.5 * 6) = 3
    loss, grad, stats = loss_and_grad(STRATEGIES["kl_cov"][0], make_mb(LOGP2, old, [1.0, -1.0]), cfg)
    e1, e = math.exp(0.1), math.e
    assert stats["entropy/kl_cov_frac"] == pytest.approx(0.5)
    # obj = r A - |log r| on picked: sum r A = e1 + e + e1 - 3 e1; penalties 0.1 + 1.0 + 0.1
    assert loss.item() == pytest.approx(-(e - e1 - 1.2) / 6, abs=1e-6)
    # d loss / d logp = -(r A - sign(log r) [picked]) / 6
    expected = [-(e1 - 1) / 6, -(e - 1) / 6, -e1 / 6, e1 / 6, e1 / 6, (e1 + 1) / 6]
    assert grad.flatten().tolist() == pytest.approx(expected, abs=1e-6)
    assert not stats["clipped"].any() and stats["policy/clip_frac_high"] == 0.0
    # a small ratio still penalises max(1, int(2e-3 * 6)) = 1 token: the top one, (1, 2)
    _, grad, stats = loss_and_grad(STRATEGIES["kl_cov"][0], make_mb(LOGP2, old, [1.0, -1.0]), Config())
    assert stats["entropy/kl_cov_frac"] == pytest.approx(1 / 6)
    assert grad[1, 2].item() == pytest.approx((e1 + 1) / 6) and grad[0, 0].item() == pytest.approx(-e1 / 6)


# -----------------------------------------------------------------------------
# aer


def test_aer_bonus_only_on_hard_prompts():
    """acc (0.25, 0.5) with tau 0.4: only row 0 gets the entropy term."""
    zeros = [[0.0] * 3] * 2
    cfg = Config(aer_tau=0.4)
    mb = make_mb(zeros, zeros, [1.0, -1.0], acc=[0.25, 0.5], entropy=[[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    loss, _, stats = loss_and_grad(STRATEGIES["aer"][0], mb, cfg, {"coef": 0.1})
    ref = grpo_loss(make_mb(zeros, zeros, [1.0, -1.0]), cfg)[0]
    assert loss.item() == pytest.approx(ref.item() - 0.1 * 6 / 6, abs=1e-6)
    assert torch.allclose(mb["entropy"].grad, torch.tensor([[-0.1 / 6] * 3, [0.0] * 3]))
    assert stats["entropy/aer_hard_frac"] == pytest.approx(0.5)


def test_aer_controller():
    """H_0 = 2 anchors H* = 0.5 * 2 = 1; alpha += 0.01 (H* - H), clipped to [0, 0.05]."""
    cfg = Config(aer_rho=0.5, aer_lr=1e-2, aer_coef_max=0.05)
    update = STRATEGIES["aer"][1]
    state = {}
    m = lambda e: {"step": 0, "policy/entropy": e, "policy/surprisal": e}
    assert update(state, cfg, m(2.0)) == {"entropy/coef": 0.0, "entropy/target": 1.0}   # 0 - 0.01, clipped
    assert update(state, cfg, m(0.6))["entropy/coef"] == pytest.approx(0.004)
    assert update(state, cfg, m(0.5))["entropy/coef"] == pytest.approx(0.009)
    assert update(state, cfg, m(1.2))["entropy/coef"] == pytest.approx(0.007)
    assert update(dict(state), dataclasses.replace(cfg, aer_lr=1.0), m(0.0))["entropy/coef"] == 0.05
    assert state["h0"] == 2.0


# -----------------------------------------------------------------------------
# fec
P = torch.tensor([0.0, 0.3, 0.5, 0.7, 1.0])
H_P = [0.5, 0.425 / 1.075, 0.375 / 1.125, 0.325 / 1.175, 0.2]       # (b + a p) / (1 - a p)
M_P = [0.3, 0.261 / 0.961, 0.235 / 0.935, 0.209 / 0.909, 0.17 / 0.87]


def test_fec_static_bounds_match_the_note_table():
    up, lo = fec_bounds(P, 0, Config(fec_schedule="static"), "suppress")
    assert up.tolist() == pytest.approx([0.500, 0.395, 0.333, 0.277, 0.200], abs=1e-3)   # note 001, section 2
    assert lo.tolist() == pytest.approx([0.300, 0.272, 0.251, 0.230, 0.195], abs=1e-3)
    assert up.tolist() == pytest.approx(H_P, abs=1e-6) and lo.tolist() == pytest.approx(M_P, abs=1e-6)
    up, _ = fec_bounds(P, 0, Config(fec_schedule="static", fec_clip_max=0.4), "suppress")
    assert up[0].item() == pytest.approx(0.4)


@pytest.mark.parametrize("k, id_up, id_lo, did_up, did_lo", [
    # T = 100, lambda = 1 - 2k/T; h = H(p), m = M(p), s = 0.2
    (0, lambda h: h, lambda m: 0.2, lambda h: 0.2, lambda m: 0.2),
    (25, lambda h: 0.5 * h + 0.1, lambda m: 0.2, lambda h: 0.1 + 0.5 * h, lambda m: 0.2),
    (50, lambda h: 0.2, lambda m: 0.2, lambda h: h, lambda m: 0.2),
    (75, lambda h: 0.2, lambda m: 0.5 * m + 0.1, lambda h: h, lambda m: 0.5 * m + 0.1),
    (100, lambda h: 0.2, lambda m: 0.2, lambda h: h, lambda m: 0.2),
])
def test_fec_id_and_did_schedules(k, id_up, id_lo, did_up, did_lo):
    for schedule, f_up, f_lo in (("id", id_up, id_lo), ("did", did_up, did_lo)):
        up, lo = fec_bounds(P, k, Config(num_steps=100, fec_schedule=schedule), "suppress")
        assert up.tolist() == pytest.approx([f_up(h) for h in H_P], abs=1e-6), schedule
        assert lo.tolist() == pytest.approx([f_lo(m) for m in M_P], abs=1e-6), schedule


def test_fec_phase_split_and_od_bounds():
    cfg = Config(num_steps=100, fec_schedule="id", fec_phase_split=0.25)
    assert fec_bounds(P, 25, cfg, "suppress")[0].tolist() == pytest.approx([0.2] * 5)   # lambda = 0
    lo = fec_bounds(P, 50, cfg, "suppress")[1]   # phase 2: lambda = -(50 - 25) / 75 = -1/3
    assert lo.tolist() == pytest.approx([2 / 3 * m + 0.2 / 3 for m in M_P], abs=1e-6)
    cfg = Config(fec_schedule="od")
    up, lo = fec_bounds(P, 7, cfg, "boost")
    assert up.tolist() == pytest.approx(H_P, abs=1e-6) and lo.tolist() == pytest.approx([0.2] * 5)
    up, lo = fec_bounds(P, 7, cfg, "suppress")
    assert up.tolist() == pytest.approx([0.2] * 5) and lo.tolist() == pytest.approx(M_P, abs=1e-6)


def test_fec_clip_follows_the_token_probability():
    """A > 0. p_old = 0.1, r = 1.3: H(0.1) = 0.475 / 1.025 = 0.463 keeps the gradient (GRPO's 0.2 cuts it).
    p_old = 0.9, r = 1.25: H(0.9) = 0.275 / 1.225 = 0.224 cuts it (DAPO's 0.28 would keep it)."""
    old = [[math.log(0.1), math.log(0.9)]]
    new = [[math.log(0.1 * 1.3), math.log(0.9 * 1.25)]]
    cfg = Config(fec_schedule="static")
    loss, grad, stats = loss_and_grad(STRATEGIES["fec"][0], make_mb(new, old, [1.0]), cfg)
    assert grad[0, 0].item() == pytest.approx(-1.3 / 2, abs=1e-6) and grad[0, 1] == 0
    assert loss.item() == pytest.approx(-(1.3 + 1.0 + 0.275 / 1.225) / 2, abs=1e-6)
    assert stats["clipped"].tolist() == [[False, True]]
    assert stats["entropy/fec_eps_high"] == pytest.approx((0.475 / 1.025 + 0.275 / 1.225) / 2, abs=1e-6)


def test_fec_od_hysteresis():
    """H_init = 1, H_min = 0.2, tau_high(k) = 0.2 + 0.8 (1 - k / 100)."""
    cfg = Config(num_steps=100, fec_schedule="od", fec_od_h_init=1.0, fec_od_min_ratio=0.2)
    update = STRATEGIES["fec"][1]
    state = {}
    m = lambda k, e: {"step": k, "policy/entropy": e, "policy/surprisal": e}
    modes = []
    for k, e in [(0, 0.9), (10, 0.19), (20, 0.5), (50, 0.7), (60, 0.3), (90, 0.2)]:
        log = update(state, cfg, m(k, e))
        modes.append(state["od_mode"])
    # 0.9 <= tau 1.0: keep; 0.19 <= H_min: boost; 0.5 <= tau 0.84: keep; 0.7 > tau 0.6: suppress;
    # 0.3 <= tau 0.52: keep; 0.2 <= H_min: boost
    assert modes == ["suppress", "boost", "boost", "suppress", "suppress", "boost"]
    assert log == {"entropy/fec_od_boost": 1.0, "entropy/fec_tau_high": pytest.approx(0.28)}
    # H_init measured on the first call when fec_od_h_init = 0; the mode then drives the loss
    state = {}
    update(state, dataclasses.replace(cfg, fec_od_h_init=0.0), m(0, 2.0))
    assert state["h_init"] == 2.0 and state["od_mode"] == "suppress"
    old = [[math.log(0.3)] * 2]
    _, _, stats = loss_and_grad(STRATEGIES["fec"][0], make_mb(old, old, [1.0]), cfg, {"od_mode": "boost"})
    assert stats["entropy/fec_eps_high"] == pytest.approx(H_P[1], abs=1e-6)
    assert stats["entropy/fec_eps_low"] == pytest.approx(0.2)
    assert update({}, dataclasses.replace(cfg, fec_schedule="id"), m(0, 1.0)) is None


# -----------------------------------------------------------------------------
# the contract and the config


@pytest.mark.parametrize("name", list(STRATEGIES))
def test_contract_at_defaults(name):
    """Defaults run, stats are floats plus the (B, T) bool mask, update logs entropy/* floats, and the
    state holds only plain types (train.py saves it with torch.save)."""
    loss_fn, update_fn = STRATEGIES[name]
    cfg = Config(num_steps=10)
    validate(dataclasses.replace(cfg, entropy_strategy=name))
    state = {}
    for step in range(3):
        _, _, stats = loss_and_grad(loss_fn, make_mb(**{**random_data(), "step": step}), cfg, state)
        clipped = stats.pop("clipped")
        assert clipped.dtype == torch.bool and clipped.shape == (4, 3)
        assert all(isinstance(v, float) for v in stats.values()), stats
        if update_fn is not None:
            log = update_fn(state, cfg, {"step": step, "policy/entropy": 0.3 / (step + 1), "policy/surprisal": 0.4})
            assert log is None or all(k.startswith("entropy/") and isinstance(v, float) for k, v in log.items())
    assert all(type(v) in (float, int, str, bool) for v in state.values()), state


@pytest.mark.parametrize("bad", [{"clip_cov_lb": 5.0}, {"kl_cov_ratio": 1.5}, {"fec_schedule": "up"},
                                 {"fec_phase_split": 1.0}, {"entropy_bonus_coef": -1.0}, {"fec_od_init_mode": "x"},
                                 {"aer_tau": -0.1}, {"fec_lower_slope": -1.0}])
def test_config_rejects_bad_entropy_knobs(bad):
    with pytest.raises(ConfigError):
        validate(Config(**bad))
