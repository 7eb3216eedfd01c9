"""
Entropy-control strategies. One function per strategy (plus an update function when it keeps state
across steps), one dict (STRATEGIES) to dispatch. Each strategy is self-contained: they may call
grpo.py but never each other, so a diff of two of them shows the idea.
Shapes: B = sequences in the micro-batch, T = completion tokens (right-padded).

Contract (the only two places train.py touches a strategy):
  loss path:    loss, stats = loss_fn(mb, cfg, state)    once per micro-batch; loss is to MINIMIZE
  logging path: logs = update_fn(state, cfg, metrics)    once per RL step, after all the updates
mb: logp (B, T) with grad, old_logp (B, T), entropy (B, T) full-vocabulary entropy with grad, mask (B, T),
adv (B,), acc (B,) the accuracy of the row's prompt group, norm (counts over the update mini-batch), step,
gen (a torch.Generator), ref_logp (B, T) when kl_coef > 0. state: a plain dict the strategy owns (floats,
ints, strs, bools: checkpoints save it). metrics: "step", "policy/entropy" (token-mean full-vocabulary
entropy of the rollout batch before the update, all ranks), "policy/surprisal" (mean -log p of the samples).
stats: floats train.py averages over micro-batches, plus stats["clipped"], a (B, T) bool of the tokens whose
gradient the clip or the strategy removed. logs: floats under "entropy/...", or None.
Every strategy has a neutral setting that gives back grpo_loss exactly, value and gradient (tested).
Under torchrun: loss normalisers cover the mini-batch on ALL ranks; Clip-Cov / KL-Cov's covariance is over
this rank's micro-batch, as in the official code; AER's group accuracy is local and exact (a prompt's G
samples live on one rank).
"""
import torch

from nanoentropy.grpo import clip_stats, grpo_loss, masked_agg, masked_mean, token_objective, with_ref_kl


# -----------------------------------------------------------------------------
# none and clip_higher: the clip alone


def grpo_only(mb, cfg, state):
    """Strategy "none": plain GRPO (grpo.grpo_loss) with cfg.clip_low / cfg.clip_high (0.2 / 0.2)."""
    return grpo_loss(mb, cfg)


def clip_higher(mb, cfg, state):
    """
    Strategy "clip_higher", from DAPO (https://arxiv.org/abs/2503.14476): a looser upper clip, so that
    unlikely tokens with A > 0 can grow further before their gradient is cut (entropy goes up):
      obj = min(r A, clip(r, 1 - eps_low, 1 + eps_high) A),   eps_low = cfg.clip_low
    Knob: clip_higher_eps_high (DAPO's 0.28; eps_low stays cfg.clip_low = 0.2).
    Neutral: clip_higher_eps_high == cfg.clip_high.
    Departures from DAPO: 1) only the clip: dynamic sampling and the overlong penalty are not part of it;
    2) gradient-preserving clipping (cfg.beta_*) and dual-clip combine with it when set.
    """
    return grpo_loss(mb, cfg, clip_high=cfg.clip_higher_eps_high)

# -----------------------------------------------------------------------------
# entropy_bonus and adaptive_entropy: add entropy to the objective


def entropy_bonus(mb, cfg, state):
    """
    Strategy "entropy_bonus": GRPO minus a fixed multiple of the token entropy, the oldest trick
    (Williams & Peng 1991; PPO's ent_coef, https://arxiv.org/abs/1707.06347):
      loss = L_GRPO - entropy_bonus_coef * agg_t H_t
    H_t is the full-vocabulary entropy at each completion position, and its gradient flows through the
    whole distribution (a TRL bug once computed the bonus under no_grad: a constant, no effect).
    Knob: entropy_bonus_coef (1e-3). Cui et al. (https://arxiv.org/abs/2505.22617, sec. 4.1) swept it on
    Qwen2.5-7B: 1e-4 and 1e-3 do little, 5e-3 holds entropy without gain, 1e-2 explodes. Neutral: 0.
    Departure: 1) the bonus uses the loss's aggregation, cfg.loss_agg (verl: token-mean).
    """
    loss, stats = grpo_loss(mb, cfg)
    entropy = masked_agg(mb["entropy"], mb["mask"], cfg.loss_agg, mb["norm"])   # scalar, WITH grad
    loss = loss - cfg.entropy_bonus_coef * entropy     # minus: we want MORE entropy, and we minimize
    return loss, stats


