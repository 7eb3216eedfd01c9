"""
verify.py: the answer checker behind every reward. It finds the final answer of a completion and
decides whether it equals the truth, with SymPy behind a hard time limit. It also runs alone:
    python verify.py "\\boxed{\\frac{1}{2}}" "0.5"   prints True, exit 0 (False, exit 1 if not equal)
    python verify.py "45°" "45" --explain            also prints the forms compared and the rule
    python verify.py --jsonl rollouts.jsonl          scores {"completion": ..., "truth": ...} lines
What counts as equal (tests/test_verify.py has equal and near-miss rows for each):
 1) Only the final answer: the last \\boxed{}/\\fbox{} (boxes joined by nothing, commas or "and" are one
    answer set; joined by "or" they are a hedge), else the last "#### x", "the answer is x", "Final
    Answer: x" or "答案是 x", else (switchable) a short one-line reply, or the last $...$ or number,
    whichever comes last. Hedges are wrong: "12 or 14" is not 12, "It is 12 or 14." is not 14, and
    "\\pm 5" is the set {5, -5}, not 5.
 2) Decoration is ignored (units are never converted): \\text{}/\\mbox{} units and "5 cm", degrees,
    currency, \\left/\\right, \\( \\) and \\[ \\], \\dfrac/\\cfrac, \\frac12, \\sqrt3, 1,000 1{,}000 1\\,000
    2,\\!500, a trailing period, markdown bold, "x =" before a value (also "f(x) =", "(a, b) =").
 3) A percent sign on ONE side lets it mean x or x/100 (20\\% = 20, 50\\% = 0.5); never a truth without.
 4) Exact numbers must be exactly equal (1000001 is not 1000000). A decimal meets an exact value if it
    is right to 6 places, |d - x| < 5e-7: 0.333333 is 1/3 and 3.141593 is pi; 0.3333 and 3.14 are not.
 5) The rest goes through SymPy (2\\sqrt2 = \\sqrt8, 2/4 = 1/2, pi, e, i, \\infty, ab = ba). Sets and bare
    lists (commas, ";", "or") are unordered, (a, b) ordered; a union of finite sets is the merged set;
    intervals keep ends and openness, and equal the inequality that defines them ([0, 3) is
    0 \\le x < 3); matrices compare by entry; equations are equal up to a nonzero factor (y = 2x - 1 is
    2x - y - 1 = 0), inequalities up to a positive one (x > 3 is 3 < x). In a chain y = 2+3 = 5 the last
    value counts. Words and multiple choice are case-insensitive: (C) = \\text{(C)} = \\textbf{(C)} = c.
 6) Identical answers are equal once normalized (3:45, 101_2), whatever SymPy would make of them.
    Empty input and unbalanced braces equal nothing, not even themselves; undefined values (1/0, 0/0)
    equal nothing else.
How we depart from other checkers (README "The answer checker" has the measured comparison):
 1) Math-Verify, on our table (tests/test_verify_diff.py), takes the last number of "It could be 12 or
    14." and the last box of "\\boxed{7}, or maybe \\boxed{9}", accepts 1 - 1/e for 1 + 1/e, and compares
    an inequality with an interval only when the prediction is the interval; it misses √2, π written
    as pi, ∞, ∅, \\mathrm{e}, "7 3/4", 1\\,000, 2**3. Ours is no LaTeX grammar (the parser is ~200
    lines): exotic LaTeX is unparseable, so wrong, and a decimal comma (2,74) is a list.
 2) The Qwen2.5-Math grader's relative tolerance takes 1000001 for 1000000 and 3.14 for pi. Not here.
 3) No eval of model text: sympify/parse_expr eval strings; parse_latex needs ANTLR or lark, and its
    lenient mode reads "x -" as "x". Our own parser builds SymPy objects directly.
 4) SymPy runs in persistent child processes that warm up before their first job, are killed at the
    deadline, and get one retry on a warm worker: signal.alarm works on the main thread only, and a
    swallowed alarm error is how other trainers scored every answer 0. They are plain subprocesses, as
    multiprocessing's spawn re-runs the caller's top-level code (train.py has no main guard) and a
    daemonic caller may not start its children, and they die with their caller. Huge powers,
    binomials and factorials and answers over 1000 chars never reach SymPy. POSIX only (select).
"""
import argparse, atexit, ctypes, json, logging, os, queue, re, select, signal, subprocess, sys, threading, time
from concurrent.futures import ThreadPoolExecutor
from contextlib import suppress
from fractions import Fraction
from itertools import accumulate
from sympy import (E, I, S, Abs, Expr, Rational, Symbol, acos, asin, atan, binomial, ceiling, cos, cot,
                   csc, exp, factorial, floor, log, nan, oo, pi, root, sec, simplify, sin, tan, zoo)

MAX_LEN = 1000      # longer answers never reach SymPy (a number may still be decided by Fraction)
MAX_DIGITS = 4000   # longer numbers aren't read by Fraction either (int() refuses over 4300 digits)
MAX_TEXT = 20000    # longer answers skip the normalizer's regexes: compared as raw strings, in linear time
WARM_UP = 60        # s: the longest we wait for a new worker to import SymPy and warm up
TIMEOUTS = 0        # checks that ran out of time twice since import (batch_reward also returns its own count)
_log = logging.getLogger(__name__)

# ---- 1. Extraction: the final answer of a completion. Linear in the length of the text: completions
# can be huge, and this runs in the caller, outside every deadline.
_BOX = re.compile(r"\\(?:boxed|fbox)(?![a-zA-Z])\s*")
_BRACE = re.compile(r"\\.|[{}]", re.S)  # a brace, or an escaped pair (\{, \}, \\) that is not one
_BARE_BOX = re.compile(r"[^\s$]+")      # plain TeX "\boxed 5" boxes one token
_PHRASE = re.compile(r"(?i)####|answer\s+is|answer[\s*]*[:：]|答案\s*[是为]")
_AFTER_PHRASE = re.compile(r"[\s:：]*(?:\*\*\s+)?")  # "**Final Answer:** 12": the bold closes
_NAME_EQ_END = re.compile(r"(?:[a-zA-Z]|\\[a-zA-Z]+)(?:_\{?\w+\}?)?\s*=\s*$")
_JOIN_NOISE = re.compile(r"\\(?:text|textrm|mbox)\s*\{|\\[()\[\]]|\\q?quad|\\[,;:! ]|[\s${},;&()]")
_LAST_NUMBER = re.compile(r"(?<![a-zA-Z])-?(?:\d+(?:,\d{3})*(?:\.\d+)?|\.\d+)(?:/\d+)?")  # not the 2 of "AZYUK2A"
_WORDY = re.compile(r"(?<![\\a-zA-Z{])(?!(?:or|sqrt|pi|sin|cos|tan|log|ln|exp)\b)[a-zA-Z]{2,}")
_MATH = re.compile(r"\$\$|(?<!\\)\$|\\[()\[\]]")  # the delimiters of $...$, $$...$$, \(...\), \[...\]
_CLOSER = {"$$": "$$", "$": "$", "\\(": "\\)", "\\[": "\\]"}
# prose we don't pick a number out of: "It is 12 or 14.", "The answer is 7, not 9", "maybe 5"
_HEDGE = re.compile(r"(?i)\b(?:or|not|either|maybe|perhaps)\b")
_TEXT = r"\\(?:text(?:bf|it|rm|normal|sf|tt)?|mbox|mathrm|mathbf|mathit|mathsf|operatorname)\s*\{([^{}]*)\}"

