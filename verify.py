"""
verify.py: the answer checker behind every reward. It finds the final answer of a completion and
decides whether it equals the truth, with SymPy behind a hard time limit. It also runs alone:
    python verify.py "\\boxed{\\frac{1}{2}}" "0.5"   prints True, exit 0 (False, exit 1 if not equal)
    python verify.py "45°" "45" --explain            also prints the forms compared and the rule
    python verify.py --jsonl rollouts.jsonl          scores {"completion": ..., "truth": ...} lines
What counts as equal (tests/test_verify.py has equal and near-miss rows for each):
 1) Only the final answer: the last \\boxed{}/\\fbox{}, else "#### x", else "the answer is x", else
    (switchable) a short one-line reply or the last number. Hedges are wrong: "12 or 14" is not 12,
    "\\pm 5" is the set {5, -5}, not 5.
 2) Decoration is ignored (units are never converted): \\text{}/\\mbox{} units and "5 cm", degrees,
    currency, \\left/\\right, \\dfrac, \\frac12, \\sqrt3, 1,000 1{,}000 1\\,000, a trailing period, "x =".
 3) A percent sign on ONE side lets it mean x or x/100 (20\\% = 20, 50\\% = 0.5); never a truth without.
 4) Exact numbers must be exactly equal (1000001 is not 1000000). A decimal meets an exact value if it
    is right to 6 places, |d - x| < 5e-7: 0.333333 is 1/3 and 3.141593 is pi; 0.3333 and 3.14 are not.
 5) The rest goes through SymPy (2\\sqrt2 = \\sqrt8, 2/4 = 1/2, pi, e, i, \\infty). Sets and bare comma
    lists are unordered, (a, b) ordered; intervals keep ends and openness; matrices compare by entry;
    equations are equal up to a nonzero factor, inequalities up to a positive one (x > 3 is 3 < x).
    Words and multiple choice are case-insensitive: (C) = \\text{(C)} = \\textbf{(C)} = c.
 6) Undefined or empty input (1/0, 0/0, "", unbalanced braces, garbage) equals nothing, not even itself.
How we depart from other checkers (their failures as the issue reports them; we did not rerun them):
 1) Math-Verify misses \\fbox, 45°, √2, π, \\varnothing, \\boxed{5.}; we read them, and are stricter on
    hedges and decimals. Our parser is ~100 lines, not a grammar: exotic LaTeX is unparseable, so wrong.
 2) The Qwen2.5-Math grader's relative tolerance takes 1000001 for 1000000 and 3.14 for pi. Not here.
 3) No eval of model text: sympify/parse_expr eval strings; parse_latex needs ANTLR or lark, and its
    lenient mode reads "x -" as "x". Our own parser builds SymPy objects directly.
 4) SymPy runs in persistent child processes, killed at the deadline: signal.alarm works on the main
    thread only, and a swallowed alarm error is how other trainers scored every answer 0. They are plain
    subprocesses, as multiprocessing's spawn re-runs the caller's top-level code (train.py has no main
    guard) and a daemonic caller may not start its children. Huge powers, big factorials and answers
    over 1000 chars never reach SymPy; they match only the identical string. POSIX only (select).
"""
import argparse, atexit, json, os, re, select, subprocess, sys, threading
from concurrent.futures import ThreadPoolExecutor
from contextlib import suppress
from fractions import Fraction
from sympy import (E, I, S, Abs, Expr, Rational, Symbol, acos, asin, atan, binomial, ceiling, cos, cot,
                   csc, exp, factorial, floor, log, nan, oo, pi, root, sec, simplify, sin, tan, zoo)

MAX_LEN = 1000  # longer answers never reach SymPy: string identity only
TIMEOUTS = 0    # checks that ran out of time since import (batch_reward also returns its own count)

