"""
How torch's CPU thread count holds up when other jobs share the cores: the tiny run and the tiny rollout row of
tests/bench.py, with 1 and 2 threads, on the machine as it is ("idle") and under a synthetic load of 1 and 2
busy-loop processes, all in one run, so the ratios compare like with like. A script, not a test.

    python tests/bench_threads.py                    # 37 min at load average 7-11 from other jobs (2 cores)
    python tests/bench_threads.py --scale 0.02 --loads 0 1   # a shorter reading

The tiny run is `train.py --config configs/tiny.yaml --threads=N` from scratch (no cached warm start) with its
warm start and RL steps both shortened by --scale (default 0.05: 75 warm-start steps and 3 RL steps instead of
1,500 and 60; held-out evals at the first and the final step only); its wall time includes starting Python.
The rollout row is bench.py's row 1 (our sampler, 64 prompts x 8 samples x 48 tokens, T=1, best of 3
rounds), in a fresh process per thread count. Each busy-loop process spins in pure Python and stops by itself
after --load_cap seconds at most (this script stops it as soon as its condition is measured). The machine's load
average at the start and end is printed: "idle" is only as idle as the machine was.
"""
import argparse
import os
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUSY = "import time\nend = time.time() + {cap}\nwhile time.time() < end:\n    pass\n"


def tiny_run(threads, scale):
    """Wall seconds of the shortened tiny run with `threads` torch threads."""
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "train.py", "--config", "configs/tiny.yaml", f"--threads={threads}",
               f"--sft_steps={round(1500 * scale)}", f"--num_steps={max(1, round(60 * scale))}", "--eval_every=0",
               "--log_samples_every=0", f"--out_dir={tmp}/run", f"--base_cache_dir={tmp}/base"]
        t0 = time.perf_counter()
        p = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
        seconds = time.perf_counter() - t0
    assert p.returncode == 0, f"train.py failed:\n{p.stdout[-2000:]}\n{p.stderr[-3000:]}"
    return seconds


def rollout(threads):
    """Tokens/s of bench.py's tiny rollout row (our sampler), in a child process with `threads` threads."""
    p = subprocess.run([sys.executable, os.path.abspath(__file__), "--rollout_child", str(threads)], cwd=ROOT,
                       capture_output=True, text=True)
    assert p.returncode == 0, f"rollout child failed:\n{p.stderr[-3000:]}"
    return float(p.stdout.split()[-1])


def rollout_child(threads):
    import torch
    torch.set_num_threads(threads)
    sys.path[:0] = [ROOT, os.path.join(ROOT, "tests")]
    from bench import DEVICE, OURS, best_of, engines
    from nanoentropy.config import Config
    from nanoentropy.data import get_problems
    from nanoentropy.model import build_char_tokenizer, build_tiny_model
    from nanoentropy.rollout import encode_prompts
    cfg, tok = Config(), build_char_tokenizer()
    model = build_tiny_model(cfg, tok).to(DEVICE).eval()
    ids, mask = encode_prompts(tok, [p["prompt"] for p in get_problems(cfg)[0][:64]], DEVICE)   # (64, P)
    fn = engines(model, ids, mask, 8, 48, tok.pad_token_id, [OURS])
    fn[OURS]()                                                   # warm-up
    times = best_of(fn, repeats=3)[OURS]                         # 3 rounds, no more: a fixed amount of work
    print(64 * 8 * 48 / min(times))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scale", type=float, default=0.05, help="fraction of the tiny run's warm start and RL steps")
    ap.add_argument("--loads", type=int, nargs="+", default=[0, 1, 2], help="busy-loop processes per condition")
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2], help="torch thread counts to compare")
    ap.add_argument("--load_cap", type=float, default=1800, help="a busy-loop process stops after this many s")
    ap.add_argument("--rollout_child", type=int, help=argparse.SUPPRESS)   # internal: one rollout measurement
    args = ap.parse_args()
    if args.rollout_child:
        return rollout_child(args.rollout_child)
    t_start, load_start = time.perf_counter(), os.getloadavg()
    res = {}   # (what, threads, load) -> value
    for load in args.loads:
        busy = [subprocess.Popen([sys.executable, "-c", BUSY.format(cap=args.load_cap)]) for _ in range(load)]
        try:
            for n in args.threads:
                res[("run", n, load)] = tiny_run(n, args.scale)
                res[("rollout", n, load)] = rollout(n)
                print(f"  {load} busy, {n} threads: tiny run {res[('run', n, load)]:.1f} s, "
                      f"rollout {res[('rollout', n, load)]:,.0f} tok/s", flush=True)
        finally:
            for p in busy:
                p.kill()
                p.wait()
    load_end = os.getloadavg()
    base = args.threads[0]
    print(f"\n{os.cpu_count()} cores, load average {load_start[0]:.1f} at start and {load_end[0]:.1f} at end, "
          f"total {time.perf_counter() - t_start:.0f} s. In brackets: time relative to the same thread count "
          f"with no busy process; last rows: {args.threads[-1]} threads / {base} thread(s), same load.")
    print("| measurement | threads | " + " | ".join(f"{k} busy" for k in args.loads) + " |")
    print("|---|---|" + "---|" * len(args.loads))
    for what, label in (("run", f"tiny run x{args.scale:g}, wall s"), ("rollout", "rollout 64x8x48, tok/s")):
        for n in args.threads:
            cells = []
            for load in args.loads:
                v, v0 = res[(what, n, load)], res[(what, n, args.loads[0])]
                rel = v / v0 if what == "run" else v0 / v   # time ratio: >1 is slower
                cells.append(f"{v:,.1f} ({rel:.2f}x)" if what == "run" else f"{v:,.0f} ({rel:.2f}x)")
            print(f"| {label} | {n} | " + " | ".join(cells) + " |")
        # time with the most threads over time with the fewest, at each load: <1 means more threads help
        ratios = [(res[(what, args.threads[-1], k)] / res[(what, base, k)]) ** (1 if what == "run" else -1)
                  for k in args.loads]
        print(f"| {label}: time ratio {args.threads[-1]}/{base} threads | | " +
              " | ".join(f"{r:.2f}x" for r in ratios) + " |")


if __name__ == "__main__":
    main()
