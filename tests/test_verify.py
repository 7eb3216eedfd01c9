"""
Tests for verify.py, the answer checker behind every reward. The table holds one or more equal and
near-miss rows for each convention in verify.py's docstring; the rest checks extraction, the hard
timeout (also off the main thread), that nothing raises or hangs on 1,000 random strings, the CLI,
and that batch_reward agrees with the one-pair path. Runs in ~15 s on 2 CPU cores.
"""
import json, random, subprocess, sys, threading, time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # verify.py lives at the top level of the repo
import verify
from verify import batch_reward, extract_answer, is_equiv, reward

T, F = True, False
CASES = [
    # --- plain numbers: exact, no relative tolerance (the fast path, no SymPy)
    ("42", "42", T), ("-3", "-3", T), ("+5", "5", T), ("-0", "0", T), ("5", "-5", F),
    ("1000001", "1000000", F), ("12", "13", F), ("0.5", "1/2", T), ("0.50", "0.5", T),
    ("1/2", r"\frac{1}{2}", T), ("2/4", "1/2", T), (r"-\frac{1}{2}", "-0.5", T), (r"\frac{-1}{2}", "-1/2", T),
    ("3", "3.0", T), (r"\frac{6}{4}", r"\frac{3}{2}", T), (r"\frac{1}{3}", r"\frac{1}{4}", F),
    # --- a decimal meets an exact value only if it is right to 6 places
    ("0.333333", r"\frac{1}{3}", T), ("0.3333", r"\frac{1}{3}", F), ("0.333334", "1/3", F),
    ("0.666667", "2/3", T), ("0.66667", "2/3", F), ("3.0000001", "3", T), ("3.000001", "3", F),
    ("3.14", r"\pi", F), ("3.141593", r"\pi", T), ("3.1416", r"\pi", F), ("2.718282", "e", T),
    ("1.414214", r"\sqrt{2}", T), ("1.41", r"\sqrt2", F), ("0.707107", r"\frac{1}{\sqrt{2}}", T),
    # --- decoration is ignored, units are not converted
    ("5.", "5", T), (r"45^\circ", "45", T), ("45°", "45", T), (r"45^{\circ}", "45", T), (r"45\degree", "45", T),
    ("45°", "46", F), (r"\$5", "5", T), ("$5$", "5", T), ("€20", "20", T), ("5 dollars", "5", T),
    (r"5\text{ cm}", "5", T), (r"5 \mbox{cm}", "5", T), ("5 cm", "5", T), (r"5 \text{cm}", "6", F),
    (r"5\text{ cm}^2", "25", F), ("1,000", "1000", T), ("1{,}000", "1000", T), (r"1\,000", "1000", T),
    ("1,000,000", "1000000", T), ("1,000", "100", F), (r"\left(1,2\right)", "(1,2)", T),
    (r"\left[1,2\right)", "[1,2)", T), (r"\dfrac{1}{2}", "0.5", T), (r"\tfrac{3}{4}", "0.75", T),
    (r"\frac12", "0.5", T), (r"\frac12", "12", F), (r"\sqrt3", r"\sqrt{3}", T),
    (r"\displaystyle\frac{1}{2}", "1/2", T),
    ("x = 5", "5", T), ("x=5", "5", T), ("5", "x = 5", T), ("x = 5", "6", F), ("y = 2x+3", "2x+3", T),
    (r"2\frac{1}{2}", "2.5", T), (r"2\frac{1}{2}", "1", F), (r"x = 2\frac12", "5/2", T), (r"\theta = 30", "30", T),
    ("x_1 = 4", "4", T), (r"1 \text{ apple}", "1", T), ("12 apples", "13", F),
    # --- percent: one side's percent sign lets it mean x or x/100; never scale a plain truth
    (r"20\%", "20", T), (r"50\%", "0.5", T), ("20%", "20%", T), ("50", r"50\%", T), ("0.5", r"50\%", T),
    ("50", "0.5", F), ("0.2", "20", F), (r"20\%", "0.3", F), (r"50\%", r"0.5\%", F),
    # --- symbolic equality through SymPy
    (r"2\sqrt2", r"\sqrt8", T), (r"\sqrt{8}", r"2\sqrt{2}", T), (r"\frac{\sqrt2}{2}", r"\frac{1}{\sqrt2}", T),
    (r"\sqrt{8}", r"3\sqrt{2}", F), (r"\pi", "π", T), (r"2\pi", "2π", T), ("pi", r"\pi", T), (r"\pi", "e", F),
    (r"e^{i\pi}", "-1", T), ("i^2", "-1", T), ("i", "-i", F), (r"\infty", "∞", T), (r"-\infty", r"\infty", F),
    ("infinity", r"\infty", T), ("x^2+2x+1", "(x+1)^2", T), ("x^2+2x+1", "(x+1)^3", F), ("2x", "x+x", T),
    (r"\sqrt[3]{8}", "2", T), ("√2", r"\sqrt{2}", T), ("√12", r"2\sqrt3", T), ("sqrt(2)", r"\sqrt2", T),
    (r"\sin^2 x + \cos^2 x", "1", T), (r"\log_2 8", "3", T), (r"\ln(e^2)", "2", T), (r"\binom{5}{2}", "10", T),
    ("5!", "120", T), ("5!", "24", F), ("|-3|", "3", T), (r"\lfloor 2.5 \rfloor", "2", T),
    (r"\sqrt{3+2\sqrt2}", r"1+\sqrt2", T), (r"\frac{1+\sqrt5}{2}", r"\frac{\sqrt5+1}{2}", T),
    ("a+b", "b+a", T), ("a-b", "b-a", F), (r"\alpha+1", r"1+\alpha", T), ("2^{10}", "1024", T),
    ("2^10", "1024", T), ("10^{-2}", "0.01", T), ("x_1+x_2", "x_2+x_1", T), ("x_1", "x_2", F),
    (r"3\cdot 4", "12", T), (r"3\times 4", "12", T), (r"12\div 4", "3", T), ("2**3", "8", T), ("2x", "2y", F),
    (r"\frac{x}{2}", "0.5x", T), (r"\frac{x}{3}", "0.3333x", F), ("3(x+1)", "3x+3", T),
    # --- sets and bare lists are unordered, tuples ordered, intervals keep ends and openness
    (r"\{1,2\}", r"\{2,1\}", T), (r"\{1,2\}", r"\{1,3\}", F), ("1, 2", "2, 1", T), ("1,2,3", "3, 2, 1", T),
    ("1, 2", "1, 2, 3", F), (r"\{\sqrt8, 1\}", r"\{1, 2\sqrt2\}", T), ("(1,2)", "(1, 2)", T), ("(1,2)", "(2,1)", F),
    (r"(\frac12, \sqrt8)", r"(0.5, 2\sqrt2)", T), ("(1,2,3)", "(1,2)", F), ("[1,2)", "[1, 2)", T),
    ("[1,2)", "[1,2]", F), ("(1,2]", "(1,2)", F), ("(1,2)", "[1,2]", F), (r"(-\infty, 3)", "(-∞,3)", T),
    (r"[0,\infty)", r"[0, \infty)", T), (r"(-\infty,1)\cup(2,\infty)", r"(2,\infty)\cup(-\infty,1)", T),
    (r"(-\infty,1)\cup(2,\infty)", r"(-\infty,1]\cup(2,\infty)", F), (r"\mathbb{R}", r"(-\infty,\infty)", T),
    (r"x \in [1,2]", "[1,2]", T), (r"\varnothing", r"\emptyset", T), ("∅", r"\varnothing", T),
    (r"\varnothing", "0", F), (r"\{\}", r"\emptyset", T), ("[1, 2, 3]", "(1, 2, 3)", T),
    # --- matrices compare entrywise
    (r"\begin{pmatrix}1&2\\3&4\end{pmatrix}", r"\begin{bmatrix}1 & 2 \\ 3 & 4\end{bmatrix}", T),
    (r"\begin{pmatrix}1&2\\3&4\end{pmatrix}", r"\begin{pmatrix}1&3\\2&4\end{pmatrix}", F),
    (r"\begin{pmatrix}\frac12\\ \sqrt8\end{pmatrix}", r"\begin{pmatrix}0.5\\2\sqrt2\end{pmatrix}", T),
    (r"\begin{pmatrix}1\\2\end{pmatrix}", r"\begin{pmatrix}1&2\end{pmatrix}", F),
    # --- equations up to a nonzero factor, inequalities up to a positive one (flipped is fine)
    ("x > 3", "3 < x", T), (r"x \ge 3", r"3 \le x", T), ("x > 3", r"x \ge 3", F), ("x>3", "x<3", F),
    ("2x > 6", "x > 3", T), ("-x < -3", "x > 3", T), ("x < 3", "-x < -3", F), ("x+y=3", "2x+2y=6", T),
    ("x+y=3", "x+y=4", F), (r"x \ne 2", r"2 \ne x", T), (r"x \le 5", "x < 5", F), ("x >= 3", r"x \geq 3", T),
    ("x^2 = 4", "4 = x^2", T),
    # --- hedged answers are wrong
    ("12 or 14", "12", F), (r"12 \text{ or } 14", "12", F), (r"12 \text{ or } 14", "168", F), ("12 14", "168", F),
    (r"\pm 5", "5", F), (r"\pm 5", "5, -5", T), (r"\pm 5", r"\{-5, 5\}", T),
    (r"1 \pm \sqrt2", r"1+\sqrt2, 1-\sqrt2", T),
    (r"\frac{1 \pm \sqrt5}{2}", r"\frac{1-\sqrt5}{2}, \frac{1+\sqrt5}{2}", T),
    (r"\frac{1 \pm \sqrt5}{2}", r"\frac{1+\sqrt5}{2}", F),
    ("5, -5", "5", F), (r"x \text{ or } y", "xy", F), (r"5 \text{ (or 6)}", "5", F), ("5 (or 6)", "5", F),
    ("3 and 4", "3, 4", T),
    # --- text and multiple choice, case-insensitive
    ("(C)", "C", T), (r"\text{(C)}", "c", T), (r"\textbf{(C)}", "(C)", T), ("C", "(c)", T), ("(B)", "(C)", F),
    (r"\mathrm{(D)}", "D", T), (r"\text{Monday}", "monday", T), ("Monday", "Tuesday", F), ("dynamo", "Monday", F),
    (r"\text{yes}", "Yes", T), ("no", "yes", F), (r"\text{odd}", r"\text{even}", F),
    (r"\text{no solution}", "No Solution", T),
    # --- undefined, empty, unbalanced or garbage input equals nothing, itself included
    ("1/0", "1/0", F), ("0/0", "0/0", F), (r"\frac{1}{0}", "1", F), (r"\frac{0}{0}", "0", F), ("(1/0)", "(1/0)", F),
    ("1/(1-1)", "1/(1-1)", F), ("", "", F), ("", "5", F), ("5", "", F), ("   ", "5", F), (r"\frac{1}{2", "1/2", F),
    ("{5", "5", F), ("5}", "5", F), ("@#!", "@#!", F), ("x -", "x", F), (r"\foo{1}", r"\foo{1}", F),
    ("1 < x < 3", "1 < x < 3", F),
    # --- screened: huge powers and factorials, overlong input; only the identical string matches
    ("10^{10^{10}}", "10^{10^{10}}", T), ("10^{10^{10}}", "1", F), ("10^{10^{10}}", "10^{10^{10}}+1", F),
    ("(10^{9})!", "1", F), ("2^{2^{2^{2^{2}}}}", "2", F), ("9" * 2000, "9" * 2000, T),
    ("9" * 2000, "9" * 1999 + "8", F),
]