def _close(s, i, end):
    """s[i] == "{": the index of its matching "}" before `end`, or None."""
    depth = 0
    for m in _BRACE.finditer(s, i, end):
        depth += (m.group() == "{") - (m.group() == "}")
        if depth == 0:
            return m.start()
    return None

def _box(text, m, end):
    """(content, index after it) of the box whose \\boxed is `m`, or None if it does not close before `end`."""
    i = m.end()
    if not text.startswith("{", i):
        token = _BARE_BOX.match(text, i, end)
        return (token.group(), token.end()) if token else None
    j = _close(text, i, end)
    return (text[i + 1:j], j + 1) if j is not None else None

def _joiner(between):
    """What joins two boxes: ", " (nothing, commas, "and", \\quad: one answer set, "x=\\boxed{4} and
    x=\\boxed{-1}"), " or " (a hedge, "\\boxed{7} or \\boxed{9}"), or None (prose: the boxes are separate)."""
    words = _JOIN_NOISE.sub(" ", _NAME_EQ_END.sub(" ", between)).lower().split()
    if "or" in words:
        return " or "
    return ", " if words in ([], ["and"]) else None

def _last_boxes(text, boxes):
    """The last box, with the boxes just before it that _joiner says belong to the same answer."""
    last = _box(text, boxes[-1], len(text))
    if last is None:  # unclosed braces give None, not half an answer
        return None
    parts, joins = [last[0]], []
    for k in range(len(boxes) - 2, -1, -1):  # each box is read up to the next one: linear in all
        nxt = boxes[k + 1].start()
        box = _box(text, boxes[k], nxt)
        if box is None or nxt - box[1] > 40:
            break
        join = _joiner(text[box[1]:nxt])
        if join is None:
            break
        parts.append(box[0])
        joins.append(join)
    if len(set(parts)) == 1:  # "\boxed{4} ... \boxed{4}": one answer said twice
        return parts[0]
    parts.reverse()
    joins.reverse()
    return parts[0] + "".join(j + p for j, p in zip(joins, parts[1:]))

def _prose(s):  # words and math together: "The largest $n$ is 34", "3 apples"
    return bool(_WORDY.search(re.sub(_TEXT, " ", s))) and bool(re.search(r"[\d$]", s))

def _last_math(text):
    """(content, start, end) of the last complete $...$, $$...$$, \\(...\\) or \\[...\\] span, or None."""
    last, opener, start = None, None, 0
    for m in _MATH.finditer(text):  # one pass, pairing delimiters left to right
        if opener is None and m.group() in _CLOSER:
            opener, start = m.group(), m.end()
        elif opener is not None and m.group() == _CLOSER[opener]:
            last, opener = (start, m.start()), None
    return (text[last[0]:last[1]].strip(), *last) if last else None

def _last_value(text):
    """The last math span or number of a text, whichever comes later ("the ordered pair $(x, y)$ that
    solves it is $(7, 6)$", "Jane started 3 hours ago"). If its sentence says "or", the sentence: a hedge."""
    span = _last_math(text)
    number = None
    for number in _LAST_NUMBER.finditer(text):
        pass
    if span and span[0] and (number is None or number.start() < span[2]):
        answer, i, j = span
    elif number:
        answer, i, j = number.group(), number.start(), number.end()
    else:
        return None
    start = max(text.rfind(c, 0, i) for c in (". ", "! ", "? ", "\n")) + 1
    ends = [k for k in (text.find(c, j) for c in (". ", "! ", "? ", "\n")) if k >= 0]
    sentence = text[start:min(ends, default=len(text))]
    return sentence.strip().rstrip(".") if _HEDGE.search(sentence) else answer  # "It is 12 or 14."

def _after_phrase(text, i):
    """The answer after an answer phrase: the rest of its line, up to the end of the sentence."""
    start = _AFTER_PHRASE.match(text, i).end()  # "Final Answer:\n**12**": may start on the next line
    end = text.find("\n", start)
    answer = re.split(r"\.\s|。", text[start:end if end >= 0 else len(text)], maxsplit=1)[0]  # "3.5" stays
    bold = re.match(r"\*\*(.+?)\*\*", answer)  # "Final Answer: **12** apples"
    answer = (bold.group(1) if bold else answer).strip().rstrip(".").strip("*").strip()
    if not bold and _prose(answer) and not _HEDGE.search(answer):  # "Final Answer: The largest $n$ is 34"
        after_is = answer.rsplit(" is ", 1)[-1]
        answer = after_is if re.search(r"[\d$]", after_is) and after_is != answer else _last_value(answer)
    return answer or None

def extract_answer(text: str, fallback_last_number: bool = True) -> str | None:
    """The final answer, or None. We search the whole text (some trainers only read its tail) and
    take the LAST box: models often box a guess, then correct it."""
    if not isinstance(text, str):
        return None
    boxes = list(_BOX.finditer(text))
    if boxes:
        return _last_boxes(text, boxes)
    phrase = None
    for phrase in _PHRASE.finditer(text):  # GSM8K's "#### 72", "The answer is 7", "Final Answer: **12**"
        pass
    if phrase is not None:
        return _after_phrase(text, phrase.end())
    s = text.strip()
    if not fallback_last_number or not s:
        return None
    # a short one-line reply of pure math or pure words is its own answer: "\frac{1}{2}" is not 2 ("so 72"
    # is 72). Words in \text{} are units: "\frac{1}{2} \text{ inch}" is a reply of pure math
    if len(s) <= 100 and "\n" not in s and not (_WORDY.search(re.sub(_TEXT, " ", s)) and re.search(r"\d", s)):
        return s
    return _last_value(text)

