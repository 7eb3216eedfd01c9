"""
nanoentropy: the whole RL-with-verifiable-rewards loop, top to bottom, no Trainer class.

  CPU, tiny model, minutes:   python train.py --config configs/tiny.yaml      (plain python train.py: the same)
  one GPU, Qwen2.5-0.5B:      python train.py --config configs/qwen2.5-0.5b-gsm8k.yaml
  many GPUs (FSDP2):          torchrun --nproc_per_node=8 train.py --config configs/qwen2.5-1.5b-math.yaml
  any knob from the CLI:      python train.py --config configs/tiny.yaml --entropy_strategy=clip_cov --lr=5e-5

Per step: sample prompts -> roll out G completions each (our KV-cached sampler) -> reward with
verify.py -> group advantages -> num_epochs x num_minibatches optimizer steps over the same rollouts (so
the ratio leaves 1 and clipping matters), each accumulated over micro-batches -> log, eval, checkpoint.
Shapes: Bp = prompts on this rank, G = group_size, B = Bp * G sequences, T = completion length.
Tags: "ALGO" marks where new ideas belong, "PLUMBING" what you should rarely need to touch.
"""
import json
import math
import os
import random
import sys
import time
from contextlib import nullcontext

import torch
from tqdm import tqdm

from nanoentropy import dist
from nanoentropy.config import ConfigError, check_resume, load_config, to_yaml
from nanoentropy.data import DataError, get_problems
from nanoentropy.diagnostics import entropy_diagnostics
from nanoentropy.entropy import STRATEGIES
from nanoentropy.grpo import group_advantages
from nanoentropy.model import (compute_dtype, eos_ids, format_prompt, load_policy, policy_logp_entropy,
                               warm_start)
from nanoentropy.rollout import encode_prompts, generate
from verify import batch_reward

# -----------------------------------------------------------------------------
# PLUMBING: config, data, model path, resume. Bad settings stop here, before any work, with exit code 2.
try:
    cfg = load_config(sys.argv[1:])
    ddp, rank, local_rank, world_size, device = dist.compute_init(cfg)
    train_set, held_out, n_skipped = get_problems(cfg)
    ckpt_dir = os.path.join(cfg.out_dir, "ckpt")
    state = dist.finish_checkpoint(ckpt_dir) if cfg.resume else None   # finishes a save a kill interrupted
    changed = check_resume(cfg, state, world_size) if cfg.resume else ""
    torch.manual_seed(cfg.seed)
    model, tokenizer = load_policy(cfg, device)
except (ConfigError, DataError) as e:
    print(f"error: {e}", file=sys.stderr)
    sys.exit(2)
master = rank == 0
os.makedirs(cfg.out_dir, exist_ok=True)
dist.print0(to_yaml(cfg))
if master:
    with open(os.path.join(cfg.out_dir, "config.yaml"), "w") as f:
        f.write(to_yaml(cfg))
dist.print0(f"data: {len(train_set)} train / {len(held_out)} held-out, {n_skipped} rows skipped (no question/answer)")
dtype, dtype_reason = compute_dtype(cfg, device)
autocast = torch.autocast(device.type, dtype=dtype) if dtype != torch.float32 else nullcontext()
dist.print0(f"device {device}, world size {world_size}, compute dtype {dtype} ({dtype_reason})")

# -----------------------------------------------------------------------------
# PLUMBING: warm start, optional frozen reference (the model and tokenizer were loaded above)
if cfg.model_name_or_path == "tiny" and cfg.sft_steps > 0:
    # a random model never finds reward. Under torchrun rank 0 trains the base (or finds it cached) while the
    # others wait, then they load its cache: the very same weights everywhere (base_cache_dir: a shared disk)
    if master:
        model, _ = warm_start(model, tokenizer, train_set, cfg, device, master)
    dist.barrier()
    if not master:
        model, _ = warm_start(model, tokenizer, train_set, cfg, device, master)  # finds rank 0's cache
stop_ids = eos_ids(model, tokenizer)
ref_model = None
if cfg.kl_coef > 0:  # no reference model is loaded at all when the KL is off
    ref_model, _ = load_policy(cfg, device)
    ref_model.load_state_dict(model.state_dict())
    ref_model.requires_grad_(False).eval()