@pytest.mark.parametrize("pred,truth,expected", CASES)
def test_table(pred, truth, expected):
    assert is_equiv(pred, truth) is expected

def test_table_size():
    assert len(CASES) >= 150

def test_batch_reward_agrees_with_one_pair_path():
    preds, truths = [c[0] for c in CASES], [c[1] for c in CASES]
    rewards, n_timeouts = batch_reward(preds, truths, workers=2)
    assert rewards == [reward(p, t) for p, t in zip(preds, truths)] and n_timeouts == 0
    # where the bare answer is its own extraction, the batch must also give the table's verdict
    for (p, t, expected), r in zip(CASES, rewards):
        if extract_answer(p) == p:
            assert r == float(expected), (p, t)

# -----------------------------------------------------------------------------
# extraction

@pytest.mark.parametrize("text,answer", [
    (r"so \boxed{\frac{1}{2}}", r"\frac{1}{2}"),               # nested braces
    (r"$\boxed{\{1, 2\}}$", r"\{1, 2\}"),
    (r"we get $\boxed 5$.", "5"),                              # plain-TeX \boxed 5
    (r"\fbox{7}", "7"),
    (r"first \boxed{3}, no wait: \boxed{4}", "4"),             # the last box wins
    (r"\boxed{5.}", "5."),
    (r"\boxed{5", None),                                       # never closes: no answer
    ("Natalia sold 48 clips.\n#### 72", "72"),                  # GSM8K
    ("#### 1,000", "1,000"),
    ("Thus the final answer is 7. Done.", "7"),
    (r"The answer is: $\frac12$. I hope it is correct.", r"$\frac12$"),
    ("The answer is 3.5", "3.5"), ("The answer is **42**.", "42"),
    ("I had 3 apples and then 5 more apples.", "5"),            # last-number fallback
    (r"\frac{1}{2}", r"\frac{1}{2}"),                           # a short reply is its own answer
    ("", None), (None, None),
])
def test_extract_answer(text, answer):
    assert extract_answer(text) == answer

