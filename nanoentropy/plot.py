"""
Compare runs: python -m nanoentropy.plot RUN_DIR [RUN_DIR ...] --out FIG.png

Draws policy entropy, rollout reward and held-out greedy accuracy against step, one line per run
(matplotlib, from the `plot` extra), and prints a table per run and per configuration (runs whose
directory names differ only by a trailing "_s<seed>" are seeds of one configuration): final
accuracy, pass@k, final entropy, entropy at its minimum, the fitted entropy law and how well the
covariance predicted the entropy change. Reads only out_dir/metrics.jsonl and out_dir/config.yaml.
"""
import argparse
import json
import os
import re
import statistics
import sys

import yaml

from nanoentropy.diagnostics import correlation, fit_entropy_law


def load_run(path):
    """(label, config dict, list of metric rows) of one run directory."""
    metrics = os.path.join(path, "metrics.jsonl")
    if not os.path.exists(metrics):
        raise FileNotFoundError(f"{path}: no metrics.jsonl (is this a run directory?)")
    rows = [json.loads(line) for line in open(metrics) if line.strip()]
    if not rows:
        raise ValueError(f"{path}: metrics.jsonl has no steps")
    cfg_path = os.path.join(path, "config.yaml")
    cfg = yaml.safe_load(open(cfg_path)) if os.path.exists(cfg_path) else {}
    return os.path.basename(os.path.normpath(path)), cfg, rows