# ---- 1. Extraction: the final answer of a completion.
def _close(s, i):  # s[i] == "{": the index of its matching "}", or None. \{ and \} are skipped
    depth = 0
    for j in range(i, len(s)):
        depth += ((s[j] == "{") - (s[j] == "}")) if s[j - 1:j] != "\\" else 0
        if depth == 0: return j

def extract_answer(text: str, fallback_last_number: bool = True) -> str | None:
    """The final answer, or None. We search the whole text (some trainers only read its tail) and
    take the LAST box: models often box a guess, then correct it."""
    if not isinstance(text, str): return None
    if boxes := list(re.finditer(r"\\(?:boxed|fbox)(?![a-zA-Z])\s*", text)):
        i = boxes[-1].end()
        if text[i:i + 1] == "{":  # unclosed braces give None, not half an answer
            return text[i + 1:j] if (j := _close(text, i)) else None
        return m.group() if (m := re.match(r"[^\s$]+", text[i:])) else None  # "\boxed 5": one token
    for pattern in (r"####\s*(.+)", r"(?i)answer\s+is\s*:?\s*(.+)"):  # GSM8K, then prose
        if found := re.findall(pattern, text):  # cut at the sentence's end: "3.5" stays, "5. So" doesn't
            return re.sub(r"\.\s.*$", "", found[-1]).strip().rstrip(".").strip("*").strip()  # **42**.
    if not fallback_last_number or not (s := text.strip()): return None
    # a short one-line reply of pure math or pure words is its own answer: "\frac{1}{2}" is not 2 ("so 72" is 72)
    words = re.search(r"(?<![\\a-zA-Z{])(?!(?:or|sqrt|pi|sin|cos|tan|log|ln|exp)\b)[a-zA-Z]{2,}", s)
    if len(s) <= 100 and "\n" not in s and not (words and re.search(r"\d", s)): return s
    nums = re.findall(r"-?\d+(?:,\d{3})*(?:\.\d+)?(?:/\d+)?", text)
    return nums[-1] if nums else None

# ---- 2. Normalization: strip decoration, string to string. Regexes only, all of them linear.
_TEXT = r"\\(?:text(?:bf|it|rm|normal)?|mbox|mathrm|mathbf|mathit|operatorname)\s*\{([^{}]*)\}"
_UNICODE = str.maketrans({"π": r"\pi ", "∞": r"\infty ", "≤": r"\le ", "≥": r"\ge ", "≠": r"\ne ",
                          "×": r"\times ", "·": r"\cdot ", "⋅": r"\cdot ", "÷": r"\div ", "−": "-",
                          "∅": r"\varnothing ", "∪": r"\cup ", "±": r"\pm ", "∓": r"\mp "})
_SUBS = [(re.compile(p), r) for p, r in [
    (r"\\(?:left|right|[bB]igg?)(?![a-zA-Z])\s*\.?", ""),  # sizing only; "\left." is nothing at all
    (r"\\[dt]frac(?![a-zA-Z])", r"\\frac"), (r"\\(begin|end)\{[a-zA-Z]*matrix\}", r"\\\1 "), (r"\*\*", "^"),
    (r"(?<=\d)(?:\\,|\{,\}|\\ )(?=\d{3}(?!\d))", ""),  # 1\,000 and 1{,}000 (before \, becomes a space)
    (r"(?<!\\)\\(?:displaystyle|quad|qquad|[!,;: ])|~", " "),  # spacing, but not the \\ row break
    (r"\^\s*\{\s*\\circ\s*\}|\^\s*\\circ|°|\\degree|\\circ", ""),  # degrees
    (r"\\\$|\$|€|£|¥|\\euro|\\pounds", ""), (r"\s+and\s+", ", "),  # currency, $...$; "1 and 2" is a list
    (r"√\s*(\d+(?:\.\d+)?|[a-zA-Z])", r"\\sqrt{\1}"), ("√", r"\\sqrt "),  # √12 is sqrt(12) in plain text
    (r"\\(frac|sqrt)\s*(\d)", r"\\\1{\2}"), (r"(\\frac\{[^{}]*\})\s*(\d)", r"\1{\2}"),  # \frac12, \sqrt3
    (r"(?<![a-zA-Z\\])(sqrt|pi|sin|cos|tan|log|ln|exp|infty)(?![a-zA-Z])", r"\\\1"),  # "sqrt(2)", "2pi"
    (r"(?<![a-zA-Z\\])inf(?:inity)?(?![a-zA-Z])", r"\\infty"), (r"\\mathbb\s*\{?R\}?", r"(-\\infty,\\infty)"),
    # unit words after a number ("5 cm", "12 apples", "3 m^2"). "12 or 14" ends in a digit and stays
    (r"(?<=\d)\s+(?!or\b)[a-zA-Z]{2,}(?:\s+[a-zA-Z]+)*(?:\^\{?\d\}?)?\s*$", "")]]

