"""
Memory you can predict: one full RL step of a random-weight model with the real Qwen2.5-0.5B shapes on
CPU (no download: the model is built from its config), its peak resident memory and times, next to the
formula-based table of what a step holds for 0.5B and 1.5B. Not a test (pytest does not collect it):

    OMP_NUM_THREADS=2 python tests/mem_step.py                        # ~10 GB, a few minutes on 2 cores
    OMP_NUM_THREADS=2 python tests/mem_step.py --grad_checkpointing   # the same step with checkpointing

The step: rollout.generate of 16 random 32-token prompts x 2 samples x 64 new tokens (an EOS id outside
the vocabulary, so every row runs to 64), a no-grad scoring pass for the old log-probs, then one update
(policy_logp_entropy + grpo_loss + backward, in micro-batches, and one AdamW step) over the 32 sequences.
On CPU everything is fp32 (compute too), so the measured row uses 4-byte activations.
"""
import argparse
import os
import resource
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from nanoentropy.config import Config, load_config  # noqa: E402
from nanoentropy.grpo import group_advantages, grpo_loss  # noqa: E402
from nanoentropy.model import enable_checkpointing, policy_logp_entropy  # noqa: E402
from nanoentropy.rollout import generate  # noqa: E402

GiB = 1024 ** 3
# the real shapes (Qwen2.5-0.5B and Qwen2.5-1.5B config.json); both tie lm_head to the embedding
QWEN = {
    "0.5B": dict(vocab=151936, hidden=896, inter=4864, layers=24, heads=14, kv_heads=2),
    "1.5B": dict(vocab=151936, hidden=1536, inter=8960, layers=28, heads=12, kv_heads=2),
}


def n_params(d):
    """Exact parameter count of a tied Qwen2: q/k/v have biases, o and the MLP do not."""
    D, I, hd, kv = d["hidden"], d["inter"], d["hidden"] // d["heads"], d["kv_heads"]
    attn = 2 * D * D + D + 2 * (D * kv * hd + kv * hd)     # q (+bias), o, k and v (+bias)
    layer = attn + 3 * D * I + 2 * D                       # + gate/up/down + two RMSNorm weights
    return d["vocab"] * D + d["layers"] * layer + D        # + embedding (tied head) + final norm


def act_elems(d):
    """Elements autograd keeps per token per decoder layer, with SDPA/flash attention (no T x T scores):
    attention: norm input, norm output, q, k, v, attention output = 4D + 2 kv_heads head_dim;
    SwiGLU MLP: norm input, norm output, gate, silu(gate), up, their product = 2D + 4I."""
    D, I, hd = d["hidden"], d["inter"], d["hidden"] // d["heads"]
    return 6 * D + 2 * d["kv_heads"] * hd + 4 * I


ROWS = {  # key -> row title of the table
    "weights": "weights fp32 (sharded over GPUs)",
    "grads": "grads fp32 (sharded)",
    "adam": "AdamW exp_avg + exp_avg_sq fp32 (sharded)",
    "gathered": "full weights gathered for the rollout (FSDP only)",
    "root": "root (embedding) gathered from forward to backward (FSDP only)",
    "act": "activations, no checkpointing (one micro-batch)",
    "act_ckpt": "activations, checkpointing (one micro-batch)",
    "kv": "KV cache of the rollout",
    "sample_logits": "sampling logits (rows x V x 4 B x 3)",
    "chunk": "logits chunk (chunk x V x 4 B x 3)",
    "emb_grad": "input-embedding gradient, dense, before it joins .grad (V x D x 4 B)",
}