def adaptive_entropy(mb, cfg, state):
    """
    Strategy "adaptive_entropy", Skywork-OR1's adaptive entropy control (https://arxiv.org/abs/2505.22312,
    sec. 3.2.5): an entropy bonus switched on only while entropy is below a target, with a coefficient
    c that a bang-bang controller nudges once per step (adaptive_entropy_update):
      loss = L_GRPO - c * enabled * agg_t H_t
      after step k, e = batch entropy:  c <- clip(c + delta if e < target else c - delta, 0, c_max)
                                        enabled <- (e < target)
    Knobs, defaults from Skywork's released scripts: adaptive_entropy_init (0.0), adaptive_entropy_target
    (0.2 nats), adaptive_entropy_delta (1e-4), adaptive_entropy_max (5e-3; the floor is 0).
    Neutral: adaptive_entropy_init = 0 and adaptive_entropy_delta = 0 (c stays 0).
    Under torchrun e is global (train.py all-reduces it), so every rank steps c the same way.
    Departures: 1) e is the full-vocabulary entropy; Skywork feeds the mean surprisal -log p of the
    sampled tokens (an estimate of the same thing on-policy; we log it as policy/surprisal);
    2) before the first measurement enabled = True, so a non-zero init acts from step 0 (Skywork's init
    is 0, where this changes nothing); 3) the bonus uses cfg.loss_agg.
    """
    c = state.setdefault("coef", cfg.adaptive_entropy_init)
    enabled = state.setdefault("enabled", True)
    loss, stats = grpo_loss(mb, cfg)
    entropy = masked_agg(mb["entropy"], mb["mask"], cfg.loss_agg, mb["norm"])   # scalar, WITH grad
    loss = loss - c * float(enabled) * entropy         # minus: we want MORE entropy, and we minimize
    return loss, stats


def adaptive_entropy_update(state, cfg, metrics):
    """Skywork's controller, once per step: one fixed step of c toward more (or less) entropy bonus."""
    e = metrics["policy/entropy"]
    c = state.get("coef", cfg.adaptive_entropy_init)
    c = c + cfg.adaptive_entropy_delta if e < cfg.adaptive_entropy_target else c - cfg.adaptive_entropy_delta
    state["coef"] = min(max(c, 0.0), cfg.adaptive_entropy_max)
    state["enabled"] = e < cfg.adaptive_entropy_target
    return {"entropy/coef": state["coef"], "entropy/enabled": float(state["enabled"])}

# -----------------------------------------------------------------------------
# clip_cov and kl_cov: act on the few tokens with the largest covariance