def normalize(s):
    """-> (normalized string, or None if empty or its braces don't balance; had a percent sign)."""
    if not isinstance(s, str) or _close("{" + s + "}", 0) != len(s) + 1: return None, False
    s = re.sub(r"\\(?:text|mbox)\s*\{([^{}]*\b(?:or|and)\b[^{}]*)\}", r" \1 ", s.translate(_UNICODE))  # hedges
    # \text{} groups are units, dropped with any power ("5 \text{ cm}^2"), unless they are the whole answer
    bare = re.sub(_TEXT + r"(?:\s*\^\s*\{?\d\}?)?", " ", s)
    s = bare if re.search(r"[^\s.,;:]", bare) else re.sub(_TEXT, r"\1", s)
    for pattern, rep in _SUBS: s = pattern.sub(rep, s)
    s, pct = re.sub(r"\s+", " ", re.sub(r"\\?%", "", s)).strip().rstrip(".").strip(), "%" in s
    if re.fullmatch(r"[-+]?\d{1,3}(,\d{3})+(\.\d+)?", s): s = s.replace(",", "")  # 1,000,000: a number
    # "x = 5", "\theta = 30", "x \in [1, 2]": a lone variable before the only "=" is not the answer
    s = re.sub(r"^(?:[a-zA-Z]|\\[a-zA-Z]+)(?:_\{?\w+\}?)?\s*(?:=|\\in(?![a-zA-Z]))\s*(?=[^=]+$)", "", s)
    s = re.sub(r"^(-?)(\d+)\s*\\frac\{(\d+)\}\{(\d+)\}$", r"\1(\2+\3/\4)", s)  # mixed number 2\frac12 = 5/2, not 1
    return (s or None), pct

# ---- 3. The fast path, pure Python: numbers, fractions, words and multiple choice never touch SymPy.
_N = r"[-+]?(?:\d+(?:\.\d+)?|\.\d+)"
_NUMBER = re.compile(rf"([-+]?)(?:\\frac\{{({_N})\}}\{{({_N})\}}|({_N})(?:/({_N}))?)")

def _number(s):  # -> (Fraction, None for x/0; has a "."), or None. MAX_LEN bounds Fraction's digits
    if not (m := _NUMBER.fullmatch(s.replace(" ", ""))): return None
    num, den = (Fraction(m[2]), Fraction(m[3])) if m[2] else (Fraction(m[4]), Fraction(m[5] or "1"))
    return (num / den * (-1 if m[1] == "-" else 1) if den else None), "." in s

def _pct(a, b, pa, pb):  # the pairs to compare: a percent sign on ONE side lets it mean x or x/100
    return [(a, b)] + ([(a / 100, b)] if pa and not pb else []) + ([(a, b / 100)] if pb and not pa else [])