n_params = sum(p.numel() for p in model.parameters())
if ddp:
    model = dist.wrap_fsdp(model)  # FSDP2: every decoder layer, then the root (see dist.py)
dist.print0(f"model: {cfg.model_name_or_path}, {n_params / 1e6:.2f}M parameters, stop ids {stop_ids}")

# -----------------------------------------------------------------------------
# ALGO: optimizer, lr schedule, strategy
# fused: one kernel per step, not a loop of ops per tensor (on one CPU core: 0.45 vs 2.0 s at 134.5M parameters)
optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, betas=(cfg.adam_beta1, 0.999),
                              weight_decay=cfg.weight_decay, fused=True)
def lr_at(opt_step):  # linear warmup then constant, as most RLVR recipes
    return cfg.lr * min(1.0, (opt_step + 1) / max(1, cfg.warmup_steps))
strategy_loss, strategy_update = STRATEGIES[cfg.entropy_strategy]
strategy_state = {}  # owned by the strategy, saved in checkpoints

# -----------------------------------------------------------------------------
# PLUMBING: resume
start_step = 0
if state is not None:
    dist.load_checkpoint(ckpt_dir, model, optimizer)
    start_step, strategy_state = state["step"], state["strategy_state"]
    dist.print0(f"resumed from {ckpt_dir} at step {start_step}" + (f"; changed settings: {changed}" if changed else ""))
metrics_path, samples_path = os.path.join(cfg.out_dir, "metrics.jsonl"), os.path.join(cfg.out_dir, "samples.jsonl")
for path in (metrics_path, samples_path) if master else ():   # keep the logs consistent with the restart step
    old = [l for l in open(path)] if start_step and os.path.exists(path) else []
    with open(path, "w") as f:
        f.writelines(l for l in old if json.loads(l)["step"] < start_step or start_step >= cfg.num_steps)

# -----------------------------------------------------------------------------
# helpers used only here


def stream(*key):
    """A torch.Generator on device seeded by a tuple of ints: the same stream in every process for the
    same key (Python hashes ints deterministically; strings it salts per process, so keys are ints)."""
    return torch.Generator(device).manual_seed(hash(key) % 2**62)


def rollout(problems, group_size, temperature, gen):
    """Prompts -> G completions each. Returns the batch dict (rows prompt-major) and the texts.
    gen: a list of torch.Generators, one per prompt (see the loop and evaluate)."""
    prompts = [format_prompt(tokenizer, p["prompt"], cfg.system_prompt) for p in problems]
    p_ids, p_mask = encode_prompts(tokenizer, prompts, device)                            # (Bp, P)
    with autocast, dist.gathered_params(model):  # under FSDP: weights gathered once for the whole rollout
        c_ids, c_mask, sampler_logp = generate(model, p_ids, p_mask, group_size, cfg.max_new_tokens, stop_ids,
                                               tokenizer.pad_token_id, temperature, gen)
    texts = tokenizer.batch_decode(c_ids.masked_fill(c_mask == 0, tokenizer.pad_token_id), skip_special_tokens=True)
    batch = {"prompt_ids": p_ids.repeat_interleave(group_size, 0), "prompt_mask": p_mask.repeat_interleave(group_size, 0),
             "completion_ids": c_ids, "mask": c_mask, "sampler_logp": sampler_logp}            # (B, P), (B, T)
    return batch, texts


def rows(batch, idx):
    """Select rows idx of a batch and trim padding columns no row uses (less compute per micro-batch)."""
    T = max(int(batch["mask"][idx].sum(1).max()), 1)
    P = batch["prompt_mask"].shape[1] - int(batch["prompt_mask"][idx].argmax(1).min())  # left padding: first real col
    # prompt tensors (B, P) keep their last P columns, completion tensors (B, T) their first T, (B,) ones stay
    return {k: v[idx][:, -P:] if k.startswith("prompt") else v[idx][:, :T] if v.dim() == 2 else v[idx]
            for k, v in batch.items()}


def minibatch(m, n_rows):
    """Rows of mini-batch m of M = num_minibatches: samples m, m + M, m + 2M, ... of every prompt (rows are
    prompt-major and M divides G). Every optimizer step sees every prompt, and from the second step on the
    ratio of a prompt's tokens has moved with the updates on its other samples, so the clip acts on the
    very choices being trained. (With whole groups per mini-batch, a prompt's ratio would move only through
    what the updates on other prompts do to it, and the clip would barely act.)"""
    return torch.arange(m, n_rows, cfg.num_minibatches)