def clip_cov(mb, cfg, state):
    """
    Strategy "clip_cov", Clip-Cov of Cui et al., "The Entropy Mechanism of RL for Reasoning Language
    Models" (https://arxiv.org/abs/2505.22617, eqs. 10-12; github.com/PRIME-RL/Entropy-Mechanism-of-RL).
    A step lowers entropy by about Cov(log pi(a), A(a)), and a handful of tokens carry most of that
    covariance. Clip-Cov removes the policy gradient of a few random ones among them:
      cov_t = (A_t - mean A) * (log pi_t - mean log pi)     means over the valid tokens, log pi detached
      candidates = {t : lb < cov_t < ub (strict), t valid and not already clipped by PPO}
      pick min(n, |candidates|) uniformly without replacement, n = max(1, int(ratio * N)), N valid tokens
      picked tokens: loss term 0 and no gradient, but still counted in the denominator
    Knobs (paper and verl defaults): clip_cov_ratio (2e-4), clip_cov_lb (1.0), clip_cov_ub (5.0).
    Neutral: clip_cov_ratio = 0.
    Departures: 1) ratio = 0 picks no token (the official code still picks 1): 0 is the off switch; 2) the PPO
    clip is cfg.clip_low / clip_high with beta_* and dual_clip, where the paper's scripts use eps = 1 (clip
    nearly off: set clip_high 1.0, clip_low 0.999 to match); 3) as in the official code, means, N and the
    draw are over this rank's micro-batch (the paper: "a batch"); 4) the draw uses mb["gen"]: reproducible.
    """
    logp, mask = mb["logp"], mb["mask"].bool()                                       # (B, T)
    obj, info = token_objective(logp, mb["old_logp"], mb["adv"], cfg.clip_low, cfg.clip_high,
                                cfg.beta_low, cfg.beta_high, cfg.dual_clip)          # (B, T) to maximize
    ppo_clipped = (info["clip_low"] | info["clip_high"] | info["dual"]) & mask      # (B, T)
    with torch.no_grad():  # the selection is a statistic: no gradient flows through it
        adv, m = mb["adv"][:, None].expand_as(logp), mask.float()                    # (B, T), (B, T)
        n_valid = m.sum()                                                            # N
        mean = lambda x: (x * m).sum() / n_valid.clamp(min=1)                        # over the valid tokens
        cov = (adv - mean(adv)) * (logp - mean(logp))                                # (B, T)
        cov = cov.masked_fill(~mask | ppo_clipped, float("-inf"))                   # (B, T) never a candidate
        cand = ((cov > cfg.clip_cov_lb) & (cov < cfg.clip_cov_ub)).flatten().nonzero().squeeze(1)  # (C,) row-major
        n = 0 if cfg.clip_cov_ratio == 0 else max(1, int(cfg.clip_cov_ratio * int(n_valid)))   # a CPU-GPU sync
        mine = torch.randperm(len(cand), generator=mb["gen"], device=mb["gen"].device)[:n]    # (min(n, C),)
        picked = torch.zeros(mask.numel(), dtype=torch.bool, device=mask.device)    # (B * T,)
        picked[cand[mine.to(cand.device)]] = True
        picked = picked.view_as(mask)                                                # (B, T)
    obj = torch.where(picked, torch.zeros_like(obj), obj)   # (B, T) value 0 and no gradient where picked
    loss = -masked_agg(obj, mb["mask"], cfg.loss_agg, mb["norm"])   # minus: optimizers minimize
    stats = clip_stats(info, mb["mask"])
    stats["entropy/clip_cov_frac"] = masked_mean(picked.float(), mb["mask"]).item()  # fraction removed
    stats["clipped"] = ppo_clipped | picked                                          # (B, T)
    return with_ref_kl(loss, stats, mb, cfg)   # picked tokens keep the reference KL's gradient, as in verl