def _quick(pred, truth):
    """All we decide without SymPy. -> (equal, rule, job); job is None once decided, else _deep's args."""
    (p, pp), (t, tp) = normalize(pred), normalize(truth)
    if not p or not t: return False, "empty, unbalanced braces or no answer", None
    if max(len(p), len(t)) > MAX_LEN: return p == t and pp == tp, f"over {MAX_LEN} chars: string identity", None
    if re.search(r"\bor\b", p) and p != t: return False, "hedged answer ('or')", None
    if (a := _number(p)) and (b := _number(t)):
        if a[0] is None or b[0] is None: return False, "division by zero", None
        approx = a[1] or b[1]  # exact numbers must be equal; a decimal only has to be right to 6 places
        ok = any(x == y or (approx and abs(x - y) < Fraction(5, 10**7)) for x, y in _pct(a[0], b[0], pp, tp))
        return ok, "numbers" + (" (decimal, 6 places)" if approx else " (exact)"), None
    if all(mc := [re.fullmatch(r"\(?([a-eA-E])\)?", x) for x in (p, t)]):  # "(C)", "\text{(C)}", "c"
        return mc[0][1].lower() == mc[1][1].lower(), "multiple choice, case-insensitive", None
    # words: text decides. TRAP: SymPy reads "dynamo" as d*y*n*a*m*o = "Monday". (Price: "xy" is a word)
    if any(re.fullmatch(r"[a-zA-Z ]+", x) and re.search(r"[a-zA-Z]{2}", x) for x in (p, t)):
        return p.lower() == t.lower(), "text, case-insensitive", None
    return None, "", [p, t, pp, tp]

# ---- 4. The parser: normalized text -> SymPy objects by recursive descent, never through eval. What SymPy
# has no plain form for is a tuple: ("set", items), ("tuple", items), ("mat", rows), ("iv", left_open,
# a, b, right_open), and ("rel", kind, f) meaning "f = 0", "f != 0", "0 < f" or "0 <= f".

_TOKEN = re.compile(r"\s*(\d+(?:\.\d+)?|\.\d+|[a-zA-Z](?:_\{\w+\}|_\w)?|\\[a-zA-Z]+|\\.|<=|>=|!=|\S)")
_RELS = {"=": "=", "\\ne": "!=", "\\neq": "!=", "!=": "!=", "<": "<", "\\lt": "<", ">": ">", "\\gt": ">",
         "\\le": "<=", "\\leq": "<=", "<=": "<=", "\\ge": ">=", "\\geq": ">=", ">=": ">="}
_FUNCS = {"\\sin": sin, "\\cos": cos, "\\tan": tan, "\\sec": sec, "\\csc": csc, "\\cot": cot,
          "\\arcsin": asin, "\\arccos": acos, "\\arctan": atan, "\\ln": log, "\\log": log, "\\exp": exp}
_PM = Symbol("\\pm")  # a placeholder no input can name: single letters and Greek are the only symbols
_CONST = {"\\pi": pi, "\\infty": oo, "\\emptyset": ("set", []), "\\varnothing": ("set", [])}
_CONST.update({"\\" + g: Symbol(g) for g in "alpha beta gamma delta theta lambda mu phi omega".split()})
_FACTOR = set(_FUNCS) | set(_CONST) | {"\\frac", "\\sqrt", "\\binom", "\\lfloor", "\\lceil", "(", "{"}
_BRACKETS = {"(": ")]", "[": ")]", "{": "}", "\\{": ["\\}"], "|": "|", "\\lfloor": ["\\rfloor"], "\\lceil": ["\\rceil"]}
_ROUND = {"|": Abs, "\\lfloor": floor, "\\lceil": ceiling}

def _E(v):  # arithmetic on expressions only. TRAP: 2*("set", [...]) is Python's tuple repetition
    if not isinstance(v, Expr): raise ValueError("arithmetic on a set, tuple or relation")
    return v

