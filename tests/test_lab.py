"""The entropy lab: its task (generation, teacher, a held-out split disjoint from training) and the claim
criteria, each on synthetic metric series: a series with the claimed shape passes, one without fails."""
import itertools
import json
import math
import random
import re

import pytest

from nanoentropy import lab
from nanoentropy.config import Config
from nanoentropy.data import make_task, teacher
from verify import reward


def test_sum_task_is_deterministic_and_held_out_is_disjoint():
    cfg = Config(task="sum", sum_operands=3, arith_digits=2, num_train=2000, eval_size=300)
    train, held = make_task(cfg)
    assert (len(train), len(held)) == (2000, 300)
    assert make_task(cfg) == (train, held)                               # the base seed fixes the problems
    assert make_task(Config(task="sum", base_seed=1, num_train=2000, eval_size=300))[0] != train
    multiset = lambda p: tuple(sorted(p["operands"]))
    assert not {multiset(p) for p in train} & {multiset(p) for p in held}  # not even a reordering leaks
    for p in train[:50]:
        assert p["prompt"] == "+".join(map(str, p["operands"])) + "=" and int(p["truth"]) == sum(p["operands"])
        assert len(p["operands"]) == 3 and all(0 <= x < 100 for x in p["operands"])


def test_teacher_writes_every_order_each_right_and_slips_at_its_rate():
    p = {"question": "12+7+30", "prompt": "12+7+30=", "truth": "49", "operands": [12, 7, 30]}
    rng = random.Random(0)
    seen = {}
    for _ in range(3000):
        text = teacher(p, rng, 0.0)
        m = re.fullmatch(r"(\d+)\+(\d+)=(\d+),(\d+)\+(\d+)=\\boxed\{(\d+)\}", text)
        a, b, s, s2, c, t = map(int, m.groups())
        assert s == a + b and s2 == s and t == s + c == 49                  # every step is right
        assert sorted([a, b, c]) == [7, 12, 30]                             # each operand once
        assert reward(p["prompt"] + text, "49") == 1.0
        seen[(a, b, c)] = seen.get((a, b, c), 0) + 1
    assert set(seen) == set(itertools.permutations([12, 7, 30]))          # all 6 orders ...
    assert 1600 < seen[(12, 7, 30)] < 1900                                  # left to right 1/2 + 1/12 = 58%
    assert all(180 < n < 320 for order, n in seen.items() if order != (12, 7, 30))   # the others 1/12 each
    texts = [teacher(p, rng, 0.3) for _ in range(4000)]
    fav = [t for t in texts if t.startswith("12+7=")]
    slips = lambda ts: sum(reward(t, "49") == 0.0 for t in ts) / len(ts)
    assert 0.27 < slips(fav) < 0.33                                          # 30% in the favourite order
    assert 0.47 < slips([t for t in texts if not t.startswith("12+7=")]) < 0.55   # 1 - 0.7^2 = 51% elsewhere
    arith = {"question": "12+34", "prompt": "12+34=", "truth": "46"}
    assert teacher(arith, rng, 0.0) == "\\boxed{46}"


def test_legs_reads_the_shape_of_a_curve_and_ignores_wiggles():
    assert [d for d, _ in lab.legs([1, 1.2, 1.5, 1.4, 1.0, 0.8], 0.2)] == ["up", "down"]
    assert [d for d, _ in lab.legs([1, 0.8, 0.6, 0.9, 1.1, 0.7, 0.5], 0.2)] == ["down", "up", "down"]
    assert lab.legs([1, 0.95, 1.05, 0.97, 1.02], 0.2) == []                  # all wiggles below the move
    sizes = [round(s, 6) for _, s in lab.legs([1.0, 0.4, 0.9, 0.5, 0.8, 0.6], 0.15)]
    assert sizes == [0.6, 0.5, 0.4, 0.3, 0.2]


def fake_run(H, acc=(0.3, 0.8), pass_k=(0.95, 0.95), target=None, pred_noise=0.0, seed=0):
    """metrics.jsonl rows of a synthetic run: entropy series H, evals at the start and the end (the final
    record at step len(H)), and a covariance prediction equal to the entropy change plus noise."""
    rng = random.Random(seed)
    rows = []
    for i, h in enumerate(H):
        change = (H[i + 1] if i + 1 < len(H) else h) - h
        rows.append({"step": i, "rollout/reward": 0.5, "policy/entropy": h, "policy/clip_frac_low": 0.01,
                     "policy/clip_frac_high": 0.0, "policy/entropy_change": change,
                     "diag/entropy_change_pred": change + rng.gauss(0, pred_noise),
                     "diag/entropy_change_pred_pg": 0.5 * change + rng.gauss(0, pred_noise)})
        if target is not None:
            rows[-1]["entropy/target"] = target
    rows[0].update({"eval/greedy_acc": acc[0], "eval/pass@8": pass_k[0]})
    rows.append({"step": len(H), "eval/greedy_acc": acc[1], "eval/pass@8": pass_k[1], "policy/entropy": H[-1]})
    return rows


