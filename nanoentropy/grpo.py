"""
GRPO: group-relative advantages and the clipped policy-gradient objective, with clip-higher,
dual-clip, gradient-preserving clipping, three loss aggregations and an optional k3 KL.

Shapes: Bp = prompts, G = samples per prompt, B = sequences in a micro-batch, T = completion length.

How we depart from GRPO as written (https://arxiv.org/abs/2402.03300):
1) no KL-to-reference by default (kl_coef = 0: no reference model is even loaded), as DAPO and most since;
2) token-mean aggregation by default: every completion token of the update batch weighs the same (DAPO,
   https://arxiv.org/abs/2503.14476); the paper's per-sequence mean and Dr. GRPO's constant are options;
3) separate clip_low / clip_high (DAPO's clip-higher), an optional dual-clip constant for negative
   advantages (https://arxiv.org/abs/1912.09729), and gradient-preserving clipping (GPPO,
   https://arxiv.org/abs/2508.07629; CE-GPPO's beta form, https://arxiv.org/abs/2509.20712): a token
   outside the clip range keeps beta * (1 +/- eps) * A * grad log pi instead of no gradient at all;
4) the group std uses torch.std (unbiased, n-1), as in the Clip-Cov/KL-Cov reference code.
The loss is normalised by counts over the whole update (mini-)batch on every rank (the `norm`
argument), so splitting a batch into micro-batches or across GPUs never changes the gradient.
"""
import torch


def group_advantages(rewards, std_norm=True, eps=1e-6):
    """
    rewards: (Bp, G) scalar reward of each completion, grouped by prompt.
    Returns (Bp * G,) advantages A = (r - mean_group) / (std_group + eps), or r - mean_group when
    std_norm is False (Dr. GRPO, https://arxiv.org/abs/2503.20783: the std division up-weights
    prompts that are almost always right or almost always wrong).
    A group whose rewards are all equal gets A = 0 for every member: it carries no signal.
    """
    adv = rewards - rewards.mean(dim=1, keepdim=True)                  # (Bp, G)
    if std_norm:
        adv = adv / (rewards.std(dim=1, keepdim=True) + eps)          # (Bp, G)
    return adv.reshape(-1)                                             # (Bp * G,)


def masked_agg(x, mask, mode, norm):
    """
    Reduce a per-token quantity x (B, T) to a scalar, counting only mask (B, T) tokens.
    norm: dict of counts over the whole update batch (all micro-batches, all ranks):
      n_tok (completion tokens), n_seq (sequences), max_len (max_new_tokens).
    Summing the results of all micro-batches gives the batch value: nothing else divides later.
      token-mean:              sum_tokens x / n_tok
      seq-mean-token-mean:     sum_seqs (mean_tokens_of_seq x) / n_seq
      seq-mean-token-sum-norm: sum_tokens x / (n_seq * max_len)        (Dr. GRPO's constant)
    """
    mask = mask.to(x.dtype)
    if mode == "token-mean":
        return (x * mask).sum() / norm["n_tok"]
    if mode == "seq-mean-token-mean":
        return ((x * mask).sum(1) / mask.sum(1).clamp(min=1)).sum() / norm["n_seq"]
    if mode == "seq-mean-token-sum-norm":
        return (x * mask).sum() / (norm["n_seq"] * norm["max_len"])
    raise ValueError(f"unknown loss_agg {mode!r}")


def masked_mean(x, mask):
    """Plain token-mean over one tensor, for logging. Returns a 0-dim tensor (0 if mask is empty)."""
    mask = mask.to(x.dtype)
    return (x * mask).sum() / mask.sum().clamp(min=1)


