"""
The distributed path, on CPU: train.py under torchrun (2 ranks, gloo, FSDP2) against one process on the
same global batch, through a resume. Plus: the scale configs load.

Why 2 ranks must equal 1 process (up to float summation order): prompts are split across ranks but a
prompt's G samples stay on one rank and are drawn from a generator seeded by the prompt's place in the
global batch; the loss is divided by token counts all-reduced over ranks and FSDP2 SUMS the gradients;
the metrics are all-reduced. A bug in any of these (an averaged gradient, a per-rank normaliser, a
sample stream that depends on the rank) moves the weights by far more than the tolerance below.

Two launches each way, whose outputs every assertion shares (one 2-rank launch costs ~20 s of the suite):
2 steps of plain GRPO, saved, then a resume that switches to AER (resume_force) for 2 more, its bonus on from
the first step. So one pass covers the GRPO loss, an entropy bonus whose gradient runs through the hand-written
entropy backward, a controller whose state (its coefficient, the anchor H0) must be the same on every rank
(it reads the all-reduced entropy), and the sharded optimizer state saved by 2 ranks and loaded by 2 ranks
(a wrong shard would change the weights after the resume). Clip-Cov and KL-Cov take their statistic over
each rank's micro-batch, as the official code does, so they are not expected to equal one process.

The settings are small but not vacuous: a 2-layer tiny model with a 60-step warm start on one-digit
addition gets reward about 0.3, so both ranks see groups with non-zero advantages.
"""
import json
import os
import subprocess
import sys

import pytest
import torch
import torch.distributed

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SMALL = ["--tiny_layers=2", "--sft_steps=60", "--sft_lr=1e-2", "--sft_noise=0", "--arith_digits=1", "--num_train=60",
         "--eval_size=16", "--prompts_per_step=4", "--group_size=8", "--num_minibatches=2", "--max_new_tokens=12",
         "--eval_k=2", "--eval_every=0", "--aer_coef_init=0.05", "--aer_tau=1.0"]
COMPARED = ("rollout/reward", "rollout/len", "policy/entropy", "policy/surprisal", "opt/grad_norm", "opt/grad_norm_max",
            "policy/approx_kl", "policy/clip_frac_low", "policy/clip_frac_high", "eval/greedy_acc", "eval/mean@2",
            "eval/pass@2", "entropy/coef", "entropy/target", "entropy/aer_hard_frac")
needs_torchrun = pytest.mark.skipif(not (torch.distributed.is_available() and torch.distributed.is_gloo_available()),
                                    reason="torch.distributed with gloo (torchrun) is not available")


def train(out_dir, base_dir, *args, ranks=1):
    """Run train.py on the tiny config, in one process or under torchrun with `ranks` CPU processes."""
    launcher = [sys.executable] if ranks == 1 else \
        [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={ranks}"]
    p = subprocess.run([*launcher, "train.py", "--config", "configs/tiny.yaml", f"--out_dir={out_dir}",
                        f"--base_cache_dir={base_dir}", *SMALL, *args],
                       cwd=ROOT, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"}, timeout=300)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-5000:]
    return p


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """{1: (metrics, stdout of the resume), 2: ...} for one process and for 2 ranks, and the base's folder."""
    t = tmp_path_factory.mktemp("dist")
    out = {}
    for ranks in (1, 2):   # the 1-process run trains the warm-start base; the 2-rank runs load it
        train(t / f"r{ranks}", t / "base", "--num_steps=2", ranks=ranks)
        p = train(t / f"r{ranks}", t / "base", "--num_steps=4", "--entropy_strategy=aer", "--resume=true",
                  "--resume_force=true", ranks=ranks)
        out[ranks] = ([json.loads(l) for l in open(t / f"r{ranks}/metrics.jsonl")], p.stdout, t / f"r{ranks}")
    return out, next((t / "base").iterdir())


def weights(out_dir):
    from safetensors.torch import load_file
    return load_file(f"{out_dir}/ckpt/model.safetensors")


@needs_torchrun
def test_two_ranks_equal_one_process_through_a_resume(runs):
    (one, _, one_dir), (two, stdout, two_dir) = runs[0][1], runs[0][2]
    assert "world size 2" in stdout and stdout.count("done: 4 steps") == 1   # only rank 0 prints
    assert "resumed from" in stdout and "entropy_strategy 'none' -> 'aer'" in stdout
    assert [r["step"] for r in two] == [r["step"] for r in one] == [0, 1, 2, 3, 4]   # 4 steps, the final eval
    for a, b in zip(one, two):
        for k in COMPARED:
            assert (k in a) == (k in b), (a["step"], k)
            if k in a:
                assert b[k] == pytest.approx(a[k], rel=1e-4, abs=1e-6), (a["step"], k)
    assert max(r["rollout/reward"] for r in one[:-1]) > 0 and max(r["opt/grad_norm"] for r in one[:-1]) > 0
    # the bonus acted (hard prompts were in the batch) and the controller moved its coefficient
    assert max(r["entropy/aer_hard_frac"] for r in one[2:4]) > 0 and one[3]["entropy/coef"] != 0.05
    wa, wb = weights(one_dir), weights(two_dir)
    assert wa.keys() == wb.keys()
    for k in wa:
        assert torch.allclose(wa[k], wb[k], rtol=0, atol=1e-5), k
    # and the update was not vacuous: the weights moved by far more than the tolerance
    from transformers import AutoModelForCausalLM
    base = dict(AutoModelForCausalLM.from_pretrained(str(runs[1])).state_dict())
    assert max((wa[k] - base[k]).abs().max().item() for k in wa) > 1e-4
    # the sharded optimizer state: one file per rank, written by torch.distributed.checkpoint
    assert len([f for f in os.listdir(two_dir / "ckpt/optimizer") if f.endswith(".distcp")]) == 2


@pytest.mark.parametrize("name", ["qwen2.5-0.5b-gsm8k", "qwen2.5-1.5b-math"])
def test_scale_configs_load(name):
    """The GPU configs parse and validate (they cannot run here: no GPU, no downloads)."""
    from nanoentropy.config import load_config
    cfg = load_config(["--config", os.path.join(ROOT, "configs", f"{name}.yaml")])
    assert cfg.model_name_or_path.startswith("Qwen/") and cfg.grad_checkpointing and cfg.dtype == "bfloat16"
    for line in open(os.path.join(ROOT, "configs", f"{name}.yaml")):   # house style: every override says why
        assert not line.strip() or line.startswith("#") or "#" in line, line