def test_extract_answer_searches_whole_text_and_fallback_switch():
    long_text = r"\boxed{17} " + "and then we talked about something else " * 300
    assert extract_answer(long_text) == "17"
    assert extract_answer("I had 3 apples and then 5 more apples.", fallback_last_number=False) is None
    assert extract_answer("x = 5", fallback_last_number=False) is None

def test_reward():
    assert reward(r"Adding up, the total is \boxed{72}.", "72") == 1.0
    assert reward(r"Adding up, the total is \boxed{71}.", "72") == 0.0
    assert reward(r"\boxed{\frac{1}{2}}", r"We find $\boxed{0.5}$.") == 1.0  # a truth with a box is extracted
    assert reward("so 72", "Natalia sold 48 clips.\n#### 72") == 1.0
    assert reward("no number here at all, sorry", "5") == 0.0

# -----------------------------------------------------------------------------
# the hard timeout: (x+y+z)^30 against (x+y+z+1)^30 keeps simplify busy for ~15 s on this machine

SLOW = ("(x+y+z)^{30}", "(x+y+z+1)^{30}")

def test_timeout_returns_false_and_is_counted():
    assert is_equiv("x", "x")  # a warm worker: start-up (SymPy's import) is outside the bound we time
    before = verify.TIMEOUTS
    t0 = time.monotonic()
    assert is_equiv(*SLOW, timeout=0.3) is False
    assert time.monotonic() - t0 < 0.3 + 2.0
    assert verify.TIMEOUTS == before + 1
    assert is_equiv(r"2\sqrt2", r"\sqrt8") is True  # the killed worker was replaced
    rewards, n_timeouts = batch_reward([SLOW[0], "1", r"\sqrt4"], [SLOW[1], "1", "2"], timeout=0.3)
    assert rewards == [0.0, 1.0, 1.0] and n_timeouts == 1