# ---- 2. Normalization: strip decoration, string to string. Every regex here is linear: whitespace
# runs are squeezed to one space first, so no \s* can backtrack over a long run, and no pattern has
# two unbounded parts that can trade characters. Answers over MAX_TEXT chars skip them all.
_UNICODE = str.maketrans({"π": r"\pi ", "∞": r"\infty ", "≤": r"\le ", "≥": r"\ge ", "≠": r"\ne ",
                          "×": r"\times ", "·": r"\cdot ", "⋅": r"\cdot ", "÷": r"\div ", "−": "-",
                          "∅": r"\varnothing ", "∪": r"\cup ", "±": r"\pm ", "∓": r"\mp ", "∈": r"\in ",
                          "，": ",", "：": ":", "；": ";"})
_SCALE = {"thousand": 3, "million": 6, "billion": 9, "trillion": 12}
_SUBS = [(re.compile(p), r) for p, r in [
    (r"^\*\*(.*)\*\*$", r"\1"),  # a markdown-bold reply "**12**" (before ** becomes a power)
    (r"\\(?:left|right|[bB]igg?)(?![a-zA-Z])\s*\.?", ""),  # sizing only; "\left." is nothing at all
    (r"\\[dtc]frac(?![a-zA-Z])", r"\\frac"),  # \dfrac, \tfrac, \cfrac: all one fraction
    (r"\\begin\{array\}\{[^{}]*\}|\\begin\{[a-zA-Z]*matrix\}", r"\\begin "),  # pmatrix, bmatrix, matrix, array
    (r"\\end\{(?:array|[a-zA-Z]*matrix)\}", r"\\end "), (r"\*\*", "^"),  # "2**3" from code-trained models
    # thousands: 1\,000, 1{,}000, 1\ 000 and 2,\!500 (before \, and \! become spaces)
    (r"(?<=\d) ?(?:\\,|\{ ?, ?\}|\\ |,\\! ?)(?=\d{3}(?!\d))", ""),
    (r"(?<!\\)\\(?:displaystyle|textstyle|quad|qquad|[!,;: ])|~", " "),  # spacing, but not the \\ row break
    (r"\^\s*\{\s*\\circ\s*\}|\^\s*\\circ|°\s*[CF]\b|°|\\degree|\\circ", ""),  # degrees
    (r"€|£|¥|\\euro|\\pounds", ""), (r",?\s+and\s+", ", "),  # currency; "1 and 2", "19, 46, and 82": a list
    (r"√\s*(\d+(?:\.\d+)?|[a-zA-Z])", r"\\sqrt{\1}"), ("√", r"\\sqrt "),  # √12 is sqrt(12) in plain text
    (r"\\frac\s*(\d)\s*(\d)", r"\\frac{\1}{\2}"), (r"\\sqrt\s*(\d)", r"\\sqrt{\1}"),  # \frac12, \sqrt3 (TeX reads one digit)
    (r"(?<![a-zA-Z\\])(sqrt|pi|sin|cos|tan|log|ln|exp|infty)(?![a-zA-Z])", r"\\\1"),  # "sqrt(2)", "2pi"
    (r"(?<![a-zA-Z\\])inf(?:inity)?(?![a-zA-Z])", r"\\infty"), (r"\\mathbb\s*\{?R\}?", r"(-\\infty,\\infty)"),
    (r"(?<=\d) ?(thousand|million|billion|trillion)\b", lambda m: r" \cdot 10^{%d}" % _SCALE[m[1]]),  # "2 million"
    # unit words after a number ("5 cm", "12 apples", "3 m^2"). "12 or 14" ends in a digit and stays
    (r"(?<=\d)\s+(?!or\b)[a-zA-Z]{2,}(?:\s+[a-zA-Z]+)*(?:\^\{?\d\}?)?\s*$", "")]]

def _balanced(s):  # every unescaped { closed, no } too many. C-speed passes: this runs on huge strings too
    braces = re.sub(r"[^{}]", "", re.sub(r"\\.", "", s, flags=re.S))
    depths = accumulate(map({"{": 1, "}": -1}.get, braces))  # the nesting depth after each brace
    return braces.count("{") == braces.count("}") and min(depths, default=0) >= 0

def _hedge_or_unit(m):  # \text{ or } is a word of the answer ("12 \text{ or } 14"); other \text{} is handled below
    return f" {m.group(1)} " if re.search(r"\b(?:or|and)\b", m.group(1)) else m.group()

def _mixed(m):
    whole, num, den = m[3], m[4] or m[6], m[5] or m[7]
    return f"{m[1] or ''}{m[2]}({whole}+{num}/{den})"

def normalize(s):
    """-> (normalized string, or None if empty or its braces don't balance; had a percent sign)."""
    if not isinstance(s, str) or not _balanced(s):
        return None, False
    s = " ".join(s.translate(_UNICODE).split())  # first: squeeze every whitespace run to one space
    if len(s) > MAX_TEXT:  # bounded before any regex runs
        return s or None, False
    s = re.sub(r"\\\$|(?<!\\)\$|(?<!\\)\\[()\[\]]", " ", s)  # $...$, \(...\), \[...\] around the answer; \$5
    s = re.sub(r"\\(?:mathrm|text|operatorname)\s*\{\s*([ei])\s*\}", r"\1", s)  # \mathrm{e}, \mathrm{i}: constants
    s = re.sub(_TEXT, _hedge_or_unit, s)
    # \text{} groups are units, dropped with any power ("5 \text{ cm}^2"), unless they are the whole answer
    bare = re.sub(_TEXT + r"(?:\s*\^\s*\{?\d\}?)?", " ", s)
    s = bare if re.search(r"[^\s.,;:]", bare) else re.sub(_TEXT, r"\1", s)
    for pattern, rep in _SUBS:
        s = pattern.sub(rep, s)
    pct = "%" in s
    s = " ".join(re.sub(r"\\?%", "", s).split()).rstrip(".").strip()
    if re.fullmatch(r"[-+]?\d{1,3}([, ]\d{3})+(\.\d+)?", s):  # 1,000,000 and 1 000 000: one number
        s = re.sub(r"[, ]", "", s)
    # mixed numbers: 2\frac12 and "7 3/4" are 5/2 and 31/4, not 1 and 21/4
    s = re.sub(r"^([^=]*=\s*)?(-?)(\d+)(?:\s*\\frac\{(\d+)\}\{(\d+)\}| (\d+)/(\d+))$", _mixed, s)
    return (s or None), pct