def kl_cov(mb, cfg, state):
    """
    Strategy "kl_cov", KL-Cov of Cui et al. (https://arxiv.org/abs/2505.22617, eqs. 13-14): instead of
    cutting the high-covariance tokens, hold them near the old policy, and drop the PPO clip entirely:
      cov_t as in clip_cov;  I = the top max(1, int(k * N)) valid tokens by cov (signed, deterministic)
      obj_t = r_t A_t - beta * |log pi_t - log pi_old_t| * [t in I]         (no ratio clipping at all)
    Knobs: kl_cov_ratio k (2e-3, the paper's 7B value, a FRACTION: the official k_percent 0.2 is our 2e-3;
    32B used 2e-4), kl_cov_coef beta (1.0 as in the paper and all recipes; verl's config default is 0.1).
    Neutral: kl_cov_ratio = 0, no token penalised. This then equals grpo_loss with clips that never bind:
    clip_low = 1 (lower ratio bound 0 < r), clip_high = 1e9 and dual_clip = 0 (tested).
    Departures: 1) cfg.clip_*, beta_* and dual_clip are ignored: the method has no clip; 2) the statistic is
    over this rank's micro-batch, as in clip_cov (PRIME-RL issue 14 asks for the whole batch over all GPUs).
    kl_coef works as in grpo_loss. A trap, not a departure: on
    the first, on-policy update |log r| = 0 with zero gradient (exactly 0: train.py scores the old
    log-probs on the update's own micro-batches), so the penalty acts only from the second mini-batch.
    """
    logp, mask = mb["logp"], mb["mask"].bool()                                       # (B, T)
    log_ratio = logp - mb["old_logp"]                                                # (B, T)
    ratio = torch.exp(log_ratio)                                                     # (B, T) r = pi / pi_old
    adv = mb["adv"][:, None]                                                         # (B, 1) broadcast over T
    with torch.no_grad():  # the selection is a statistic: no gradient flows through it
        adv_t, m = adv.expand_as(logp), mask.float()                                 # (B, T), (B, T)
        n_valid = m.sum()                                                            # N
        mean = lambda x: (x * m).sum() / n_valid.clamp(min=1)                        # over the valid tokens
        cov = (adv_t - mean(adv_t)) * (logp - mean(logp))                            # (B, T)
        cov = cov.masked_fill(~mask, float("-inf"))                                  # (B, T)
        n = 0 if cfg.kl_cov_ratio == 0 or n_valid == 0 else max(1, int(cfg.kl_cov_ratio * int(n_valid)))  # a sync
        picked = torch.zeros(mask.numel(), dtype=torch.bool, device=mask.device)    # (B * T,)
        picked[torch.topk(cov.flatten(), n).indices] = True
        picked = picked.view_as(mask)                                                # (B, T)
    obj = ratio * adv - cfg.kl_cov_coef * log_ratio.abs() * picked   # (B, T) to maximize; minus: a penalty
    loss = -masked_agg(obj, mb["mask"], cfg.loss_agg, mb["norm"])    # minus: optimizers minimize
    none = torch.zeros_like(mask)                                                    # (B, T) nothing clipped
    stats = clip_stats({"clip_low": none, "clip_high": none, "dual": none, "ratio": ratio.detach()}, mb["mask"])
    stats["entropy/kl_cov_frac"] = masked_mean(picked.float(), mb["mask"]).item()   # fraction penalised
    stats["entropy/kl_cov_abs_log_ratio"] = masked_mean(log_ratio.detach().abs(), mb["mask"]).item()
    stats["clipped"] = none                          # KL-Cov removes no gradient, it adds a penalty
    return with_ref_kl(loss, stats, mb, cfg)

# -----------------------------------------------------------------------------
# aer: a per-prompt entropy bonus steered toward a target


def aer(mb, cfg, state):
    """
    Strategy "aer", Adaptive Entropy Regularization, Zhang et al. (https://arxiv.org/abs/2510.10959). THE EXACT
    FORMULAS ARE NOT IN OUR SOURCES. The abstract names difficulty-aware per-sample coefficients, a target
    entropy anchored to the initial one, and a global coefficient keeping entropy near it. Our reading
    (research note 002-003, section B), every piece a knob, to check against the PDF:
      w_i = 1 if acc_i <= tau else 0      only prompts the policy mostly fails get the bonus
      H* = rho * H_0                       H_0 = batch entropy at the first step, kept in state
      after each step: alpha <- clip(alpha + lr * (H* - H), 0, alpha_max)      (dual ascent)
      loss = L_GRPO - alpha * agg_t (w_i * H_t)
    Knobs: aer_tau (0.4: the one sensitivity figure we have is "best around tau ~ 0.4", and which symbol
    is the accuracy threshold is unconfirmed), aer_rho (0.5), aer_coef_init (0.0), aer_lr (1e-2),
    aer_coef_max (0.05): the last four are our choices, not the paper's.
    Neutral: aer_coef_init = 0 and aer_lr = 0.
    Under torchrun acc_i is local and exact; H and H_0 are all-reduced: alpha is the same on every rank.
    Departures (besides all of it being a reconstruction): 1) hard 0/1 weights rather than a soft
    1 - acc; 2) the aggregation (cfg.loss_agg) counts every token in its denominator, weighted or not.
    """
    alpha = state.setdefault("coef", cfg.aer_coef_init)
    loss, stats = grpo_loss(mb, cfg)
    w = (mb["acc"] <= cfg.aer_tau).float()                                           # (B,) 1 = hard prompt
    entropy = masked_agg(w[:, None] * mb["entropy"], mb["mask"], cfg.loss_agg, mb["norm"])  # scalar, WITH grad
    loss = loss - alpha * entropy                      # minus: we want MORE entropy, and we minimize
    stats["entropy/aer_hard_frac"] = masked_mean(w[:, None].expand_as(mb["mask"]), mb["mask"]).item()
    return loss, stats