def step_memory(d, world, rows_rollout, seq_rollout, micro_tokens, chunk, act_bytes=2, kv_bytes=2):
    """Bytes of each part of one RL step on one GPU (FSDP over `world` GPUs shards the fp32 states).
    Checkpointing keeps each layer's fp32 input (the residual stream stays fp32 under autocast with fp32
    weights) and recomputes one layer at a time in backward, so it holds one layer's activations on top."""
    N, L, D, V = n_params(d), d["layers"], d["hidden"], d["vocab"]
    hd, fsdp = D // d["heads"], world > 1
    return {
        "weights": 4 * N / world, "grads": 4 * N / world, "adam": 8 * N / world,
        "gathered": 4 * N if fsdp else 0, "root": 4 * V * D if fsdp else 0,
        "act": act_elems(d) * act_bytes * L * micro_tokens,
        "act_ckpt": (4 * D * L + act_elems(d) * act_bytes) * micro_tokens,
        "kv": 2 * L * d["kv_heads"] * hd * kv_bytes * rows_rollout * seq_rollout,
        "sample_logits": rows_rollout * V * 4 * 3,
        "chunk": chunk * V * 4 * 3,       # at the start of backward (model.py's hand-written backward) ...
        "emb_grad": V * D * 4,            # ... and this at its very end: the two never coexist
    }