# ---- 3. The fast path, pure Python: numbers, fractions, words and multiple choice never touch SymPy.
_N = r"[-+]?(?:\d+(?:\.\d+)?|\.\d+)"
_NUMBER = re.compile(rf"([-+]?)(?:\\frac\{{({_N})\}}\{{({_N})\}}|({_N})(?:/({_N}))?)")
_NAMED = re.compile(r"^(?:[a-zA-Z]|\\[a-zA-Z]+)(?:_\{?\w+\}?)?\s*(?:=|\\in(?![a-zA-Z]))\s*(?=[^=<>]+$)")
_SHORT_WORDS = {"yes", "no", "on", "off", "odd", "not", "all", "any", "one", "two", "six", "ten", "and", "or"}
_LIST_MARK = re.compile(r",|;|\bor\b|\\pm|\\mp|\\cup")

def _number(s):  # -> (Fraction, None for x/0; has a "."), or None. Spaces only around a sign or a slash
    m = _NUMBER.fullmatch(re.sub(r"\s*([-+/])\s*", r"\1", s))
    if not m:
        return None
    num, den = (Fraction(m[2]), Fraction(m[3])) if m[2] else (Fraction(m[4]), Fraction(m[5] or "1"))
    return (num / den * (-1 if m[1] == "-" else 1) if den else None), "." in s

def _pct(a, b, pa, pb):  # the pairs to compare: a percent sign on ONE side lets it mean x or x/100
    return [(a, b)] + ([(a / 100, b)] if pa and not pb else []) + ([(a, b / 100)] if pb and not pa else [])

def _is_word(s):  # "Monday", "no solution", "yes": text. "ab", "xy": a product of letters, for SymPy
    if not re.fullmatch(r"[a-zA-Z ]+", s):
        return False
    return bool(re.search(r"[a-zA-Z]{4}", s)) or any(w.lower() in _SHORT_WORDS for w in s.split())

def _quick(pred, truth):
    """All we decide without SymPy. -> (equal, rule, job); job is None once decided, else _deep's args."""
    (p, pp), (t, tp) = normalize(pred), normalize(truth)
    if not p or not t:
        return False, "empty, unbalanced braces or no answer", None
    if p == t and pp == tp:
        return True, "identical after normalization", None
    pv, tv = _NAMED.sub("", p), _NAMED.sub("", t)  # "x = 5" is 5 here; SymPy sees the name (section 5)
    if max(len(pv), len(tv)) <= MAX_DIGITS:
        a, b = _number(pv), _number(tv)
        if a and b:
            if a[0] is None or b[0] is None:
                return False, "division by zero", None
            approx = a[1] or b[1]  # exact numbers must be equal; a decimal only has to be right to 6 places
            ok = any(x == y or (approx and abs(x - y) < Fraction(5, 10**7)) for x, y in _pct(a[0], b[0], pp, tp))
            return ok, "numbers" + (" (decimal, 6 places)" if approx else " (exact)"), None
    if max(len(p), len(t)) > MAX_LEN:
        return False, f"over {MAX_LEN} chars: identical strings only", None
    if re.search(r"\bor\b", p) and not _LIST_MARK.search(t):  # "7 or 9" hedges against a single truth
        return False, "hedged answer ('or')", None
    mc = [re.fullmatch(r"\(?([a-eA-E])\)?", x) for x in (pv, tv)]  # "(C)", "\text{(C)}", "c"
    if mc[0] and mc[1]:
        return mc[0][1].lower() == mc[1][1].lower(), "multiple choice, case-insensitive", None
    # words: text decides. TRAP: SymPy reads "dynamo" as d*y*n*a*m*o = "Monday"
    if _is_word(pv) or _is_word(tv):
        return pv.lower() == tv.lower(), "text, case-insensitive", None
    return None, "", [p, t, pp, tp]

# ---- 4. The parser: normalized text -> SymPy objects by recursive descent, never through eval. What SymPy
# has no plain form for is a tuple: ("set", items), ("tuple", items), ("mat", rows), ("ratio", items),
# ("iv", left_open, a, b, right_open), ("union", parts), ("rel", kind, f) meaning "f = 0", "f != 0",
# "0 < f" or "0 <= f", ("chain", rels) for 0 \le x < 3, and ("named", value, equation) for "x = 5".
_TOKEN = re.compile(r"\s*(\d+(?:\.\d+)?|\.\d+|(?<![a-zA-Z])or(?![a-zA-Z])|[a-zA-Z](?:_\{\w+\}|_\w)?"
                    r"|\\[a-zA-Z]+|\\.|<=|>=|!=|\S)")
_RELS = {"=": "=", "\\approx": "~", "\\ne": "!=", "\\neq": "!=", "!=": "!=", "<": "<", "\\lt": "<",
         ">": ">", "\\gt": ">", "\\le": "<=", "\\leq": "<=", "\\leqslant": "<=", "<=": "<=", "\\ge": ">=",
         "\\geq": ">=", "\\geqslant": ">=", ">=": ">=", "\\in": "in"}
_FUNCS = {"\\sin": sin, "\\cos": cos, "\\tan": tan, "\\sec": sec, "\\csc": csc, "\\cot": cot,
          "\\arcsin": asin, "\\arccos": acos, "\\arctan": atan, "\\ln": log, "\\log": log, "\\exp": exp}
_PM = Symbol("\\pm")  # a placeholder no input can name: single letters and Greek are the only symbols
_GREEK = "alpha beta gamma delta epsilon theta lambda mu phi omega".split()
_CONST = {"\\pi": pi, "\\infty": oo, "\\emptyset": ("set", []), "\\varnothing": ("set", [])}
_CONST.update({"\\" + g: Symbol(g) for g in _GREEK})
_FACTOR = set(_FUNCS) | set(_CONST) | {"\\frac", "\\sqrt", "\\binom", "\\lfloor", "\\lceil", "(", "{"}
_BRACKETS = {"(": ")]", "[": ")]", "{": "}", "\\{": ["\\}"], "|": "|", "\\lfloor": ["\\rfloor"], "\\lceil": ["\\rceil"]}
_ROUND = {"|": Abs, "\\lfloor": floor, "\\lceil": ceiling}
# what may stand left of "=" as a name, over token classes (L: a letter or Greek, U: a capital): x, f(x),
# (a, b), A:B, and a segment AB (but not xy: "xy = 4" is an equation)
_NAME = re.compile(r"[LU]|[LU]\([LU](,[LU])*\)|\([LU](,[LU])*\)|[LU](:[LU])+|UUU?")