def aer_update(state, cfg, metrics):
    """AER's global coefficient, once per step: proportional step toward the target entropy."""
    h = metrics["policy/entropy"]
    h0 = state.setdefault("h0", h)                     # the anchor: the first step's entropy, for good
    target = cfg.aer_rho * h0
    alpha = state.get("coef", cfg.aer_coef_init) + cfg.aer_lr * (target - h)   # below target: more bonus
    state["coef"] = min(max(alpha, 0.0), cfg.aer_coef_max)
    return {"entropy/coef": state["coef"], "entropy/target": target}

# -----------------------------------------------------------------------------
# fec: per-token, per-step clip bounds


def fec_bounds(p, k, cfg, mode):
    """
    FEC's clip widths (eps_high, eps_low), each (B, T), at RL step k for the old-policy probability p
    (B, T) of each sampled token; mode is the OD state ("boost" or "suppress"). Written as in the blog:
      H(p) = (1 + b_u) / (1 - a_u p) - 1 = (b_u + a_u p) / (1 - a_u p)     upper, used when A > 0
      M(p) = 1 - (1 - b_l) / (1 + a_l p) = (b_l + a_l p) / (1 + a_l p)     lower, used when A < 0
    (the right-hand forms are the same algebra; they avoid a 1 - 1 cancellation, so the neutral setting
    gives exactly eps_std), both clamped to [fec_clip_min, fec_clip_max]. lambda goes 1 -> 0 over the
    first fec_phase_split * T steps and 0 -> -1 over the rest (the blog: lambda_k = 1 - 2k/T, split 0.5).
      static: (H, M)
      id:     (lam H + (1 - lam) eps_std, eps_std)   then  (eps_std, (1 + lam) M - lam eps_std)
      did:    (lam eps_std + (1 - lam) H, eps_std)   then  (H, (1 + lam) M - lam eps_std)
      od:     (H, eps_std) in "boost", (eps_std, M) in "suppress"
    """
    a_u, b_u, a_l, b_l = cfg.fec_upper_slope, cfg.fec_upper_intercept, cfg.fec_lower_slope, cfg.fec_lower_intercept
    upper = ((b_u + a_u * p) / (1 - a_u * p)).clamp(cfg.fec_clip_min, cfg.fec_clip_max)   # (B, T) H(p)
    lower = ((b_l + a_l * p) / (1 + a_l * p)).clamp(cfg.fec_clip_min, cfg.fec_clip_max)   # (B, T) M(p)
    std = torch.full_like(p, cfg.fec_eps_std)                                              # (B, T)
    split = cfg.fec_phase_split * cfg.num_steps        # the step where phase 1 ends
    first = k <= split
    lam = 1 - k / split if first else -(k - split) / (cfg.num_steps - split)
    if cfg.fec_schedule == "static":
        return upper, lower
    if cfg.fec_schedule == "id":
        return (lam * upper + (1 - lam) * std, std) if first else (std, (1 + lam) * lower - lam * std)
    if cfg.fec_schedule == "did":
        return (lam * std + (1 - lam) * upper, std) if first else (upper, (1 + lam) * lower - lam * std)
    return (upper, std) if mode == "boost" else (std, lower)                               # od