def decay(h0, h1, n=60, wiggle=0.0, seed=0):
    rng = random.Random(seed)
    return [h1 + (h0 - h1) * (1 - i / (n - 1)) ** 2 + rng.uniform(-wiggle, wiggle) for i in range(n)]


def verdicts(runs):
    return {claim.split(" (")[0]: ok for claim, _, _, ok in lab.claims(runs)}


def test_claims_pass_on_series_that_show_them_and_fail_on_series_that_do_not():
    summ = lambda rows_per_seed: [lab.summarize(r, {}) for r in rows_per_seed]
    collapse = summ([fake_run(decay(1.0, 0.3, seed=s), seed=s) for s in range(3)])
    flat = summ([fake_run(decay(1.0, 0.9, seed=s), seed=s) for s in range(3)])
    high = summ([fake_run(decay(1.0, 0.6, seed=s), seed=s) for s in range(3)])
    bump = [1 + 0.5 * math.sin(math.pi * i / 59) for i in range(60)]          # up, then down
    did = [1 - 0.4 * math.sin(2 * math.pi * i / 59) - 0.3 * i / 59 for i in range(60)]   # down, up, down
    od = [1 - 0.3 * i / 59 + 0.4 * math.exp(-i / 25) * math.cos(2 * math.pi * i / 20) for i in range(60)]
    near = [0.5 + 0.02 * math.sin(i) for i in range(60)]
    ok = verdicts({"none": collapse, "clip_cov": high, "kl_cov": flat, "clip_higher": high,
                   "entropy_bonus_small": collapse, "fec_id": summ([fake_run(bump)] * 3),
                   "fec_did": summ([fake_run(did)] * 3), "fec_od": summ([fake_run(od)] * 3),
                   "aer": summ([fake_run(near, target=0.5)] * 3)})
    assert ok["1. plain GRPO collapses"] and ok["2. clip_cov keeps entropy up"] and ok["2. kl_cov keeps entropy up"]
    assert ok["3. clip_higher raises entropy"] and ok["4. a small entropy bonus still collapses"]
    assert ok["6. FEC id shapes entropy"] and ok["6. FEC did shapes entropy"] and ok["6. FEC od shapes entropy"]
    assert ok["5. aer holds its target"] and ok["7. -Cov(log p, A), Thm 2, predicts the entropy change"]
    # adaptive_entropy logs no target: its config's adaptive_entropy_target is the target
    adaptive = {"entropy_strategy": "adaptive_entropy", "adaptive_entropy_target": 0.5}
    held = [lab.summarize(fake_run(near), adaptive)] * 3
    missed = [lab.summarize(fake_run(near), {**adaptive, "adaptive_entropy_target": 0.3})] * 3
    assert verdicts({"none": collapse, "adaptive_entropy": held})["5. adaptive_entropy holds its target"]
    assert not verdicts({"none": collapse, "adaptive_entropy": missed})["5. adaptive_entropy holds its target"]
    # and the same claims fail where the series do not show them
    noisy = summ([fake_run(decay(1.0, 0.3, seed=s), pred_noise=0.05, seed=s) for s in range(3)])
    bad = verdicts({"none": noisy, "clip_cov": summ([fake_run(decay(1.0, 0.33, seed=s)) for s in range(3)]),
                    "entropy_bonus_small": flat, "fec_id": collapse, "fec_did": summ([fake_run(bump)] * 3),
                    "fec_od": summ([fake_run(decay(1.0, 0.5))] * 3), "aer": summ([fake_run(near, target=0.3)] * 3)})
    assert not any(bad[k] for k in ("2. clip_cov keeps entropy up", "4. a small entropy bonus still collapses",
                                    "6. FEC id shapes entropy", "6. FEC did shapes entropy", "6. FEC od shapes entropy",
                                    "5. aer holds its target"))
    # a collapse whose pass@k rises with greedy accuracy is not the collapse of claim 1
    rising = summ([fake_run(decay(1.0, 0.3, seed=s), pass_k=(0.6, 0.9), seed=s) for s in range(3)])
    assert not verdicts({"none": rising})["1. plain GRPO collapses"]
    # an effect that is large on average but not over the seed spread does not count
    spread = summ([fake_run(decay(1.0, h)) for h in (0.2, 0.2, 1.0)])
    assert not verdicts({"none": flat, "clip_higher": spread})["3. clip_higher raises entropy"]