class _Parser:
    """One method per level, loosest first: items (, \\cup =) > expr (+ -) > term (* /) > factor (- ! ^) > atom"""
    def __init__(self, s):
        self.toks, self.i, self.decimal = _TOKEN.findall(s) + [""], 0, False  # "" marks the end
    def eat(self, *toks):  # consume and return the next token if it is one of toks (any, if none given)
        if toks and self.toks[self.i] not in toks: return None
        self.i += 1
        return self.toks[self.i - 1]
    def parse(self):
        items = self.items()
        if self.eat() != "": raise ValueError(f"trailing input at token {self.i}")  # "x -" is not "x"
        return items[0] if len(items) == 1 else ("set", items)  # a bare list "1, 2" is a set
    def items(self):  # "a, b" and "A \cup B" are unordered collections; "a < b" becomes 0 < b - a
        out = []
        while True:
            a = self.expr()
            if op := self.eat(*_RELS):  # a chain like 1 < x < 3 fails in _E: unparseable
                a, b, op = _E(a), _E(self.expr()), _RELS[op]
                a = ("rel", op.replace(">", "<"), b - a if op in ("<", "<=") else a - b)
            out.append(a)
            if not self.eat(",", "\\cup"): return out
    def expr(self):  # "a \pm b" is a + PM*b; _deep makes it the set {a + b, a - b}, so "\pm 5" is not 5
        v = S.Zero if self.toks[self.i] in ("\\pm", "\\mp") else self.term()
        while op := self.eat("+", "-", "\\pm", "\\mp"):
            v, t = _E(v), _E(self.term())
            v = v + t if op == "+" else v - t if op == "-" else v + _PM * t
        return v
    def term(self):
        v = self.factor()
        while True:
            if op := self.eat("*", "\\cdot", "\\times", "/", "\\div"):
                v = _E(v) / _E(self.factor()) if op in ("/", "\\div") else _E(v) * _E(self.factor())
            elif self.toks[self.i] in _FACTOR or self.toks[self.i][:1].isalpha():
                v = _E(v) * _E(self.factor())  # implicit product: 2x, 2\pi, x(y+1). Never "12 14"
            else:
                return v
    def factor(self):
        if op := self.eat("-", "+"): return -_E(self.factor()) if op == "-" else _E(self.factor())  # -x^2 = -(x^2)
        v = self.atom()
        while self.eat("!"):
            if _E(v).is_Integer and v > 1000: raise OverflowError("factorial")  # 1000! has 2568 digits
            v = factorial(v)
        if not self.eat("^"): return v
        b, e = _E(v), _E(self.factor())  # right-associative: 2^3^2 = 2^9
        # the screen: 10^{10^{10}} would have SymPy build a 10-billion-digit integer. We bound
        # |exponent| x bits of the base (rationals), or |exponent| itself (irrationals like sqrt2)
        bits = b.p.bit_length() + b.q.bit_length() if b.is_Rational else 3
        if b.is_number and e.is_Number and abs(e) * bits > 30000: raise OverflowError("power")
        return b**e
    def atom(self):
        tok = self.eat()
        if tok[:1].isdigit() or tok[:1] == ".":
            self.decimal |= "." in tok  # remembered for the 6-decimal-places rule
            return Rational(*Fraction(tok).as_integer_ratio())
        if tok[:1].isalpha():  # one letter is one symbol ("xy" is x*y); e and i are the constants
            return {"e": E, "i": I}.get(tok) or Symbol(re.sub("[{}]", "", tok))
        if tok in _CONST: return _CONST[tok]
        if tok in _BRACKETS:
            items = [] if tok == "\\{" and self.toks[self.i] == "\\}" else self.items()
            if (close := self.eat()) not in _BRACKETS[tok] or not close: raise ValueError(f"unclosed {tok}")
            if tok in _ROUND: return _ROUND[tok](*map(_E, items))  # |x|, \lfloor x \rfloor, \lceil x \rceil
            if len(items) == 1 and tok != "\\{": return items[0]  # (x), [x] and {x} only group
            if len(items) == 2 and tok + close in ("[)", "(]", "[]"): return ("iv", tok == "(", *items, close == ")")
            return ("tuple" if tok in "([" else "set", items)  # (a, b) also compares as an open interval
        if tok in ("\\frac", "\\binom"):
            a, b = _E(self.atom()), _E(self.atom())
            return a / b if tok == "\\frac" else binomial(a, b)
        if tok == "\\sqrt":  # \sqrt{x}, \sqrt[3]{x}
            n = _E(self.atom()) if self.toks[self.i] == "[" else 2
            return root(_E(self.atom()), n)
        if tok in _FUNCS:  # \sin x, \sin(x), \sin^2 x, \log_2 8. A bare \log is the natural log
            base = _E(self.atom()) if self.eat("_") else None
            pw = _E(self.atom()) if self.eat("^") else S.One
            return (_FUNCS[tok](_E(self.factor())) if base is None else log(_E(self.factor()), base))**pw
        if tok == "\\begin":  # "\begin{pmatrix}" (any *matrix) became "\begin" in the normalizer
            rows = [[]]
            while not self.eat("\\end"):
                rows[-1].append(_E(self.expr()))
                if self.eat("\\\\"): rows.append([])
                elif not self.eat("&") and self.toks[self.i] != "\\end": raise ValueError("bad matrix")
            return ("mat", [("tuple", r) for r in rows if r])
        raise ValueError(f"unexpected token {tok!r}")