def token_objective(logp, old_logp, adv, clip_low, clip_high, beta_low=0.0, beta_high=0.0, dual_clip=0.0):
    """
    Per-token PPO/GRPO surrogate to MAXIMIZE, with gradient-preserving clipping.
    logp:      (B, T) log pi_theta of the sampled tokens, carries grad
    old_logp:  (B, T) log pi_old (the policy that sampled), no grad
    adv:       (B,)   advantage of each sequence
    clip_low, clip_high: floats, or (B, T) tensors of per-token bounds (flexible entropy control)
    Returns obj (B, T) and a dict of (B, T) bool masks: clip_low, clip_high, dual (which tokens the
    clip acted on) and the ratio (B, T), detached.

    Hard PPO clipping is min(r A, clip(r, 1-eps_low, 1+eps_high) A). It only ever acts in two cases:
      A > 0 and r > 1 + eps_high: objective frozen at (1 + eps_high) A, no gradient;
      A < 0 and r < 1 - eps_low:  objective frozen at (1 - eps_low) A, no gradient.
    Gradient-preserving clipping keeps the frozen VALUE (so logged losses compare across betas) but
    lets a scaled gradient through, using logp - sg(logp), whose value is 0 and gradient is grad log pi:
      obj = sg((1 + eps) A) + beta * (1 + eps) * A * (logp - sg(logp))
      d obj = beta * (1 + eps) * A * grad log pi
    (CE-GPPO writes r / sg(r) - 1, the same value and gradient, but 0 / 0 = nan where r underflows to 0,
    a log ratio below about -103 in fp32, and nan * beta = nan even at beta = 0.)
    With beta = 0 this is exactly hard clipping (same value, same zero gradient; tested). beta_high > 0 keeps
    unlikely positive tokens growing (entropy up), beta_low > 0 unlikely negative ones falling (entropy down).
    Dual-clip (c > 1): for A < 0 the objective is also floored at c * A, so one very off-policy token
    (r > c) cannot dominate the batch; that floor stays a hard clip.
    """
    ratio = torch.exp(logp - old_logp)                  # (B, T) r = pi_theta / pi_old, in log space so tiny p's don't underflow
    adv = adv[:, None]                                  # (B, 1) one advantage per completion, broadcast over T
    lo, hi = 1.0 - clip_low, 1.0 + clip_high            # floats or (B, T)
    grad_only = logp - logp.detach()                    # (B, T) value 0, gradient grad log pi
    clipped_high = (adv > 0) & (ratio > hi)             # (B, T)
    clipped_low = (adv < 0) & (ratio < lo)              # (B, T)
    obj = ratio * adv                                   # (B, T) the plain importance-weighted objective
    obj = torch.where(clipped_high, (hi * adv).detach() + beta_high * hi * adv * grad_only, obj)
    obj = torch.where(clipped_low, (lo * adv).detach() + beta_low * lo * adv * grad_only, obj)
    dual = torch.zeros_like(clipped_low)
    if dual_clip > 0:
        dual = (adv < 0) & (ratio > dual_clip)          # (B, T) the floor c * A binds
        obj = torch.where(dual, dual_clip * adv.expand_as(obj), obj)
    return obj, {"clip_low": clipped_low, "clip_high": clipped_high, "dual": dual, "ratio": ratio.detach()}


def kl_k3(logp, ref_logp):
    """k3 estimator of KL(pi_theta || pi_ref) per token, (B, T): e^(ref - logp) - (ref - logp) - 1 >= 0.
    Unbiased with low variance on tokens sampled from pi_theta, http://joschu.net/blog/kl-approx.html
    The log difference d is clamped to [-20, 20], as verl does: e^d overflows fp32 past d = 88 (no gradient
    beyond the clamp). verl also caps the k3 value at 10 (so no gradient past d = 2.5); we don't."""
    d = (ref_logp - logp).clamp(-20.0, 20.0)
    return torch.exp(d) - d - 1.0


def clip_stats(info, mask):
    """Floats for logging: fraction of completion tokens each clip acted on, and the k3 KL(old||new)."""
    ratio = info["ratio"]
    return {
        "policy/clip_frac_low": masked_mean(info["clip_low"].float(), mask).item(),
        "policy/clip_frac_high": masked_mean(info["clip_high"].float(), mask).item(),
        "policy/dual_clip_frac": masked_mean(info["dual"].float(), mask).item(),
        "policy/approx_kl": masked_mean((ratio - 1) - torch.log(ratio), mask).item(),
    }


def grpo_loss(mb, cfg, clip_low=None, clip_high=None):
    """
    The baseline loss of one micro-batch: minus the aggregated clipped objective, plus the optional
    k3 KL penalty. mb is the micro-batch dict built in train.py:
      logp, old_logp, mask, entropy: (B, T); adv: (B,); ref_logp: (B, T) or None; norm: counts.
    clip_low / clip_high override cfg's (floats or (B, T) tensors). Returns (loss, stats): floats for
    logging, plus stats["clipped"], a (B, T) bool tensor of the tokens the clip froze.
    """
    clip_low = cfg.clip_low if clip_low is None else clip_low
    clip_high = cfg.clip_high if clip_high is None else clip_high
    obj, info = token_objective(mb["logp"], mb["old_logp"], mb["adv"], clip_low, clip_high,
                                cfg.beta_low, cfg.beta_high, cfg.dual_clip)
    loss = -masked_agg(obj, mb["mask"], cfg.loss_agg, mb["norm"])     # minus: optimizers minimize
    stats = clip_stats(info, mb["mask"])
    # (B, T) the tokens whose gradient the clip froze; train.py pops it for the region diagnostics
    stats["clipped"] = (info["clip_low"] | info["clip_high"] | info["dual"]) & mb["mask"].bool()
    return with_ref_kl(loss, stats, mb, cfg)


def with_ref_kl(loss, stats, mb, cfg):
    """loss + kl_coef * the aggregated k3 KL to the frozen reference (a penalty: plus), logged as policy/ref_kl.
    The one place every loss adds it; kl_coef = 0 (the default) adds nothing and needs no reference."""
    if cfg.kl_coef > 0:
        kl = kl_k3(mb["logp"], mb["ref_logp"])                         # (B, T)
        loss = loss + cfg.kl_coef * masked_agg(kl, mb["mask"], cfg.loss_agg, mb["norm"])
        stats["policy/ref_kl"] = masked_mean(kl.detach(), mb["mask"]).item()
    return loss, stats