def test_timeout_off_the_main_thread():
    """verl PR #5635: signal.alarm raised off the main thread, the error was swallowed and every
    MATH answer scored 0. Our bound must work from any thread, and right answers must still pass."""
    out = {}
    def work():
        out["slow"] = is_equiv(*SLOW, timeout=0.3)
        out["ok"] = is_equiv(r"\frac{\sqrt2}{2}", r"\frac{1}{\sqrt2}")
    th = threading.Thread(target=work)
    th.start()
    th.join(30)
    assert out == {"slow": False, "ok": True}

def _check_in_child(_):  # runs inside a daemonic multiprocessing worker (see the test below)
    return is_equiv(r"2\sqrt2", r"\sqrt8"), is_equiv(*SLOW, timeout=0.3)

def test_works_inside_a_daemonic_pool_worker():
    """A trainer may score rewards inside multiprocessing.Pool workers, which are daemonic and may not
    start multiprocessing children (nor may spawn re-run a script without a main guard). Our workers are
    plain subprocesses, so both the SymPy path and the timeout must work there too."""
    import multiprocessing as mp
    with mp.get_context("fork").Pool(1) as pool:
        assert pool.map(_check_in_child, [0]) == [(True, False)]

def test_import_starts_no_process():
    code = "import verify, multiprocessing as mp; print(len(verify._live), len(mp.active_children()))"
    res = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert res.stdout.split() == ["0", "0"]

# -----------------------------------------------------------------------------
# property: 1,000 seeded random inputs never raise and each check returns within the bound. Half are
# soup (fragments, unicode, unbalanced braces), half well-formed expressions that do reach SymPy