# ---- 5. Comparing parsed values. Runs in the worker processes only.
def _same(a, b, tol):
    if not isinstance(a, tuple) and not isinstance(b, tuple):
        if a.has(zoo, nan) or b.has(zoo, nan): return False  # 1/0 and 0/0 equal nothing, not even 1/0
        if a == b: return True
        d = a - b
        if tol and d.is_number: return bool(abs(d.evalf(30)) < 5e-7)  # a decimal: right to 6 places
        # exact: the difference simplifies to 0, or (nested radicals SymPy can't simplify) is 0 to 50 digits
        return simplify(d) == 0 or bool(d.is_number and abs(d.evalf(60)) < 1e-50)
    if not (isinstance(a, tuple) and isinstance(b, tuple)): return False
    if {a[0], b[0]} == {"tuple", "iv"}:  # the pair (1, 2) is also the open interval (1, 2)
        a, b = [("iv", True, *v[1], True) if v[0] == "tuple" and len(v[1]) == 2 else v for v in (a, b)]
    if a[0] != b[0]: return False
    if a[0] == "iv": return a[1::3] == b[1::3] and _same(a[2], b[2], tol) and _same(a[3], b[3], tol)
    if a[0] == "rel":  # same kind, and f_a / f_b a nonzero constant (positive for inequalities)
        q = simplify(a[2] / b[2])
        return bool(a[1] == b[1] and q.is_number and q.is_finite and q != 0 and (a[1][0] in "=!" or q > 0))
    if len(xs := a[1]) != len(ys := list(b[1])): return False
    if a[0] != "set": return all(_same(x, y, tol) for x, y in zip(xs, ys))  # tuples, matrix rows: ordered
    for x in xs:  # sets are not: each element of b matches one of a (greedy)
        if (j := next((j for j, y in enumerate(ys) if _same(x, y, tol)), None)) is None: return False
        ys.pop(j)
    return True

def _deep(p, t, pp, tp):
    """The SymPy half of a check. -> (equal, rule). Never raises."""
    try:
        pa, pb = _Parser(p), _Parser(t)
        a, b, tol = pa.parse(), pb.parse(), pa.decimal or pb.decimal  # (left to right: tol comes last)
        a, b = (("set", [v.subs(_PM, 1), v.subs(_PM, -1)]) if isinstance(v, Expr) and v.has(_PM) else v for v in (a, b))
        if not (isinstance(a, Expr) and isinstance(b, Expr)): pp = tp = False  # % only scales plain values
        return any(_same(x, y, tol) for x, y in _pct(a, b, pp, tp)), "sympy" + (" (decimal, 6 places)" if tol else "")
    except OverflowError:  # our screen in factor(): a huge power or factorial. SymPy never saw it
        return p == t and pp == tp, "screened (huge power or factorial): string identity only"
    except Exception as e:  # RecursionError on "((((((...", a TypeError in SymPy...: all wrong answers
        return False, f"unparseable or error: {type(e).__name__}: {e}"[:200]