def summarize(rows, cfg):
    """Floats that describe one run. H_1/3, H_2/3, H_3/3: mean entropy over each third of the steps
    (the shape of a schedule); tgt_dev: mean |H - target| / target over the second half, for the
    strategies that steer toward a target (adaptive_entropy's knob, AER's logged entropy/target)."""
    n = len(rows)
    thirds = [statistics.fmean(r["policy/entropy"] for r in rows[i * n // 3:(i + 1) * n // 3] or rows) for i in range(3)]
    second = rows[n // 2:]
    targets = [r.get("entropy/target", cfg.get("adaptive_entropy_target") if cfg.get("entropy_strategy") ==
                     "adaptive_entropy" else None) for r in second]
    devs = [abs(r["policy/entropy"] - t) / t for r, t in zip(second, targets) if t]
    evals = [r for r in rows if "eval/greedy_acc" in r]
    ent = [(r["policy/entropy"], r["step"]) for r in rows]
    pass_key = next((k for k in (evals[-1] if evals else {}) if k.startswith("eval/pass@")), None)
    law = fit_entropy_law([r["policy/entropy"] for r in evals], [r["eval/greedy_acc"] for r in evals])
    changes = [(r["diag/entropy_change_pred"], r["policy/entropy_change"]) for r in rows
               if "policy/entropy_change" in r and "diag/entropy_change_pred" in r]
    return {
        "acc0": evals[0]["eval/greedy_acc"] if evals else float("nan"),
        "acc": evals[-1]["eval/greedy_acc"] if evals else float("nan"),
        "pass": evals[-1][pass_key] if pass_key else float("nan"),
        "H0": ent[0][0], "H": ent[-1][0], "Hmin": min(ent)[0], "Hmin_step": min(ent)[1],
        "law_ceiling": law.get("ceiling", float("nan")), "law_r2": law.get("r2", float("nan")),
        "cov_corr": correlation([c[0] for c in changes], [c[1] for c in changes]),
        "H_1/3": thirds[0], "H_2/3": thirds[1], "H_3/3": thirds[2],
        "tgt_dev": statistics.fmean(devs) if devs else float("nan"),
    }


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    ap.add_argument("runs", nargs="+", help="run directories (each with metrics.jsonl)")
    ap.add_argument("--out", default="", help="write the figure here (PNG); omit for the table only")
    args = ap.parse_args(argv)
    try:
        runs = [load_run(p) for p in args.runs]
    except (FileNotFoundError, ValueError) as e:   # JSONDecodeError is a ValueError
        print(f"error: {e}", file=sys.stderr)
        return 2
    cols = ("acc0", "acc", "pass", "H0", "H", "Hmin", "H_1/3", "H_2/3", "H_3/3", "tgt_dev", "law_ceiling", "cov_corr")
    print("| run | strategy | acc@0 | acc | pass@k | H@0 | H final | H min (step) | H by thirds | target dev | "
          "law ceiling | corr(-cov, dH) |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    groups = {}
    for name, cfg, rows in runs:
        s = summarize(rows, cfg)
        groups.setdefault(re.sub(r"_s\d+$", "", name), []).append(s)
        print(f"| {name} | {cfg.get('entropy_strategy', '?')} | {s['acc0']:.3f} | {s['acc']:.3f} | {s['pass']:.3f} | "
              f"{s['H0']:.3f} | {s['H']:.3f} | {s['Hmin']:.3f} ({s['Hmin_step']}) | "
              f"{s['H_1/3']:.3f} {s['H_2/3']:.3f} {s['H_3/3']:.3f} | {s['tgt_dev']:.2f} | {s['law_ceiling']:.3f} | "
              f"{s['cov_corr']:.2f} |")
    pairs = [(r["diag/entropy_change_pred"], r["policy/entropy_change"]) for _, _, rows in runs for r in rows
             if "policy/entropy_change" in r and "diag/entropy_change_pred" in r]
    print(f"\ncorrelation of -Cov(logp, A) with the measured entropy change, pooled over these runs: "
          f"{correlation([p[0] for p in pairs], [p[1] for p in pairs]):.3f} ({len(pairs)} steps)")
    if any(len(g) > 1 for g in groups.values()):
        print("\nmean ± std over seeds")
        print("| config | seeds | " + " | ".join(cols) + " |")
        print("|---|---|" + "---|" * len(cols))
        for label, ss in groups.items():
            cells = []
            for c in cols:
                vals = [s[c] for s in ss if s[c] == s[c]]   # drop nan (e.g. no correlation defined)
                mean = statistics.fmean(vals) if vals else float("nan")
                sd = statistics.pstdev(vals, mean) * (len(vals) / (len(vals) - 1)) ** 0.5 if len(vals) > 1 else 0.0
                cells.append(f"{mean:.3f} ± {sd:.3f}")
            print(f"| {label} | {len(ss)} | " + " | ".join(cells) + " |")
    if args.out:
        try:
            import matplotlib
            matplotlib.use("Agg")
            import matplotlib.pyplot as plt
        except ImportError:
            print("error: matplotlib is missing; pip install -e '.[plot]'", file=sys.stderr)
            return 2
        fig, axes = plt.subplots(1, 3, figsize=(16, 4.5))
        labels = list(dict.fromkeys(re.sub(r"_s\d+$", "", name) for name, _, _ in runs))
        colors = {lab: plt.cm.tab20(i % 20) for i, lab in enumerate(labels)}   # one colour per config
        seen = {}
        for name, _, rows in runs:
            label = re.sub(r"_s\d+$", "", name)
            style = dict(color=colors[label], lw=1.2, ls=("-", "--", ":")[seen.get(label, 0) % 3],
                         label=label if label not in seen else None)   # seeds of one config: one legend entry
            seen[label] = seen.get(label, 0) + 1
            axes[0].plot([r["step"] for r in rows], [r["policy/entropy"] for r in rows], **style)
            steps = [r for r in rows if "rollout/reward" in r]   # not the final eval's row (train.py)
            axes[1].plot([r["step"] for r in steps], [r["rollout/reward"] for r in steps], **style)
            ev = [r for r in rows if "eval/greedy_acc" in r]
            axes[2].plot([r["step"] for r in ev], [r["eval/greedy_acc"] for r in ev], marker="o", ms=3, **style)
        for ax, title in zip(axes, ("policy entropy (nats, full vocabulary; log scale)", "rollout reward",
                                    "held-out greedy accuracy")):
            ax.set_title(title, fontsize=10)
            ax.set_xlabel("RL step")
        axes[0].set_yscale("log")
        fig.legend(*axes[0].get_legend_handles_labels(), loc="center right", fontsize=8, frameon=False)
        fig.tight_layout(rect=(0, 0, 0.86, 1))
        fig.savefig(args.out, dpi=110)
        print(f"figure written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