FRAGMENTS = [r"\frac{", "}{", "}", "{", r"\sqrt", r"\boxed{", "^", "_", "(", ")", "[", "]", r"\{", r"\}", ",", "=",
             "<", r"\le", "x", "y", "e", "i", r"\pi", r"\infty", "!", "+", "-", "*", "/", r"\cdot", "0", "1", "7",
             "42", "3.14", "10^{10^{10}}", "99999!", "%", r"\%", "$", "°", r"\text{cm}", " or ", r"\pm", "&", r"\\",
             r"\begin{pmatrix}", r"\end{pmatrix}", r"\left(", r"\right)", "π", "√", "∅", "é", "字", "\x00", "\n",
             " ", ".", "#### ", "the answer is ", r"\sin", r"\log_", "|", r"\cup", "1,000", r"\mathbb{R}"]

LEAVES = ["0", "1", "7", "42", "0.5", "3.14", "x", "y", "e", "i", r"\pi", r"\infty", "10^{10^{10}}", "1/0"]
FORMS = [r"\frac{A}{B}", "A+B", "A-B", "AB", "A^{B}", r"\sqrt{A}", "(A, B)", r"\{A, B\}", "[A, B)", "A!", "-A",
         r"A \cdot B", "A = B", "A < B", r"\sin A", "|A|", r"A\%", r"\pm A", r"\begin{pmatrix}A & B\end{pmatrix}"]

def random_expr(rng, depth=3):
    if depth == 0 or rng.random() < 0.3:
        return rng.choice(LEAVES)
    form = rng.choice(FORMS).replace("A", "\0").replace("B", "\1")  # placeholders no leaf contains
    return form.replace("\0", random_expr(rng, depth - 1)).replace("\1", random_expr(rng, depth - 1))

def test_random_inputs_never_raise_and_return_in_time():
    rng, timeout, pairs = random.Random(0), 1.0, []
    for k in range(1000):
        if k % 2:
            a, b = random_expr(rng), random_expr(rng)
        else:
            a, b = ("".join(rng.choice(FRAGMENTS) for _ in range(rng.randint(0, 12))) for _ in range(2))
        assert isinstance(extract_answer(a), (str, type(None)))
        for check, ok in ((is_equiv, (True, False)), (reward, (0.0, 1.0))):
            t0 = time.monotonic()
            assert check(a, b, timeout=timeout) in ok
            assert time.monotonic() - t0 < timeout + 2.0, (check.__name__, a, b)  # the contract
        pairs.append((a, b))
    rewards, n_timeouts = batch_reward(*zip(*pairs), timeout=timeout)  # the trainer's path must not raise
    assert len(rewards) == 1000 and set(rewards) <= {0.0, 1.0} and n_timeouts >= 0
    assert len(verify._live) <= 4  # workers are reused, not leaked: one per concurrent caller at most

# -----------------------------------------------------------------------------
# the command line

def cli(*args):
    return subprocess.run([sys.executable, str(ROOT / "verify.py"), *args], capture_output=True, text=True, timeout=120)

def test_cli_exit_codes_and_explain():
    ok, bad = cli(r"\boxed{\frac{1}{2}}", "0.5"), cli("3.14", r"\pi")
    assert (ok.returncode, ok.stdout.strip()) == (0, "True")
    assert (bad.returncode, bad.stdout.strip()) == (1, "False")
    ex = cli("45°", "45", "--explain")
    assert ex.returncode == 0 and "extracted: 45°" in ex.stdout and "pred_norm: 45" in ex.stdout
    assert "rule: numbers" in ex.stdout and ex.stdout.strip().endswith("True")

def test_cli_jsonl(tmp_path):
    rows = [json.dumps({"completion": r"so \boxed{2}", "truth": "2"}), "{not json",
            json.dumps({"completion": r"\boxed{x^2}", "truth": "x*x"}), json.dumps({"completion": "7"}),
            json.dumps({"completion": "#### 41", "truth": 42})]
    path = tmp_path / "r.jsonl"
    path.write_text("\n".join(rows) + "\n")
    res = cli("--jsonl", str(path))
    assert res.returncode == 0, res.stderr
    assert "accuracy: 0.6667 (2/3)" in res.stdout and "timeouts: 0" in res.stdout
    assert "line 2:" in res.stderr and "line 4:" in res.stderr and "line 1:" not in res.stderr

def test_cli_missing_file_and_missing_args():
    res = cli("--jsonl", "/no/such/file.jsonl")
    assert res.returncode == 2 and "cannot read" in res.stderr
    assert cli("5").returncode == 2