# ---- 6. Workers: persistent `python verify.py --serve` children, one JSON line in and one out per check.
_lock, _idle, _live = threading.RLock(), [], []  # _idle: free for a job; _live: all alive (for atexit)

class _Worker:
    def __init__(self):
        self.proc = subprocess.Popen([sys.executable, os.path.abspath(__file__), "--serve"],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        self.ready = False
        with _lock: _live.append(self)
    def read(self, seconds):  # one reply, or None when time is up or the child died. A reply is one
        fd = self.proc.stdout.fileno()  # write below PIPE_BUF (4096 bytes), so one read gets all of it
        if not select.select([fd], [], [], seconds)[0]: return None
        return json.loads(chunk) if (chunk := os.read(fd, 65536)) else None
    def ask(self, job, timeout):
        if not self.ready:  # the child imports SymPy (~1 s) before it says "ready": no check pays that
            self.ready = self.read(60) == "ready"
        self.proc.stdin.write(json.dumps(job).encode() + b"\n")
        self.proc.stdin.flush()
        return self.read(timeout)  # the hard bound runs from the moment the job is sent
    def kill(self):
        self.proc.kill()
        self.proc.wait()
        with _lock: _live.remove(self) if self in _live else None

def _remote(job, timeout):
    """_deep in a worker, within `timeout` s of wall clock; safe from any thread. -> (equal, rule)"""
    global TIMEOUTS
    with _lock: w = _idle.pop() if _idle else None
    try:
        out = (w := w or _Worker()).ask(job, timeout)
    except (OSError, ValueError):  # no process, a dead pipe or a garbled reply: same as a timeout
        out = None
    if out is not None:
        with _lock: _idle.append(w)
        return tuple(out)
    if w: w.kill()  # a stuck SymPy can't be interrupted, only killed. The replacement starts now, so
    with suppress(OSError), _lock:  # its SymPy import overlaps whatever the caller does next
        TIMEOUTS += 1
        _idle.append(_Worker())
    return False, f"timeout after {timeout} s (counted in verify.TIMEOUTS)"

@atexit.register
def _shutdown():
    for w in list(_live): w.kill()

# after os.fork the child must not share the parent's workers (two writers on one pipe) or kill them at exit
os.register_at_fork(after_in_child=lambda: globals().update(_lock=threading.RLock(), _idle=[], _live=[]))

def _serve():
    out = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)  # a stray print inside SymPy goes to stderr (devnull), never into our replies
    print('"ready"', file=out, flush=True)
    for line in sys.stdin:  # ends when the parent closes the pipe or dies
        print(json.dumps(_deep(*json.loads(line))), file=out, flush=True)

# ---- 7. The public API.
def _gold(truth):  # the truth is used as given, unless it is a whole solution with a box or ####
    whole = isinstance(truth, str) and re.search(r"\\boxed|\\fbox|####", truth)
    return extract_answer(truth, fallback_last_number=False) if whole else truth

def is_equiv(pred: str, truth: str, timeout: float = 1.5) -> bool:
    """Is the answer `pred` the answer `truth`? Never raises; a timeout is False (and counted)."""
    try:
        eq, _, job = _quick(pred, truth)
        return bool(_remote(job, timeout)[0] if job else eq)
    except Exception:  # we know of nothing that gets here; if something does, it scores 0
        return False

def reward(completion: str, truth: str, timeout: float = 1.5) -> float:
    """1.0 if the final answer of `completion` equals `truth`, else 0.0."""
    return float(is_equiv(extract_answer(completion), _gold(truth), timeout))

