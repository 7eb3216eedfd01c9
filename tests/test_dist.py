"""
The distributed path, on CPU: train.py under torchrun (2 ranks, gloo, FSDP2) against one process on
the same global batch, and resume of a 2-rank run from its checkpoint. Plus: the scale configs load.

Why 2 ranks must equal 1 process (up to float summation order): prompts are split across ranks but a
prompt's G samples stay on one rank and are drawn from a generator seeded by the prompt's place in the
global batch; the loss is divided by token counts all-reduced over ranks and FSDP2 SUMS the gradients;
the metrics are all-reduced. A bug in any of these (an averaged gradient, a per-rank normaliser, a
sample stream that depends on the rank) moves the weights by far more than the tolerance below.

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
         "--eval_k=2", "--eval_every=0"]
COMPARED = ("rollout/reward", "rollout/len", "policy/entropy", "policy/surprisal", "opt/grad_norm",
            "policy/approx_kl", "policy/clip_frac_low", "policy/clip_frac_high", "eval/greedy_acc", "eval/mean@2",
            "eval/pass@2")
needs_torchrun = pytest.mark.skipif(not (torch.distributed.is_available() and torch.distributed.is_gloo_available()),
                                    reason="torch.distributed with gloo (torchrun) is not available")


@pytest.fixture(scope="module")
def base_dir(tmp_path_factory):
    """One warm-start cache for the module: the first run trains the base, the others load it."""
    return tmp_path_factory.mktemp("base")


def train(out_dir, base_dir, *args, ranks=1):
    """Run train.py on the tiny config, in one process or under torchrun with `ranks` CPU processes."""
    launcher = [sys.executable] if ranks == 1 else \
        [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={ranks}"]
    p = subprocess.run([*launcher, "train.py", "--config", "configs/tiny.yaml", f"--out_dir={out_dir}",
                        f"--base_cache_dir={base_dir}", *SMALL, *args],
                       cwd=ROOT, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"}, timeout=300)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-5000:]
    return [json.loads(l) for l in open(f"{out_dir}/metrics.jsonl")], p


def weights(out_dir):
    from safetensors.torch import load_file
    return load_file(f"{out_dir}/ckpt/model.safetensors")


@needs_torchrun
@pytest.mark.parametrize("strategy", [
    [],
    ["--entropy_strategy=clip_cov", "--cov_scope=global", "--clip_cov_ratio=0.2"],
    ["--entropy_strategy=kl_cov", "--cov_scope=global", "--kl_cov_ratio=0.2"],
], ids=["grpo", "clip_cov_global", "kl_cov_global"])
def test_two_ranks_equal_one_process(tmp_path, base_dir, strategy):
    one, _ = train(tmp_path / "one", base_dir, "--num_steps=2", *strategy)
    two, p = train(tmp_path / "two", base_dir, "--num_steps=2", *strategy, ranks=2)
    assert "world size 2" in p.stdout and p.stdout.count("done: 2 steps") == 1   # only rank 0 prints
    assert [r["step"] for r in two] == [0, 1]
    for a, b in zip(one, two):
        for k in COMPARED + tuple(k for k in a if k.startswith("entropy/")):
            assert b[k] == pytest.approx(a[k], rel=1e-4, abs=1e-6), (a["step"], k)
    assert max(r["rollout/reward"] for r in one) > 0 and max(r["opt/grad_norm"] for r in one) > 0
    if strategy:   # the strategy really picked tokens, so the global statistic was exercised
        assert max(r[k] for r in one for k in r if k.endswith("cov_frac")) > 0
    wa, wb = weights(tmp_path / "one"), weights(tmp_path / "two")
    assert wa.keys() == wb.keys()
    for k in wa:
        assert torch.allclose(wa[k], wb[k], rtol=0, atol=1e-5), k
    # and the update was not vacuous: the weights moved by far more than the tolerance
    from transformers import AutoModelForCausalLM
    base = dict(AutoModelForCausalLM.from_pretrained(str(next(base_dir.iterdir()))).state_dict())
    assert max((wa[k] - base[k]).abs().max().item() for k in wa) > 1e-4


@needs_torchrun
def test_two_rank_resume_equals_uninterrupted(tmp_path, base_dir):
    full, _ = train(tmp_path / "full", base_dir, "--num_steps=4", ranks=2)
    train(tmp_path / "part", base_dir, "--num_steps=2", ranks=2)
    part, p = train(tmp_path / "part", base_dir, "--num_steps=4", "--resume=true", ranks=2)
    assert "resumed from" in p.stdout
    assert [r["step"] for r in part] == [0, 1, 2, 3]
    for a, b in zip(full, part):
        for k in COMPARED:
            if k in a:
                assert a[k] == b[k], (a["step"], k)
    wa, wb = weights(tmp_path / "full"), weights(tmp_path / "part")
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    # the sharded optimizer state: one file per rank, written by torch.distributed.checkpoint
    assert len([f for f in os.listdir(tmp_path / "full/ckpt/optimizer") if f.endswith(".distcp")]) == 2


@pytest.mark.parametrize("name", ["qwen2.5-0.5b-gsm8k", "qwen2.5-1.5b-math"])
def test_scale_configs_load(name):
    """The GPU configs parse and validate (they cannot run here: no GPU, no downloads)."""
    from nanoentropy.config import load_config
    cfg = load_config(["--config", os.path.join(ROOT, "configs", f"{name}.yaml")])
    assert cfg.model_name_or_path.startswith("Qwen/") and cfg.grad_checkpointing and cfg.dtype == "bfloat16"
    for line in open(os.path.join(ROOT, "configs", f"{name}.yaml")):   # house style: every override says why
        assert not line.strip() or line.startswith("#") or "#" in line, line
