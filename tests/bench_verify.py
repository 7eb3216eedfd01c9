"""
How fast verify.py checks typical answers. A script, not a test (pytest collects test_*.py only, and
nothing here is named test_*), because timings depend on the machine:
    python tests/bench_verify.py [n]
It prints checks per second for
  - numbers: integers, fractions, decimals, 1,000, \\$5, 45^\\circ, 20\\%. The fast path: pure Python, no SymPy
  - sympy:   short expressions (a\\sqrt{b}, x^2+ax, pi/b, tuples, sets). One round trip to a worker each
  - mixed:   the two interleaved 3:1, roughly what a math RL batch looks like, one is_equiv call at a time
  - batch:   batch_reward on whole completions ("... \\boxed{...}"), 128 per call, 2 worker processes: the
             trainer's path. Extraction and the fast path run in the caller, only SymPy work in the workers
The numbers in the pairs are random (seeded), so SymPy's own cache can't serve repeats. bench_verify(n)
returns the rates as a dict for a later benchmark script to import. Worker start-up (~1-2 s: SymPy's import
and the worker's own warm-up checks) is paid in a warm-up call first and is in none of the rates.
"""
import random, sys, time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # verify.py lives at the repo's top level
import verify

def _numbers(rng):  # one (pred, truth) pair a typical GSM8K/MATH numeric answer produces, half of them wrong
    a, b, k = rng.randint(1, 9999), rng.randint(2, 99), rng.randint(2, 9)
    return rng.choice([(str(a), str(a)), (str(a), str(a + 1)), (rf"\frac{{{a}}}{{{b}}}", f"{a * k}/{b * k}"),
                       (f"{a}/4", str(a / 4)), (f"{a:,}", str(a)), (rf"\${a}", str(a)), (rf"{a}^\circ", str(a)),
                       (rf"{a}\%", str(a)), (rf"-\dfrac{{{a}}}{{{b}}}", f"-{a}/{b + 1}")])

def _sympy(rng):  # short symbolic answers: each goes to a worker process
    a, b, c = rng.randint(1, 99), rng.randint(2, 30), rng.choice([2, 3, 5, 6, 7])
    return rng.choice([(rf"{a}\sqrt{{{b * b * c}}}", rf"{a * b}\sqrt{{{c}}}"), (f"x^2+{a}x", f"x(x+{a})"),
                       (rf"\frac{{{a}\pi}}{{{b}}}", rf"{a}\pi/{b}"), (f"({a}, {b})", f"({a},{b})"),
                       (rf"\{{{a}, {b}\}}", rf"\{{{b}, {a}\}}"), (f"{a}x+{b}", f"{b}+{a}x+1"), (f"{a}.{b}", r"\pi")])

def _rate(fn, work):  # checks per second of fn over the list of pairs
    t0 = time.perf_counter()
    fn(work)
    return len(work) / (time.perf_counter() - t0)

def _one_by_one(work):
    for p, t in work:
        verify.is_equiv(p, t)

def _batches(work):  # the trainer's call: 128 (completion, truth) pairs per step
    for i in range(0, len(work), 128):
        chunk = work[i:i + 128]
        verify.batch_reward([f"Step by step ... so the answer is $\\boxed{{{p}}}$." for p, _ in chunk],
                            [t for _, t in chunk], workers=2)

def bench_verify(n: int = 2000) -> dict:
    """-> checks per second: {"numbers", "sympy", "mixed", "batch_2_workers"}; n sets the sample sizes."""
    rng = random.Random(0)
    verify.batch_reward([r"\sqrt{4}"] * 2, ["2"] * 2, workers=2)  # warm-up: start both workers
    mixed = [_sympy(rng) if i % 4 == 3 else _numbers(rng) for i in range(max(n // 2, 128))]
    return {"numbers": _rate(_one_by_one, [_numbers(rng) for _ in range(n)]),
            "sympy": _rate(_one_by_one, [_sympy(rng) for _ in range(max(n // 10, 50))]),
            "mixed": _rate(_one_by_one, mixed[: max(n // 4, 100)]),
            "batch_2_workers": _rate(_batches, mixed)}

if __name__ == "__main__":
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
    rates = bench_verify(n)
    print(f"verify.py checks per second (n={n}; timeouts so far: {verify.TIMEOUTS})")
    for name, r in rates.items():
        print(f"  {name:>16}: {r:8.0f} /s")