def _E(v):  # arithmetic on expressions only. TRAP: 2*("set", [...]) is Python's tuple repetition
    if not isinstance(v, Expr):
        raise ValueError("arithmetic on a set, tuple or relation")
    return v

def _rel(a, op, b):  # one relation as ("rel", kind, f): "a < b" is 0 < b - a, "a >= b" is 0 <= a - b
    a, b = _E(a), _E(b)
    if op == "in":
        raise ValueError("\\in needs a name on its left")
    if op in ("<", "<="):
        return ("rel", op, b - a)
    if op in (">", ">="):
        return ("rel", op.replace(">", "<"), a - b)
    return ("rel", op, a - b)

def _relation(xs, ops, named):
    """What the relation signs of one list item make of its operands xs."""
    if "~" in ops[1:]:  # "x = 1/3 \approx 0.33": the exact value before the first \approx counts
        k = ops.index("~", 1)
        xs, ops = xs[:k + 1], ops[:k]
    ops = ["=" if op == "~" else op for op in ops]  # "x \approx 11" names 11
    if not ops:
        return xs[0]
    if ops == ["in"] and named:  # "x \in [1, 2]": the set is the answer
        return ("named", xs[1], None)
    # "x = 5", "g(t) = 3t-2", "(a,b) = (1,4)", "y = 2+3 = 5", "2+3 = 5": the last value is the answer.
    # We keep the equation too, to meet "2x - y - 1 = 0" when the truth is an equation
    computed = all(isinstance(x, Expr) and not x.free_symbols for x in xs)
    if set(ops) == {"="} and (named or computed or len(xs) > 2):
        equation = ("rel", "=", xs[0] - xs[-1]) if all(isinstance(x, Expr) for x in xs) else None
        return ("named", xs[-1], equation)
    rels = [_rel(a, op, b) for a, op, b in zip(xs, ops, xs[1:])]
    return rels[0] if len(rels) == 1 else ("chain", rels)  # "0 \le x < 3", "a < b < c"

def _screen_power(b, e):
    # 10^{10^{10}} would have SymPy build a 10-billion-digit integer. We bound |exponent| x bits of the
    # base (rationals), or |exponent| itself (irrationals like sqrt2)
    bits = b.p.bit_length() + b.q.bit_length() if b.is_Rational else 3
    if b.is_number and e.is_Number and abs(e) * bits > 30000:
        raise OverflowError("power")

def _screen_binomial(n, k):  # \binom{10^{12}}{10^{11}} kept a worker busy for 11 minutes
    if n.is_Integer and k.is_Integer and min(k, n - k) * n.p.bit_length() > 30000:
        raise OverflowError("binomial")
    if n.is_number and k.is_number and not (n.is_Integer and k.is_Integer) and max(abs(n), abs(k)) > 10**4:
        raise OverflowError("binomial")  # gamma functions of huge arguments