def table():
    """The README table: both GPU configs, read from their YAML files so the numbers follow the configs."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    cols, notes, prompt_len = [], [], 200
    for name, dims, world in (("qwen2.5-0.5b-gsm8k", "0.5B", 1), ("qwen2.5-1.5b-math", "1.5B", 8)):
        c = load_config(["--config", os.path.join(root, "configs", name + ".yaml")])
        rows, seq = c.prompts_per_step // world * c.group_size, prompt_len + c.max_new_tokens
        cols.append(step_memory(QWEN[dims], world, rows, seq, c.micro_batch_size * seq, c.logits_chunk))
        notes.append(f"{dims}: configs/{name}.yaml, {world} GPU{'s' if world > 1 else ''}, rollout {rows} rows x "
                     f"{seq} tokens per GPU (prompt ~{prompt_len} + {c.max_new_tokens} new), micro-batch "
                     f"{c.micro_batch_size} x {seq} tokens, logits chunk {c.logits_chunk} tokens")
    print("| per GPU | Qwen2.5-0.5B, 1 GPU | Qwen2.5-1.5B, 1 of 8 GPUs |\n|---|---:|---:|")
    print(f"| parameters | {n_params(QWEN['0.5B']) / 1e6:.0f}M | {n_params(QWEN['1.5B']) / 1e6:.0f}M |")
    for k, title in ROWS.items():
        print(f"| {title} | {cols[0][k] / GiB:.2f} GiB | {cols[1][k] / GiB:.2f} GiB |")
    peaks = []
    for c in cols:   # states + the larger of the two phases: rollout, or update (with checkpointing)
        states = c["weights"] + c["grads"] + c["adam"]
        update = c["root"] + c["act_ckpt"] + max(c["chunk"], c["emb_grad"])
        peaks.append(states + max(c["gathered"] + c["kv"] + c["sample_logits"], update))
    print(f"| **estimated peak, checkpointing on** | **{peaks[0] / GiB:.1f} GiB** | **{peaks[1] / GiB:.1f} GiB** |")
    for n in notes:
        print(f"- {n}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--grad_checkpointing", action="store_true")
    ap.add_argument("--micro_batch_size", type=int, default=8)
    args = ap.parse_args()
    table()

    from transformers import Qwen2Config, Qwen2ForCausalLM
    d = QWEN["0.5B"]
    mcfg = Qwen2Config(vocab_size=d["vocab"], hidden_size=d["hidden"], intermediate_size=d["inter"],
                       num_hidden_layers=d["layers"], num_attention_heads=d["heads"], num_key_value_heads=d["kv_heads"],
                       tie_word_embeddings=True, rope_theta=1e6, max_position_embeddings=32768, rms_norm_eps=1e-6,
                       attn_implementation="sdpa")
    rss = lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / GiB   # Linux reports KiB
    base_rss = rss() * GiB                  # the Python + torch + transformers runtime, before any weight
    torch.manual_seed(0)
    model = Qwen2ForCausalLM(mcfg)          # random weights, fp32, the real 0.5B shapes
    assert sum(p.numel() for p in model.parameters()) == n_params(d)
    if args.grad_checkpointing:
        enable_checkpointing(model)
    cfg = Config()                          # the loss knobs (clip 0.2 / 0.2, token-mean) and logits_chunk 256
    opt = torch.optim.AdamW(model.parameters(), lr=1e-6)
    print(f"\nmeasured: random Qwen2.5-0.5B shapes, {n_params(d) / 1e6:.0f}M params, fp32 on CPU, "
          f"{torch.get_num_threads()} threads, grad_checkpointing={args.grad_checkpointing}")
    print(f"  model built:   peak RSS {rss():.2f} GiB")

    g = torch.Generator().manual_seed(0)
    Bp, G, P, T = 16, 2, 32, 64
    p_ids = torch.randint(0, d["vocab"], (Bp, P), generator=g)                  # (Bp, P)
    p_mask = torch.ones_like(p_ids)                                             # (Bp, P)
    t = time.time()
    c_ids, c_mask, _ = generate(model, p_ids, p_mask, G, T, [d["vocab"]], 0, 1.0, g)   # (B, T) x 3
    t_roll = time.time() - t
    assert c_mask.shape == (Bp * G, T) and bool(c_mask.all())
    print(f"  rollout:       {t_roll:.1f} s ({Bp * G * T / t_roll:.1f} new tokens/s), peak RSS {rss():.2f} GiB")

    B = Bp * G
    batch = {"prompt_ids": p_ids.repeat_interleave(G, 0), "prompt_mask": p_mask.repeat_interleave(G, 0),
             "completion_ids": c_ids, "mask": c_mask}
    micro = torch.arange(B).split(args.micro_batch_size)
    t = time.time()
    with torch.no_grad():   # the old log-probs, as train.py's score_batch
        model.eval()
        old = torch.cat([policy_logp_entropy(model, batch["prompt_ids"][i], batch["prompt_mask"][i], c_ids[i],
                                             c_mask[i], 1.0, cfg.logits_chunk)[0] for i in micro])   # (B, T)
        model.train()
    adv = group_advantages(torch.randint(0, 2, (Bp, G), generator=g).float())  # (B,) random rewards
    norm = {"n_tok": c_mask.sum().float(), "n_seq": B, "max_len": T}
    opt.zero_grad(set_to_none=True)
    for i in micro:
        logp, entropy = policy_logp_entropy(model, batch["prompt_ids"][i], batch["prompt_mask"][i], c_ids[i],
                                            c_mask[i], 1.0, cfg.logits_chunk)    # (b, T) x 2
        mb = {"logp": logp, "old_logp": old[i], "adv": adv[i], "mask": c_mask[i], "entropy": entropy, "norm": norm}
        loss, _ = grpo_loss(mb, cfg)
        loss.backward()
    opt.step()
    t_upd = time.time() - t
    print(f"  update:        {t_upd:.1f} s (score + {len(micro)} micro-batches of {args.micro_batch_size} x "
          f"{P + T} tokens + AdamW), peak RSS {rss():.2f} GiB")
    chunk = min(cfg.logits_chunk, args.micro_batch_size * T)      # tokens in the largest logits chunk
    pred = step_memory(d, 1, B, P + T, args.micro_batch_size * (P + T), chunk, 4, 4)   # fp32 on CPU
    parts = {"states": pred["weights"] + pred["grads"] + pred["adam"],
             "activations": pred["act_ckpt" if args.grad_checkpointing else "act"],
             "logits chunk or embedding grad": max(pred["chunk"], pred["emb_grad"]),
             "runtime (RSS before the weights)": base_rss}
    print("  predicted:     " + " + ".join(f"{k} {v / GiB:.2f}" for k, v in parts.items())
          + f" = {sum(parts.values()) / GiB:.2f} GiB")
    print(f"| measured: random 0.5B, CPU fp32, 16 prompts x 2 x 64 new tokens + 1 update, micro-batch "
          f"{args.micro_batch_size}, checkpointing {'on' if args.grad_checkpointing else 'off'} | "
          f"peak RSS **{rss():.1f} GiB** (predicted {sum(parts.values()) / GiB:.1f}) | "
          f"rollout {t_roll:.0f} s, update {t_upd:.0f} s |")

if __name__ == "__main__":
    main()