def forward(net, mb):
    """(logp, entropy), each (B, T) fp32, under net; each prompt runs once for its G / M samples (see minibatch)."""
    with autocast:
        return policy_logp_entropy(net, mb["prompt_ids"], mb["prompt_mask"], mb["completion_ids"], mb["mask"],
                                   cfg.temperature, cfg.logits_chunk, cfg.group_size // cfg.num_minibatches)


@torch.no_grad()
def score_batch(net, batch):
    """No-grad forward over the whole batch in micro-batches: (logp, entropy), each (B, T).
    The micro-batches are the update's own (each mini-batch split by micro_batch_size), so the first
    update sees identically padded inputs and its ratio is exactly 1, not 1 +- float noise (which
    would give KL-Cov's |log r| a random-sign gradient)."""
    net.eval()
    logps, ents = torch.zeros_like(batch["sampler_logp"]), torch.zeros_like(batch["sampler_logp"])   # (B, T)
    for m in range(cfg.num_minibatches):
        for idx in minibatch(m, len(batch["mask"])).split(cfg.micro_batch_size):
            logp, entropy = forward(net, rows(batch, idx))                          # (b, t): t <= T, trimmed
            logps[idx, :logp.shape[1]] = logp
            ents[idx, :entropy.shape[1]] = entropy
    net.train()
    return logps, ents


def evaluate(step):
    """Held-out accuracy: greedy (pass@1 at T=0) and mean@k / pass@k over eval_k samples at cfg.temperature.
    As in the training rollout, each problem's samples come from its own generator, seeded by (seed, step,
    its place in held_out), so the sampled metrics are the same draws on 1 GPU or 8 (tests/test_dist.py)."""
    shard = held_out[rank::world_size]                   # shard[j] is held_out[rank + j * world_size]
    sums = torch.zeros(3, dtype=torch.float64)          # greedy, mean@k and pass@k summed over the shard's problems
    for i in range(0, len(shard), 64):
        chunk = shard[i:i + 64]
        gens = [stream(cfg.seed, step, -1 - rank - j * world_size)   # negative: never a training prompt's
                for j in range(i, i + len(chunk))]
        _, texts = rollout(chunk, 1, 0.0, gens)          # greedy draws nothing
        sums[0] += sum(batch_reward(texts, [p["truth"] for p in chunk])[0])
        _, texts = rollout(chunk, cfg.eval_k, cfg.temperature, gens)
        r = torch.tensor(batch_reward(texts, [p["truth"] for p in chunk for _ in range(cfg.eval_k)])[0])
        r = r.view(len(chunk), cfg.eval_k)
        sums[1] += r.mean(1).sum().item()
        sums[2] += (r.max(1).values > 0).sum().item()
    n = dist.all_reduce_sum(float(len(shard)))
    greedy, mean_k, pass_k = (dist.all_reduce_sum(x.item()) / n for x in sums)
    return {"eval/greedy_acc": greedy, f"eval/mean@{cfg.eval_k}": mean_k, f"eval/pass@{cfg.eval_k}": pass_k}


def log(metrics):
    """One row of metrics.jsonl, and its main numbers on one line."""
    if master:
        with open(metrics_path, "a") as f:
            f.write(json.dumps(metrics) + "\n")
        tqdm.write(f"step {metrics['step']:4d} | " + " | ".join(f"{k.split('/')[-1]} {v:.4g}" for k, v in metrics.items()
                   if k in ("rollout/reward", "policy/entropy", "policy/clip_frac_low", "policy/clip_frac_high",
                            "policy/approx_kl", "opt/grad_norm", "rollout/len", "time/step_s") or k.startswith("eval/")))

# -----------------------------------------------------------------------------
# the loop
Bp = cfg.prompts_per_step // world_size                 # prompts on this rank; a prompt's G samples stay on one rank
B = Bp * cfg.group_size                                  # sequences on this rank per step
mini = B // cfg.num_minibatches                          # sequences per optimizer step on this rank
n_updates = cfg.num_epochs * cfg.num_minibatches         # optimizer steps per rollout batch
bar = tqdm(range(start_step, cfg.num_steps), desc="rl", unit="step", disable=not master, initial=start_step,
           total=cfg.num_steps)
for step in bar:
    metrics = {"step": step}
    # ---- eval (PLUMBING), not counted in time/step_s
    if step == 0 or (cfg.eval_every and step % cfg.eval_every == 0):
        metrics.update(evaluate(step))
    t0 = time.time()

    # ---- rollout: every rank draws the same global prompt list and takes its slice. A prompt's G samples come
    # from its own generator, seeded by its place in the GLOBAL list: the same completions on 1 GPU or 8
    rng = random.Random(cfg.seed * 1_000_003 + step)
    problems = rng.sample(train_set, cfg.prompts_per_step)[rank::world_size]
    gens = [stream(cfg.seed, step, i) for i in range(rank, cfg.prompts_per_step, world_size)]
    t_roll = time.time()
    batch, texts = rollout(problems, cfg.group_size, cfg.temperature, gens)
    t_roll = time.time() - t_roll

    # ---- ALGO: reward and advantages
    t_rew = time.time()
    truths = [p["truth"] for p in problems for _ in range(cfg.group_size)]
    rewards, n_timeouts = batch_reward(texts, truths)
    rewards = torch.tensor(rewards, dtype=torch.float32, device=device).view(Bp, cfg.group_size)  # (Bp, G)
    t_rew = time.time() - t_rew
    batch["adv"] = group_advantages(rewards, cfg.adv_std_norm)                                     # (B,)
    batch["acc"] = rewards.mean(1).repeat_interleave(cfg.group_size)                               # (B,) group accuracy

    # ---- old log-probs: recomputed by the training forward, not taken from the sampler, so that
    # the first update's ratio is exactly 1 (sampler and trainer kernels can differ, bf16 especially)
    t_upd = time.time()
    batch["old_logp"], batch["entropy_before"] = score_batch(model, batch)
    if ref_model is not None:
        batch["ref_logp"], _ = score_batch(ref_model, batch)

    # ---- ALGO: num_epochs passes over the same rollouts, each num_minibatches optimizer steps (see minibatch),
    # each step accumulated over micro-batches
    acc_stats, acc_w, loss_sum, grad_norms = {}, 0.0, 0.0, []
    clipped = torch.zeros_like(batch["mask"], dtype=torch.bool)      # (B, T) tokens the clip froze, for diagnostics
    for j in range(n_updates):
        opt_step = step * n_updates + j
        for group in optimizer.param_groups:
            group["lr"] = lr_at(opt_step)
        idx = minibatch(j % cfg.num_minibatches, B)                  # epoch j // M, mini-batch j % M
        # normalisers over the whole mini-batch on all ranks: micro-batching and sharding leave the gradient unchanged
        norm = {"n_tok": dist.all_reduce_sum(batch["mask"][idx].sum().float()).clamp(min=1),
                "n_seq": mini * world_size, "max_len": cfg.max_new_tokens}
        optimizer.zero_grad(set_to_none=True)
        for u, micro in enumerate(idx.split(cfg.micro_batch_size)):
            mb = rows(batch, micro)
            mb["logp"], mb["entropy"] = forward(model, mb)
            gen = stream(cfg.seed, opt_step, u, rank)     # a strategy's own randomness (Clip-Cov's draw)
            mb.update(norm=norm, step=step, gen=gen)
            loss, stats = strategy_loss(mb, cfg, strategy_state)   # ALGO: the one call into entropy.py
            mb_clipped = stats.pop("clipped")
            clipped[micro, :mb_clipped.shape[1]] |= mb_clipped
            loss.backward()  # each micro-batch loss is already divided by the mini-batch counts: grads just add up
            loss_sum += loss.item()
            w = mb["mask"].sum().item()
            for k, v in stats.items():
                acc_stats[k] = acc_stats.get(k, 0.0) + v * w
            acc_w += w
        grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip if cfg.grad_clip > 0 else float("inf"))
        grad_norms.append(float(grad_norm.full_tensor() if hasattr(grad_norm, "full_tensor") else grad_norm))
        if not math.isfinite(loss_sum + grad_norms[-1]):   # before the step: the weights and checkpoint stay good
            raise SystemExit(f"error: step {step}: loss {loss_sum}, gradient norm {grad_norms[-1]}: not finite; stopped "
                             f"before updating or saving anything (lr {cfg.lr} too high?)")
        optimizer.step()
    t_upd = time.time() - t_upd

    # ---- logging (the strategy's update_fn is the one call in the logging path)
    mask = batch["mask"]
    n_tok = dist.all_reduce_sum(mask.sum().float())
    gsum = lambda x: dist.all_reduce_sum((x * mask).sum().float()).item() / n_tok.item()  # global token-mean
    metrics.update({
        "rollout/reward": dist.all_reduce_sum(rewards.mean().item()) / world_size,
        "rollout/zero_std_frac": dist.all_reduce_sum((rewards.std(1) == 0).float().mean().item()) / world_size,
        "rollout/len": n_tok.item() / (B * world_size),
        "rollout/verify_timeouts": int(dist.all_reduce_sum(float(n_timeouts))),
        "policy/entropy": gsum(batch["entropy_before"]),           # full-vocabulary entropy, fp32, before the update
        "policy/surprisal": gsum(-batch["old_logp"]),              # mean -log p of the sampled tokens
        "policy/sampler_logp_gap": gsum((batch["sampler_logp"] - batch["old_logp"]).abs()),
        "opt/grad_norm": sum(grad_norms) / len(grad_norms), "opt/grad_norm_max": max(grad_norms),   # before clipping
        "opt/lr": lr_at(opt_step),
    })
    n_w = dist.all_reduce_sum(acc_w)       # token-weighted means over all ranks, as one process computes them
    metrics.update({k: dist.all_reduce_sum(v) / max(n_w, 1) for k, v in acc_stats.items()})
    metrics.update(entropy_diagnostics(batch["old_logp"], batch["entropy_before"], batch["adv"], mask, clipped,
                                       gather=dist.all_gather_cat))
    if cfg.entropy_change or step == cfg.num_steps - 1:   # the last step's is also the final eval's entropy
        _, batch["entropy_after"] = score_batch(model, batch)
        metrics["policy/entropy_after"] = gsum(batch["entropy_after"])
        metrics["policy/entropy_change"] = metrics["policy/entropy_after"] - metrics["policy/entropy"]
    if strategy_update is not None:
        metrics.update(strategy_update(strategy_state, cfg, metrics) or {})
    metrics.update({"perf/rollout_tok_per_s": n_tok.item() / max(t_roll, 1e-9), "perf/train_tok_per_s":
                    n_tok.item() * n_updates / max(t_upd, 1e-9), "time/rollout_s": t_roll,
                    "time/reward_s": t_rew, "time/update_s": t_upd, "time/step_s": time.time() - t0})
    log(metrics)
    bar.set_postfix(reward=f"{metrics['rollout/reward']:.3f}", H=f"{metrics['policy/entropy']:.3f}")
    if master and cfg.log_samples_every and step % cfg.log_samples_every == 0:   # printed, and kept for verify.py
        with open(samples_path, "a") as f:
            for i in range(0, min(len(texts), 3 * cfg.group_size), cfg.group_size):
                s = {"step": step, "completion": texts[i], "truth": truths[i], "reward": rewards.view(-1)[i].item()}
                tqdm.write(f"    {problems[i // cfg.group_size]['prompt'][-60:]!r} -> {texts[i][:80]!r} "
                           f"(truth {truths[i]}, reward {s['reward']:.0f})")
                f.write(json.dumps(s) + "\n")

    if step == cfg.num_steps - 1:   # the final eval, its own row: accuracy and entropy both after the last update
        log({"step": cfg.num_steps, **evaluate(cfg.num_steps), "policy/entropy": metrics["policy/entropy_after"]})

    # ---- checkpoint (PLUMBING): HF model + tokenizer + trainer state, temp name then rename
    if (cfg.save_every and (step + 1) % cfg.save_every == 0) or step == cfg.num_steps - 1:
        dist.save_checkpoint(ckpt_dir, model, tokenizer, optimizer, {
            "step": step + 1, "strategy_state": strategy_state, "world_size": world_size, "config": to_yaml(cfg)})

dist.print0(f"done: {cfg.num_steps} steps, metrics in {metrics_path}, checkpoint in {ckpt_dir}")
dist.cleanup()