def test_lab_configs_share_one_setting_and_differ_only_in_the_strategy():
    """The claims compare configs paired by seed, so every lab config must run the same task, base and
    RL setting; only the strategy's own knobs (and clip_low for the clip-low config) may differ."""
    import glob
    import os
    import yaml
    configs = {os.path.basename(p): yaml.safe_load(open(p)) for p in glob.glob(os.path.join(lab.ROOT, "configs", "lab_*.yaml"))}
    assert len(configs) == 12
    shared = {k: v for k, v in configs["lab_none.yaml"].items() if k not in ("out_dir", "entropy_strategy")}
    for name, cfg in configs.items():
        assert {k: cfg.get(k) for k in shared} == shared, name
        strategy_knobs = {k for k in cfg if k not in shared and k not in ("out_dir", "entropy_strategy")}
        prefix = cfg["entropy_strategy"].split("_")[0]
        assert all(k.startswith(prefix) or k == "clip_low" for k in strategy_knobs), (name, strategy_knobs)


def test_run_lab_skips_finished_runs_and_builds_the_base_first(tmp_path, monkeypatch):
    """Resumable: a finished run (its last row is the final eval) is not run again, an unfinished one is, and
    the first run is lab_none of the first seed, the one that builds the shared warm-started base."""
    import subprocess
    import yaml
    done = tmp_path / "none_s0"
    done.mkdir()
    (done / "config.yaml").write_text(yaml.safe_dump({"num_steps": 2}))
    (done / "metrics.jsonl").write_text('{"step": 0}\n{"step": 1}\n{"step": 2}\n')
    half = tmp_path / "kl_cov_s1"
    half.mkdir()
    (half / "config.yaml").write_text(yaml.safe_dump({"num_steps": 2}))
    (half / "metrics.jsonl").write_text('{"step": 0}\n')
    calls = []
    monkeypatch.setattr(subprocess, "run", lambda cmd, **kw: calls.append(cmd) or subprocess.CompletedProcess(cmd, 0))
    assert lab.run_lab(str(tmp_path), [0, 1], jobs=1) == []
    runs = [next(a for a in c if a.startswith("--out_dir=")).split("/")[-1] for c in calls]
    assert "none_s0" not in runs and "kl_cov_s1" in runs and len(runs) == 2 * 12 - 1
    assert runs[0] == "none_s1"                          # jobs=1: in order; the base builder, none_s0, had finished
    assert all("--threads=1" in c for c in calls) and all(f"--seed={r[-1]}" in c for r, c in zip(runs, calls))


def test_covariance_claim_pools_the_policy_gradient_configs_and_needs_a_real_correlation():
    """Claim 7 pools each seed's steps over the configs without an entropy term (the theorems describe the
    policy-gradient update alone): an entropy-bonus run that the covariance cannot predict is left out."""
    summ = lambda noise, seed: lab.summarize(fake_run(decay(1.0, 0.3, wiggle=0.05, seed=seed), pred_noise=noise, seed=seed), {})
    key = "7. -Cov(log p, A), Thm 2, predicts the entropy change"
    good = {"none": [summ(0.002, s) for s in range(3)], "kl_cov": [summ(0.002, s + 3) for s in range(3)]}
    bonus = [lab.summarize(fake_run(decay(1.0, 3.0, seed=s), pred_noise=1.0, seed=s), {}) for s in range(3)]
    assert verdicts(good)[key] and verdicts({**good, "entropy_bonus_large": bonus})[key]
    noisy = {"none": [summ(0.2, s) for s in range(3)], "kl_cov": [summ(0.2, s + 3) for s in range(3)]}
    assert not verdicts(noisy)[key]


def test_report_compares_only_the_seeds_every_config_has_finished(tmp_path):
    """Mid-sweep, configs have finished different seeds; claims compare configs seed by seed, so load keeps
    the seeds all of them have (here seed 1 only), never pairing one config's seed 0 with another's seed 1."""
    import yaml
    for name, seed in (("none", 0), ("none", 1), ("clip_cov", 1), ("clip_cov", 2)):
        d = tmp_path / f"{name}_s{seed}"
        d.mkdir()
        (d / "config.yaml").write_text(yaml.safe_dump({"num_steps": 60}))
        rows = fake_run(decay(1.0, 0.3 * (seed + 1), seed=seed), seed=seed)
        (d / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    runs = lab.load(str(tmp_path), seeds=[0, 1, 2])
    assert {name: [seed for seed, _, _ in v] for name, v in runs.items()} == {"clip_cov": [1], "none": [1]}
    assert lab.load(str(tmp_path), seeds=[0, 2]) == {}                  # --seeds picks what is reported
    (tmp_path / "none_s1" / "metrics.jsonl").write_text('{"step": 0}\n')   # unfinished: no seed in common
    assert lab.load(str(tmp_path), seeds=[0, 1, 2]) == {}