class _Parser:
    """One method per rule of this grammar, loosest first; each names the model output it is for.
        answer := list END
        list   := item (("," | ";" | "or") item)*             "1, 2"  "-12; -11"  "x = 2 or x = -2"
        item   := union (REL union)*                          "x > 3"  "0 \\le x < 3"  "y = 2+3 = 5"  "x \\in [1,2]"
        union  := ratio ("\\cup" ratio)*                      "(-\\infty, 1) \\cup (2, \\infty)"
        ratio  := expr (":" expr)*                            "3:45"  "A:B = 2:5"
        expr   := ["\\pm"] term (("+" | "-" | "\\pm" | "\\mp") term)*   "1 \\pm \\sqrt{2}"
        term   := factor ([ "*" | "\\cdot" | "\\times" | "/" | "\\div" ] factor)*   "2x", "x(y+1)", "ab"
        factor := ("-" | "+") factor | atom "!"* ["^" factor]   "-x^2" is -(x^2), "2^3^2" is 2^9, "5!"
        atom   := number | letter | \\greek | \\pi | \\infty | \\emptyset | bracketed list
                | \\frac atom atom | \\binom atom atom | \\sqrt ["[" expr "]"] atom
                | function ["_" atom] ["^" atom] factor | \\begin rows \\end
    """
    def __init__(self, s):
        self.toks = _TOKEN.findall(s) + [""]  # "" marks the end
        self.i = 0
        self.decimal = False  # seen a decimal point: the 6-places rule applies
    def peek(self):
        return self.toks[self.i]
    def eat(self, *toks):  # consume and return the next token if it is one of toks (any, if none given)
        if toks and self.toks[self.i] not in toks:
            return None
        self.i += 1
        return self.toks[self.i - 1]
    def is_name(self, i, j):  # do tokens i..j read as a name: x, x_1, \theta, f(x), (a, b), A:B, AB
        classes = []
        for t in self.toks[i:j]:
            letter = re.fullmatch(r"[a-zA-Z](_.*)?", t) or t[1:] in _GREEK
            classes.append("U" if re.fullmatch(r"[A-Z]", t) else "L" if letter else t)
        return bool(_NAME.fullmatch("".join(classes)))

    def answer(self):
        items = self.list()
        if self.eat() != "":
            raise ValueError(f"trailing input at token {self.i}")  # "x -" is not "x"
        return items[0] if len(items) == 1 else ("set", items)  # a bare list "1, 2" is a set
    def list(self):
        items = [self.item()]
        while self.eat(",", ";", "or"):  # "or" joins roots: "x = 2 or x = -2" is {2, -2} (a hedge against 2)
            items.append(self.item())
        return items
    def item(self):
        start = self.i
        xs, ops = [self.union()], []
        name_end = self.i
        while self.peek() in _RELS:
            ops.append(_RELS[self.eat()])
            xs.append(self.union())
        return _relation(xs, ops, self.is_name(start, name_end))
    def union(self):
        parts = [self.ratio()]
        while self.eat("\\cup"):
            parts.append(self.ratio())
        return parts[0] if len(parts) == 1 else ("union", parts)
    def ratio(self):
        parts = [self.expr()]
        while self.eat(":"):
            parts.append(_E(self.expr()))
        return parts[0] if len(parts) == 1 else ("ratio", [_E(parts[0])] + parts[1:])
    def expr(self):  # "a \pm b" is a + PM*b; _shape makes it the set {a + b, a - b}, so "\pm 5" is not 5
        v = S.Zero if self.peek() in ("\\pm", "\\mp") else self.term()
        while True:
            op = self.eat("+", "-", "\\pm", "\\mp")
            if op is None:
                return v
            v, t = _E(v), _E(self.term())
            v = v + t if op == "+" else v - t if op == "-" else v + _PM * t
    def term(self):
        v = self.factor()
        while True:
            op = self.eat("*", "\\cdot", "\\times", "/", "\\div")
            if op in ("/", "\\div"):
                v = _E(v) / _E(self.factor())
            elif op or self.peek() in _FACTOR or (self.peek()[:1].isalpha() and self.peek() != "or"):
                v = _E(v) * _E(self.factor())  # implicit product: 2x, 2\pi, x(y+1), ab. Never "12 14"
            else:
                return v
    def factor(self):
        op = self.eat("-", "+")
        if op:  # -x^2 = -(x^2)
            return -_E(self.factor()) if op == "-" else _E(self.factor())
        v = self.atom()
        while self.eat("!"):
            if _E(v).is_number and abs(v) > 1000:  # 1000! has 2568 digits
                raise OverflowError("factorial")
            v = factorial(v)
        if not self.eat("^"):
            return v
        b, e = _E(v), _E(self.factor())  # right-associative: 2^3^2 = 2^9
        _screen_power(b, e)
        return b**e
    def atom(self):
        tok = self.eat()
        if tok[:1].isdigit() or tok[:1] == ".":
            self.decimal |= "." in tok  # remembered for the 6-decimal-places rule
            return Rational(*Fraction(tok).as_integer_ratio())
        if tok[:1].isalpha() and tok != "or":  # one letter is one symbol ("xy" is x*y); e and i are the constants
            return {"e": E, "i": I}.get(tok) or Symbol(re.sub("[{}]", "", tok))
        if tok in _CONST:
            return _CONST[tok]
        if tok in _BRACKETS:
            return self.bracketed(tok)
        if tok in ("\\frac", "\\binom"):
            a, b = _E(self.atom()), _E(self.atom())
            if tok == "\\frac":
                return a / b
            _screen_binomial(a, b)
            return binomial(a, b)
        if tok == "\\sqrt":  # \sqrt{x}, \sqrt[3]{x}
            n = _E(self.atom()) if self.peek() == "[" else 2
            return root(_E(self.atom()), n)
        if tok in _FUNCS:  # \sin x, \sin(x), \sin^2 x, \log_2 8. A bare \log is the natural log
            base = _E(self.atom()) if self.eat("_") else None
            power = _E(self.atom()) if self.eat("^") else S.One
            arg = _E(self.factor())
            return (_FUNCS[tok](arg) if base is None else log(arg, base))**power
        if tok == "\\begin":  # "\begin{pmatrix}" (any *matrix, array) became "\begin" in the normalizer
            return self.matrix()
        raise ValueError(f"unexpected token {tok!r}")
    def bracketed(self, tok):  # (a, b) [a, b) \{a, b\} |x| \lfloor x \rfloor ...: what the brackets make of the list
        items = [] if tok == "\\{" and self.peek() == "\\}" else self.list()
        close = self.eat()
        if not close or close not in _BRACKETS[tok]:
            raise ValueError(f"unclosed {tok}")
        if tok in _ROUND:
            return _ROUND[tok](*map(_E, items))  # |x|, \lfloor x \rfloor, \lceil x \rceil
        if len(items) == 1 and tok != "\\{":
            return items[0]  # (x), [x] and {x} only group
        if len(items) == 2 and tok + close in ("[)", "(]", "[]"):
            return ("iv", tok == "(", *items, close == ")")
        return ("tuple" if tok in "([" else "set", items)  # (a, b) also compares as an open interval
    def matrix(self):  # rows of "&"-separated entries, "\\" between rows; a trailing "\\" is fine
        rows = [[]]
        while not self.eat("\\end"):
            rows[-1].append(_E(self.expr()))
            if self.eat("\\\\"):
                rows.append([])
            elif not self.eat("&") and self.peek() != "\\end":
                raise ValueError("bad matrix")
        return ("mat", [("tuple", r) for r in rows if r])

# ---- 5. Comparing parsed values. Runs in the worker processes only.
def _kind(v):
    return "expr" if isinstance(v, Expr) else v[0]

def _shape(v):
    """One form per meaning before comparing: "1 \\pm 2" -> {3, -1}; "\\{1\\} \\cup \\{2, 3\\}" -> {1, 2, 3};
    "(-\\infty, 1) \\cup (2, \\infty)" -> a set of two intervals. Repeated members count once."""
    if isinstance(v, Expr):
        return ("set", [v.subs(_PM, 1), v.subs(_PM, -1)]) if v.has(_PM) else v
    if v[0] == "named":
        return ("named", _shape(v[1]), v[2])
    if v[0] not in ("set", "union"):
        return v
    members = []
    for x in v[1]:
        if isinstance(x, Expr) and x.has(_PM):  # "\{1 \pm \sqrt5, -2\}": three roots
            members += [x.subs(_PM, 1), x.subs(_PM, -1)]
        elif v[0] == "union" and _kind(x) == "set":  # a union of finite sets is the merged set
            members += [_shape(y) for y in x[1]]
        else:
            members.append(_shape(x))
    unique = []
    for m in members:  # (type first: SymPy would try to convert a tuple to compare it)
        if not any(type(m) is type(u) and m == u for u in unique):
            unique.append(m)
    return ("set", unique)

def _half_line(rel):
    """("rel", kind, a*x + b) with a, b numbers -> (x, the set it defines), else None: "x \\le 2" is
    (-oo, 2], "2x > 6" is (3, oo), "x \\ne 1" is (-oo, 1) u (1, oo)."""
    kind, f = rel[1], rel[2].expand()
    if len(f.free_symbols) != 1 or kind == "=":
        return None
    x = next(iter(f.free_symbols))
    a = f.diff(x)
    if not a.is_number or not a.is_nonzero or (f - a * x).has(x):
        return None
    c = -(f - a * x) / a  # the end point
    if kind == "!=":
        return x, ("set", [("iv", True, -oo, c, True), ("iv", True, c, oo, True)])
    if a.is_positive is None:
        return None
    opened = kind == "<"
    return x, (("iv", opened, c, oo, True) if a.is_positive else ("iv", True, -oo, c, opened))