def fec(mb, cfg, state):
    """
    Strategy "fec", Flexible Entropy Control (Chen et al., https://arxiv.org/abs/2602.09782; formulas from the
    first author's blog, research note 001). Which tokens' gradients the clip keeps decides whether entropy
    rises or falls: low-probability A > 0 tokens (wide upper bound) raise it, low-probability A < 0 tokens
    (wide lower bound) lower it. FEC makes both widths fall with p and moves them over training (fec_bounds):
      obj = min(r A, clip(r, 1 - eps_low(p, k), 1 + eps_high(p, k)) A),  p = pi_old(token)
    Knobs: fec_schedule (id; static | id | did | od), fec_upper_slope (-0.25), fec_upper_intercept (0.5),
    fec_lower_slope (-0.13), fec_lower_intercept (0.3), fec_clip_min / max (0.05 / 0.6), fec_eps_std
    (0.2), fec_phase_split (0.5, the blog's best), and for od: fec_od_min_ratio (0.2), fec_od_h_init
    (0 = the first step's entropy), fec_od_init_mode (suppress). Constants from secondary sources (the
    IterSynth config, a skill file), not the paper's text.
    Neutral: slopes 0, both intercepts = fec_eps_std = cfg.clip_low = cfg.clip_high, schedule static.
    Departures: 1) bounds use the closed form in p = pi_old (no gradient through them), as the note
    recommends; 2) M(p) is inferred by symmetry (the blog gives no lower formula); 3) the clamp is
    IterSynth's; 4) OD's initial mode and H_init are not in the blog (our defaults: suppress, measured);
    5) beta_* and dual_clip combine with it when set.
    """
    mode = state.setdefault("od_mode", cfg.fec_od_init_mode)
    with torch.no_grad():
        p = torch.exp(mb["old_logp"])                                                # (B, T) pi_old, no grad
        eps_high, eps_low = fec_bounds(p, mb["step"], cfg, mode)                    # (B, T), (B, T)
    loss, stats = grpo_loss(mb, cfg, clip_low=eps_low, clip_high=eps_high)
    stats["entropy/fec_eps_high"] = masked_mean(eps_high, mb["mask"]).item()
    stats["entropy/fec_eps_low"] = masked_mean(eps_low, mb["mask"]).item()
    return loss, stats


def fec_update(state, cfg, metrics):
    """
    OD's hysteresis, once per step (other schedules keep no state). With H the step's entropy,
    H_min = fec_od_min_ratio * H_init and tau_high(k) = H_min + (H_init - H_min)(1 - k/T):
    H <= H_min -> "boost", H > tau_high(k) -> "suppress", in between keep the mode. k is the step
    whose rollouts gave H; the mode applies from the next step's loss. H is global (all-reduced), so
    every rank switches together.
    """
    if cfg.fec_schedule != "od":
        return None
    h, k = metrics["policy/entropy"], metrics["step"]
    h_init = state.setdefault("h_init", cfg.fec_od_h_init if cfg.fec_od_h_init > 0 else h)
    h_min = cfg.fec_od_min_ratio * h_init
    tau_high = h_min + (h_init - h_min) * (1 - k / cfg.num_steps)
    mode = state.setdefault("od_mode", cfg.fec_od_init_mode)
    state["od_mode"] = "boost" if h <= h_min else "suppress" if h > tau_high else mode
    return {"entropy/fec_od_boost": float(state["od_mode"] == "boost"), "entropy/fec_tau_high": tau_high}


# name -> (loss_fn, update_fn or None). The only dispatch point.
STRATEGIES = {
    "none": (grpo_only, None),
    "clip_higher": (clip_higher, None),
    "entropy_bonus": (entropy_bonus, None),
    "adaptive_entropy": (adaptive_entropy, adaptive_entropy_update),
    "clip_cov": (clip_cov, None),
    "kl_cov": (kl_cov, None),
    "aer": (aer, aer_update),
    "fec": (fec, fec_update),
}