def batch_reward(completions: list[str], truths: list[str], timeout: float = 1.5, workers: int = 2):
    """-> (rewards, how many checks timed out). The fast path runs here first; what needs SymPy goes to
    up to `workers` worker processes at once, one thread each (threads suffice: they only wait)."""
    quick = [_quick(extract_answer(c), _gold(t)) for c, t in zip(completions, truths, strict=True)]
    need = [i for i, q in enumerate(quick) if q[2] is not None]
    with ThreadPoolExecutor(max(1, min(workers, len(need)))) as ex:  # starts no thread if need is empty
        deep = dict(zip(need, ex.map(lambda i: _remote(quick[i][2], timeout), need)))
    rewards = [float(deep[i][0] if i in deep else q[0]) for i, q in enumerate(quick)]
    return rewards, sum(r[1].startswith("timeout") for r in deep.values())

def explain(pred: str, truth: str, timeout: float = 1.5) -> dict:
    """What the checker saw and which rule decided; `pred` may be a whole completion."""
    answer, gold = extract_answer(pred), _gold(truth)
    equal, rule, job = _quick(answer, gold)
    equal, rule = _remote(job, timeout) if job else (equal, rule)
    return {"extracted": answer, "truth": gold, "pred_norm": normalize(answer)[0],
            "truth_norm": normalize(gold)[0], "rule": rule, "equal": bool(equal)}

# ---- 8. Command line.
def main(argv=None):
    ap = argparse.ArgumentParser(description="Check a math answer against the truth (see the docstring).")
    ap.add_argument("pred", nargs="?", help="an answer, or a whole completion to extract it from")
    ap.add_argument("truth", nargs="?", help="the ground-truth answer")
    ap.add_argument("--explain", action="store_true", help="print the extracted answer, forms and rule")
    ap.add_argument("--jsonl", help='score a file of {"completion": ..., "truth": ...} lines')
    args = ap.parse_args(argv)
    if not args.jsonl:
        if args.truth is None: ap.error("give PRED and TRUTH, or --jsonl FILE")  # exits 2
        info = explain(args.pred, args.truth, 1.5)
        for k, v in info.items() if args.explain else (): print(f"{k:>10}: {v}")
        print(info["equal"])
        return 0 if info["equal"] else 1
    try:
        with open(args.jsonl, encoding="utf-8", errors="replace") as f: lines = f.read().splitlines()
    except OSError as e:
        ap.error(f"cannot read {args.jsonl}: {e.strerror}")  # exits 2
    pairs = []
    for n, line in enumerate(lines, 1):  # a bad line is reported and skipped, never a crash
        try:
            c, t = (row := json.loads(line))["completion"], row["truth"]
            if not isinstance(c, str) or not isinstance(t, (str, int, float)) or isinstance(t, bool):
                raise TypeError("completion must be a string, truth a string or a number")
            pairs.append((c, str(t)))  # a number is fine as truth: GSM8K files often hold 42, not "42"
        except (ValueError, KeyError, TypeError) as e:  # bad JSON, a missing key, a row that is not an object
            print(f"line {n}: {type(e).__name__}: {e}", file=sys.stderr)
    from tqdm import tqdm  # only this bar needs it
    rewards, timeouts = [], 0
    for i in tqdm(range(0, len(pairs), 64), desc="verify, 64 pairs a step", unit="step"):  # the bar moves
        r, n_out = batch_reward(*zip(*pairs[i:i + 64]), timeout=1.5)
        rewards, timeouts = rewards + r, timeouts + n_out
    print(f"accuracy: {sum(rewards) / max(1, len(rewards)):.4f} ({sum(rewards):.0f}/{len(rewards)})\ntimeouts: {timeouts}")

if __name__ == "__main__":
    sys.exit(_serve() if sys.argv[1:] == ["--serve"] else main())  # --serve: we are a worker (section 6)
