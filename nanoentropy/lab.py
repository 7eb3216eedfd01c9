"""
The entropy lab in one command (README "The entropy lab"):

    python -m nanoentropy.lab --seeds 0 1 2 --jobs 2     # run configs/lab_*.yaml x seeds, then report
    python -m nanoentropy.lab --report                     # report only: tables, claims, figure

Runs go to out/lab/<config>_s<seed>, --jobs at a time, one thread each. A finished run (its last row is the
final eval) is skipped and an unfinished one starts over, so the command resumes. All runs share one
warm-started base (base_seed; seed varies only the RL run), built alone by the first lab_none run. The
claims table decides each claim from metrics.jsonl by the criterion printed next to it (see holds); configs
are compared seed by seed (same base, same first batch), over the seeds every config has finished.
"""
import argparse
import glob
import json
import math
import os
import re
import statistics
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import yaml

from nanoentropy.diagnostics import correlation, fit_entropy_law

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
W = 5              # steps in the start and end windows of entropy, and in its moving average
SHAPE_MOVE = 0.15  # a turn of an entropy curve counts when it moves at least 15% of the starting entropy
SHAPES = {"id": ["up", "down"], "did": ["down", "up", "down"]}   # od: see shape_ok


def read_rows(run_dir):
    path = os.path.join(run_dir, "metrics.jsonl")
    return [json.loads(line) for line in open(path) if line.strip()] if os.path.exists(path) else []


def finished(run_dir):   # the last row is the final eval, logged as step num_steps (see train.py)
    rows, cfg_path = read_rows(run_dir), os.path.join(run_dir, "config.yaml")
    return bool(rows) and os.path.exists(cfg_path) and rows[-1]["step"] == yaml.safe_load(open(cfg_path))["num_steps"]