def _interval(v):
    """A relation or a two-sided chain in one variable as the interval it defines, or None."""
    if v[0] == "rel":
        half = _half_line(v)
        return half[1] if half else None
    halves = [_half_line(r) for r in v[1]]
    if len(halves) != 2 or None in halves or halves[0][0] != halves[1][0]:
        return None
    (_, a), (_, b) = halves
    lo, hi = (a, b) if a[3] == oo else (b, a)  # "0 \le x < 3": [0, oo) meets (-oo, 3)
    if lo[0] != "iv" or hi[0] != "iv" or lo[3] != oo or hi[2] != -oo:
        return None
    return ("iv", lo[1], lo[2], hi[3], hi[4])

def _same_expr(a, b, tol):
    if a.has(zoo, nan) or b.has(zoo, nan):
        return False  # 1/0 and 0/0 equal nothing
    if a == b:
        return True
    d = a - b
    if tol and d.is_number:
        return bool(abs(d.evalf(30)) < 5e-7)  # a decimal: right to 6 places
    # exact: the difference simplifies to 0, or (nested radicals SymPy can't simplify) is 0 to 50 digits
    return simplify(d) == 0 or bool(d.is_number and abs(d.evalf(60)) < 1e-50)

def _same_unordered(xs, ys, tol):  # each element of ys matches one of xs (greedy)
    ys = list(ys)
    if len(xs) != len(ys):
        return False
    for x in xs:
        j = next((j for j, y in enumerate(ys) if _same(x, y, tol)), None)
        if j is None:
            return False
        ys.pop(j)
    return True

def _same(a, b, tol):
    ka, kb = _kind(a), _kind(b)
    if "named" in (ka, kb):  # "x = 5" vs 5: the name is decoration. Against an equation, the equation counts
        if ka == kb:
            return _same(a[1], b[1], tol) or (a[2] is not None and b[2] is not None and _same(a[2], b[2], tol))
        named, other = (a, b) if ka == "named" else (b, a)
        if _kind(other) in ("rel", "chain") and named[2] is not None and _same(named[2], other, tol):
            return True
        return _same(named[1], other, tol)  # "x \in [-2, 7]" vs "-2 \le x \le 7" too
    if ka == kb == "expr":
        return _same_expr(a, b, tol)
    if ka in ("rel", "chain") and kb in ("iv", "set", "tuple"):  # "0 \le x < 3" is [0, 3)
        return _interval(a) is not None and _same(_interval(a), b, tol)
    if kb in ("rel", "chain") and ka in ("iv", "set", "tuple"):
        return _interval(b) is not None and _same(a, _interval(b), tol)
    if {ka, kb} == {"tuple", "iv"}:  # the pair (1, 2) is also the open interval (1, 2)
        a, b = [("iv", True, *v[1], True) if v[0] == "tuple" and len(v[1]) == 2 else v for v in (a, b)]
        ka = kb = "iv"
    if ka != kb:
        return False
    if ka == "iv":
        return a[1::3] == b[1::3] and _same(a[2], b[2], tol) and _same(a[3], b[3], tol)
    if ka == "rel":  # same kind, and f_a / f_b a nonzero constant (positive for inequalities)
        q = simplify(a[2] / b[2])
        return bool(a[1] == b[1] and q.is_number and q.is_finite and q != 0 and (a[1][0] in "=!" or q > 0))
    if ka == "chain":  # two intervals if we can, else the same relations in any order ("a < b < c")
        ia, ib = _interval(a), _interval(b)
        return _same(ia, ib, tol) if ia and ib else _same_unordered(a[1], b[1], tol)
    if ka == "set":
        return _same_unordered(a[1], b[1], tol)
    return len(a[1]) == len(b[1]) and all(_same(x, y, tol) for x, y in zip(a[1], b[1]))  # ordered

def _deep(p, t, pp, tp):
    """The SymPy half of a check. -> (equal, rule). Never raises."""
    try:
        pa, pb = _Parser(p), _Parser(t)
        a, b = _shape(pa.answer()), _shape(pb.answer())
        tol = pa.decimal or pb.decimal
        if not (isinstance(a, Expr) and isinstance(b, Expr)):
            pp = tp = False  # % only scales plain values
        return any(_same(x, y, tol) for x, y in _pct(a, b, pp, tp)), "sympy" + (" (decimal, 6 places)" if tol else "")
    except OverflowError:  # our screens: a huge power, binomial or factorial. SymPy never saw it
        return False, "screened (huge power, binomial or factorial)"
    except Exception as e:  # RecursionError on "((((((...", a TypeError in SymPy...: all wrong answers
        return False, f"unparseable or error: {type(e).__name__}: {e}"[:200]

# ---- 6. Workers: persistent `python verify.py --serve PID` children, one JSON line in and one out per
# check, each tagged with its job id. A worker warms up (imports SymPy, runs a few checks: the first
# simplify in a fresh process took 0.6-0.9 s on a busy machine, 0.02 s warm) before it says "ready";
# only then does a check's deadline start.
_lock = threading.Lock()
_idle = []        # warm (or warming) workers free for a job
_live = []        # every worker alive, for atexit and fork
_spawns = queue.SimpleQueue()
_spawner = None   # the one thread that starts workers (see _popen)
_WARMUP = [("x^2-1", "(x-1)(x+1)"), (r"\sin^2 x+\cos^2 x", "1"), (r"\sqrt{8}", r"2\sqrt{2}"), ("[0,3)", r"0 \le x < 3")]

def _worker_cmd():  # a function, so that a test can start a fake worker instead
    return [sys.executable, os.path.abspath(__file__), "--serve", str(os.getpid())]

def _spawn_loop():
    while True:
        cmd, reply = _spawns.get()
        try:
            reply.put(subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL))
        except OSError as e:
            reply.put(e)

def _popen(cmd):
    """Start a child from one long-lived thread. TRAP: Linux sends the parent-death signal when the
    THREAD that started the child exits, and batch_reward's pool threads exit after every call."""
    global _spawner
    with _lock:
        if _spawner is None:
            _spawner = threading.Thread(target=_spawn_loop, name="verify-spawner", daemon=True)
            _spawner.start()
    reply = queue.SimpleQueue()
    _spawns.put((cmd, reply))
    proc = reply.get()
    if isinstance(proc, OSError):
        raise proc
    return proc