def run_lab(out, seeds, jobs):
    """Runs every (config, seed) that has not finished. Returns the failed runs, one message each."""
    from tqdm import tqdm
    paths = sorted(glob.glob(os.path.join(ROOT, "configs", "lab_*.yaml")))
    todo = [(os.path.basename(p)[4:-5], p, s) for s in seeds for p in paths]     # (name, config, seed)
    todo.sort(key=lambda job: (job[0] != "none", job[2] != seeds[0]))           # lab_none of the first seed first

    def one(job):
        name, path, seed = job
        run = os.path.join(out, f"{name}_s{seed}")
        if finished(run):
            return None
        os.makedirs(run, exist_ok=True)
        with open(os.path.join(run, "train.log"), "w") as log:
            p = subprocess.run([sys.executable, os.path.join(ROOT, "train.py"), "--config", path, f"--seed={seed}",
                                f"--out_dir={run}", "--threads=1"], cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
        return None if p.returncode == 0 else f"{run}: exit code {p.returncode}, see {run}/train.log"

    with tqdm(total=len(todo), desc="lab runs", unit="run") as bar:
        failed = [one(todo[0])]              # alone: it builds the shared warm-started base the others load
        bar.update()
        with ThreadPoolExecutor(jobs) as ex:
            for message in ex.map(one, todo[1:]):
                failed.append(message)
                bar.update()
    return [f for f in failed if f]

# -----------------------------------------------------------------------------
# what each run measured, and the claims


def summarize(rows, cfg):
    """One run in floats (and its entropy series). H0 / H: mean entropy of the first / last W steps; acc0 / acc,
    pass0 / pass: held-out greedy accuracy and pass@k at the first eval and at the final one."""
    steps = [r for r in rows if "rollout/reward" in r]
    evals = [r for r in rows if "eval/greedy_acc" in r]
    k = next(key for key in evals[0] if key.startswith("eval/pass@"))
    H = [r["policy/entropy"] for r in steps]
    fixed = cfg.get("adaptive_entropy_target") if cfg.get("entropy_strategy") == "adaptive_entropy" else None
    targets = [(r["policy/entropy"], r.get("entropy/target", fixed)) for r in steps[len(steps) // 2:]]   # AER logs its
    targets = [(h, t) for h, t in targets if t]
    law = fit_entropy_law([r["policy/entropy"] for r in evals], [r["eval/greedy_acc"] for r in evals])
    return {"acc0": evals[0]["eval/greedy_acc"], "acc": evals[-1]["eval/greedy_acc"], "pass0": evals[0][k],
            "pass": evals[-1][k], "k": k.split("@")[1], "H0": statistics.fmean(H[:W]), "H": statistics.fmean(H[-W:]),
            "clip": statistics.fmean(r["policy/clip_frac_low"] + r["policy/clip_frac_high"] for r in steps),
            "tgt_dev": statistics.fmean(abs(h - t) / t for h, t in targets) if targets else math.nan,
            "law_r2": law.get("r2", math.nan), "series": H,
            "pairs": [(r["diag/entropy_change_pred"], r["diag/entropy_change_pred_pg"], r["policy/entropy_change"])
                      for r in steps if "policy/entropy_change" in r]}


def mean_std(xs):
    xs = [x for x in xs if x == x]               # nan (undefined) values are left out
    if not xs:
        return math.nan, math.nan
    return statistics.fmean(xs), (statistics.stdev(xs) if len(xs) > 1 else 0.0)


def holds(xs, at_least, null):
    """An effect measured once per seed holds: its mean reaches `at_least` and is further than twice the seed
    std from `null` (no effect: 0 for a difference, 1 for a ratio)."""
    m, s = mean_std(xs)
    return m >= at_least and abs(m - null) > 2 * s


def smooth(xs):
    return [statistics.fmean(xs[max(0, i - W // 2):i + W // 2 + 1]) for i in range(len(xs))]


def legs(xs, move):
    """The shape of a curve as its monotone legs, [("up" | "down", size), ...], ignoring every wiggle smaller
    than `move` (a zigzag filter): a leg ends only where the curve turns back by at least `move`."""
    out, direction = [], None
    for i, x in enumerate(xs[1:], 1):
        if direction is None:                    # no leg yet: wait for a move of `move` out of the range so far
            lo, hi = min(xs[:i + 1]), max(xs[:i + 1])
            if x - lo >= move:
                direction, start, extreme = "up", lo, x
            elif hi - x >= move:
                direction, start, extreme = "down", hi, x
        elif (x - extreme) * (1 if direction == "up" else -1) > 0:
            extreme = x                          # the leg goes on
        elif abs(x - extreme) >= move:           # turned back far enough: this leg is over, the next begins
            out.append((direction, abs(extreme - start)))
            direction, start, extreme = ("down" if direction == "up" else "up"), extreme, x
    if direction is not None:
        out.append((direction, abs(extreme - start)))
    return out


def shape_ok(s, schedule):
    """id: up, down. did: down, up, down. od: >= 3 legs, the last smaller than the first (the swings decay).
    On the W-step moving average, counting turns of SHAPE_MOVE * H0 or more."""
    got = legs(smooth(s["series"]), SHAPE_MOVE * s["H0"])
    if schedule == "od":
        return len(got) >= 3 and got[-1][1] < got[0][1]
    return [d for d, _ in got] == SHAPES[schedule]


def claims(runs):
    """runs: {config: [summary per seed]}, seeds in the same order everywhere. Returns (claim, criterion, numbers,
    verdict: True, False or None = reported) rows; a claim whose configs did not run is left out."""
    def fmt(xs):
        return "{:.3f} ± {:.3f}".format(*mean_std(xs))
    def per_seed(name, f):         # f(summary of name, summary of plain GRPO), seed by seed
        return [f(s, g) for s, g in zip(runs[name], runs["none"])]
    have = lambda *names: all(n in runs for n in ("none",) + names)
    lost = lambda s, g: 1 - s["H"] / s["H0"]           # the share of its starting entropy a run has lost
    h_ratio = lambda s, g: s["H"] / g["H"]             # final entropy against plain GRPO's
    out = []
    if have():
        d = per_seed("none", lost)
        dg = per_seed("none", lambda s, g: s["acc"] - s["acc0"])
        dp = per_seed("none", lambda s, g: s["pass"] - s["pass0"])
        k = runs["none"][0]["k"]
        out.append(("1. plain GRPO collapses (Cui et al.)", f"H loses >= 50%; greedy acc rises; pass@{k} rises <= 0.02",
                    f"H lost {fmt(d)}; greedy {fmt(dg)}; pass@{k} {fmt(dp)}",
                    holds(d, 0.5, 0) and holds(dg, 0, 0) and mean_std(dp)[0] <= 0.02))
    for name in ("clip_cov", "kl_cov"):
        if have(name):
            r, da = per_seed(name, h_ratio), per_seed(name, lambda s, g: s["acc"] - g["acc"])
            out.append((f"2. {name} keeps entropy up (Cui et al.)", "final H >= 1.5x GRPO's; acc >= GRPO's - 0.05",
                        f"H ratio {fmt(r)}; acc - GRPO's {fmt(da)}", holds(r, 1.5, 1) and mean_std(da)[0] >= -0.05))
    for name, src in (("clip_higher", "DAPO"), ("clip_low", "Park et al.; FEC")):
        if have(name):
            r = per_seed(name, h_ratio)
            out.append((f"3. {name} raises entropy ({src})", "final H > GRPO's", f"H ratio {fmt(r)}", holds(r, 1, 1)))
    if have("entropy_bonus_small"):
        d = per_seed("entropy_bonus_small", lost)
        out.append(("4. a small entropy bonus still collapses (Cui et al. 4.1)", "H loses >= 50%", f"H lost {fmt(d)}",
                    holds(d, 0.5, 0)))
    if have("entropy_bonus_large"):
        g = per_seed("entropy_bonus_large", lambda s, g: s["H"] / s["H0"])
        out.append(("4. a large entropy bonus explodes (Cui et al. 4.1)", "final H >= 2x its start",
                    f"H end / start {fmt(g)}", holds(g, 2, 1)))
    for name in ("adaptive_entropy", "aer"):
        if have(name):
            dev = per_seed(name, lambda s, g: s["tgt_dev"])
            out.append((f"5. {name} holds its target", "mean abs(H - target) / target over the 2nd half < 0.25",
                        fmt(dev), holds([0.25 - x for x in dev], 0, 0)))
    signs = lambda xs, move: "".join("+" if d == "up" else "-" for d, _ in legs(smooth(xs), move)) or "flat"
    for schedule in ("id", "did", "od"):
        if have(f"fec_{schedule}"):
            absolute = per_seed(f"fec_{schedule}", lambda s, g: signs(s["series"], SHAPE_MOVE * s["H0"]))
            relative = per_seed(f"fec_{schedule}", lambda s, g: signs([math.log(a / b) for a, b in zip(s["series"],
                                                                                            g["series"])], SHAPE_MOVE))
            rule = ">= 3 legs, the last smaller than the first" if schedule == "od" else ", ".join(SHAPES[schedule])
            out.append((f"6. FEC {schedule} shapes entropy", f"legs of H (moving average; turns >= 15% of H0): {rule}; "
                        "every seed", f"legs per seed: {' '.join(absolute)}; of H / GRPO's H: {' '.join(relative)}",
                        all(shape_ok(s, schedule) for s in runs[f"fec_{schedule}"])))
    pg = [v for name, v in runs.items() if not name.startswith(("entropy_bonus", "adaptive", "aer"))]   # no H term
    for j, form in ((0, "-Cov(log p, A), Thm 2"), (1, "-Cov(log p, p A), Thm 1")) if pg else ():
        corr = [correlation(*zip(*[(p[j], p[2]) for v in pg for p in v[i]["pairs"]])) for i in range(len(pg[0]))]
        out.append((f"7. {form}, predicts the entropy change (Cui et al.)", "per-step corr, pooled over the configs "
                    "of a seed without an entropy term, >= 0.5", f"corr {fmt(corr)}", holds(corr, 0.5, 0)))
    r2 = [s["law_r2"] for v in runs.values() for s in v]
    out.append(("8. R = -a exp(H) + b fits (Cui et al. eq. 6)", "R^2 per run, reported", f"R^2 {fmt(r2)}", None))
    return out

# -----------------------------------------------------------------------------
# the report: tables, claims, figure


def load(out, seeds):
    """{config: [(seed, summary, rows)]} of the finished runs in out with a seed in seeds, seeds ascending."""
    runs = {}
    for d in sorted(glob.glob(os.path.join(out, "*_s*"))):
        name, seed = re.fullmatch(r"(.+)_s(\d+)", os.path.basename(d)).groups()
        if finished(d) and int(seed) in seeds:
            rows = read_rows(d)
            cfg = yaml.safe_load(open(os.path.join(d, "config.yaml")))
            runs.setdefault(name, []).append((int(seed), summarize(rows, cfg), rows))
    common = set.intersection(*({seed for seed, _, _ in v} for v in runs.values())) if runs else set()
    print(f"seeds every config has finished (compared seed by seed): {sorted(common) or 'none'}", file=sys.stderr)
    return {name: sorted((x for x in v if x[0] in common), key=lambda x: x[0]) for name, v in sorted(runs.items())
            if common}


def report(runs):
    cols = ("acc0", "acc", "pass0", "pass", "H0", "H", "clip", "tgt_dev", "law_r2")
    print("| config | seeds | " + " | ".join(cols) + " |\n|---|---|" + "---|" * len(cols))
    for name, v in runs.items():
        cells = [mean_std([s[c] for _, s, _ in v]) for c in cols]
        print(f"| {name} | {len(v)} | " + " | ".join(f"{m:.3f} ± {sd:.3f}" for m, sd in cells) + " |")
    print("\n| claim | criterion (over seeds: the mean clears it by more than 2 std) | measured | reproduces |")
    print("|---|---|---|---|")
    for claim, rule, numbers, ok in claims({name: [s for _, s, _ in v] for name, v in runs.items()}):
        print(f"| {claim} | {rule} | {numbers} | {'reported' if ok is None else 'yes' if ok else '**no**'} |")


def figure(runs, path):
    """Per config, mean over seeds: entropy, entropy / plain GRPO's (same seed: the task's own collapse cancels,
    each strategy's effect shows), held-out greedy accuracy and pass@k."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    mean = lambda curves: [statistics.fmean(x) for x in zip(*curves)]   # over seeds, step by step
    fig, axes = plt.subplots(1, 4, figsize=(21, 4.6))
    for i, (name, v) in enumerate(runs.items()):
        style = dict(color="black" if name == "none" else plt.cm.tab20(i % 20), lw=2.2 if name == "none" else 1.3,
                     label=name, ls="-" if i < 10 else "--")
        H = [s["series"] for _, s, _ in v]
        evals = [[r for r in rows if "eval/greedy_acc" in r] for _, _, rows in v]
        k = f"eval/pass@{v[0][1]['k']}"
        axes[0].plot(smooth(mean(H)), **style)
        if "none" in runs:
            ratios = [[math.log(a / b) for a, b in zip(h, g[1]["series"])] for h, g in zip(H, runs["none"])]
            axes[1].plot([math.exp(x) for x in smooth(mean(ratios))], **style)
        for ax, key in ((axes[2], "eval/greedy_acc"), (axes[3], k)):
            ax.plot([r["step"] for r in evals[0]], mean([[r[key] for r in e] for e in evals]), marker=".", **style)
    titles = ("policy entropy, nats per token", "entropy / GRPO's, same seed (cut at 4x)",
              "held-out greedy accuracy", f"held-out pass@{k.split('@')[1]}")
    for ax, title, scale, lim in zip(axes, titles, ("log", "log", "linear", "linear"), (None, (0.5, 4), None, None)):
        ax.set(title=f"{title}, mean of {len(v)} seed{'s' * (len(v) > 1)}", xlabel="RL step", yscale=scale, ylim=lim)
    fig.legend(*axes[0].get_legend_handles_labels(), loc="center right", fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0, 0.9, 1))
    fig.savefig(path, dpi=110)
    print(f"figure written to {path}")


def main(argv=None):
    ap = argparse.ArgumentParser(description="Run the entropy lab (configs/lab_*.yaml x seeds) and report its claims.")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="RL seeds to run (and report on)")
    ap.add_argument("--jobs", type=int, default=2, help="runs at a time, one thread each")
    ap.add_argument("--out", default="out/lab", help="where the runs are written and read")
    ap.add_argument("--fig", default="docs/lab.png", help="the figure ('' = none; needs the plot extra)")
    ap.add_argument("--report", action="store_true", help="run nothing: report on the finished runs in --out")
    args = ap.parse_args(argv)
    failed = [] if args.report else run_lab(args.out, args.seeds, args.jobs)
    runs = load(args.out, args.seeds)
    if not runs:
        print(f"error: no finished lab runs in {args.out}", file=sys.stderr)
        return 2
    report(runs)
    if args.fig:
        try:
            figure(runs, args.fig)
        except ImportError:
            print("no figure: matplotlib is missing (pip install -e '.[plot]')", file=sys.stderr)
    for f in failed:
        print(f"failed: {f}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