class _Worker:
    def __init__(self):
        self.proc = _popen(_worker_cmd())
        self.buf, self.ready, self.jobs = b"", False, 0
        with _lock:
            _live.append(self)
    def line(self, deadline):  # the next reply line, or None when time is up or the child died
        fd = self.proc.stdout.fileno()
        while b"\n" not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                return None
            chunk = os.read(fd, 65536)
            if not chunk:
                return None
            self.buf += chunk
        line, _, self.buf = self.buf.partition(b"\n")
        return json.loads(line)
    def ask(self, job, timeout):
        """-> [equal, rule], or None on a timeout. Lines that aren't this job's reply are skipped: a late
        "ready" was once read as a verdict (is_equiv('x^2', 'y^3') returned True)."""
        warm_by = time.monotonic() + WARM_UP
        while not self.ready:  # start-up and warm-up are outside the check's deadline
            msg = self.line(warm_by)
            if msg is None:
                return None
            self.ready = msg == ["ready"]
        self.jobs += 1
        self.proc.stdin.write(json.dumps([self.jobs, job]).encode() + b"\n")
        self.proc.stdin.flush()
        deadline = time.monotonic() + timeout  # the hard bound runs from the moment the job is sent
        while True:
            msg = self.line(deadline)
            if msg is None or msg[0] == self.jobs:
                return msg and msg[1:]
    def kill(self):
        self.proc.kill()
        self.proc.wait()
        with _lock:
            if self in _live:
                _live.remove(self)

def _start_spare():  # a replacement for a killed worker: it warms up while the caller goes on
    with suppress(OSError):
        w = _Worker()
        with _lock:
            _idle.append(w)

def _remote(job, timeout):
    """_deep in a worker, within `timeout` s of wall clock from when a warm worker got the job; safe from
    any thread. A check that times out is retried once on a warm worker. -> (equal, rule)"""
    global TIMEOUTS
    for _ in range(2):  # the check, and one retry on a warm worker
        with _lock:
            w = _idle.pop() if _idle else None
        try:
            w = w or _Worker()
            out = w.ask(job, timeout)
        except (OSError, ValueError, TypeError):  # no process, a dead pipe or a garbled reply: a timeout
            out = None
        if out is not None:
            with _lock:
                _idle.append(w)
            return tuple(out)
        if w:
            w.kill()  # a stuck SymPy can't be interrupted, only killed
        _start_spare()
    with _lock:
        TIMEOUTS += 1
    _log.warning("verify: check timed out twice (%s s each), scored 0: %.80r vs %.80r", timeout, job[0], job[1])
    return False, f"timeout after {timeout} s, twice (counted in verify.TIMEOUTS)"

@atexit.register
def _shutdown():
    for w in list(_live):
        w.kill()

def _after_fork_in_child():  # the child must not share the parent's workers (two writers on one pipe)
    global _lock, _idle, _live, _spawns, _spawner
    for w in _live:  # close our copies of their pipes, or they'd never see EOF when the parent dies
        with suppress(OSError):
            w.proc.stdin.close()
            w.proc.stdout.close()
    _lock, _idle, _live, _spawns, _spawner = threading.Lock(), [], [], queue.SimpleQueue(), None

os.register_at_fork(after_in_child=_after_fork_in_child)

def _die_with_parent(parent):
    """TRAP: a worker busy on one check outlived its killed caller for 11 minutes. On Linux the kernel
    kills us when the caller's process dies (prctl PR_SET_PDEATHSIG = 1); elsewhere, and as a second
    guard, a thread watches for the parent's pid to go."""
    with suppress(OSError, AttributeError):
        ctypes.CDLL(None).prctl(1, signal.SIGKILL)
    def watch():
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(1)
    threading.Thread(target=watch, daemon=True).start()

def _serve(parent):
    _die_with_parent(parent)
    out = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)  # a stray print inside SymPy goes to stderr (devnull), never into our replies
    for p, t in _WARMUP:
        _deep(normalize(p)[0], normalize(t)[0], False, False)
    print(json.dumps(["ready"]), file=out, flush=True)
    for line in sys.stdin:  # ends when the parent closes the pipe or dies
        job_id, job = json.loads(line)
        print(json.dumps([job_id, *_deep(*job)]), file=out, flush=True)

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
    if job:
        equal, rule = _remote(job, timeout)
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
        if args.truth is None:
            ap.error("give PRED and TRUTH, or --jsonl FILE")  # exits 2
        info = explain(args.pred, args.truth, 1.5)
        for k, v in info.items() if args.explain else ():
            print(f"{k:>10}: {v}")
        print(info["equal"])
        return 0 if info["equal"] else 1
    try:
        with open(args.jsonl, encoding="utf-8", errors="replace") as f:
            lines = f.read().splitlines()
    except OSError as e:
        ap.error(f"cannot read {args.jsonl}: {e.strerror}")  # exits 2
    pairs = []
    for n, line in enumerate(lines, 1):  # a bad line is reported and skipped, never a crash
        try:
            row = json.loads(line)
            c, t = row["completion"], row["truth"]
            if not isinstance(c, str) or not isinstance(t, (str, int, float)) or isinstance(t, bool):
                raise TypeError("completion must be a string, truth a string or a number")
            pairs.append((c, str(t)))  # a number is fine as truth: GSM8K files often hold 42, not "42"
        except (ValueError, KeyError, TypeError) as e:  # bad JSON, a missing key, a row that is not an object
            print(f"line {n}: {type(e).__name__}: {e}", file=sys.stderr)
    from tqdm import tqdm  # only this bar needs it
    rewards, timeouts = [], 0
    for i in tqdm(range(0, len(pairs), 64), desc="verify, 64 pairs a step", unit="step"):  # the bar moves
        r, n_out = batch_reward(*zip(*pairs[i:i + 64]), timeout=1.5)
        rewards += r
        timeouts += n_out
    print(f"accuracy: {sum(rewards) / max(1, len(rewards)):.4f} ({sum(rewards):.0f}/{len(rewards)})\ntimeouts: {timeouts}")

if __name__ == "__main__":
    if sys.argv[1:2] == ["--serve"]:  # we are a worker (section 6)
        sys.exit(_serve(int(sys.argv[2])))
    sys.exit(main())
