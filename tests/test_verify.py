"""
Tests for verify.py, the answer checker behind every reward. The table holds equal and near-miss rows
for each convention in verify.py's docstring and each kind of miss in issue 11, every row with its
source: a public checker's test suite or issue it is modelled on (we wrote our own rows), or "model
output" for forms we saw models write. A row whose verdict Math-Verify does not share carries a note
saying why ours is right; tests/test_verify_diff.py checks those notes against Math-Verify itself.
The rest checks extraction, the hard timeout and its retry (also off the main thread and under load),
the workers' life cycle, linear time outside the workers, 1,000 random strings that must neither raise
nor hang, the CLI, and that batch_reward agrees with the one-pair path.
"""
import json, random, subprocess, sys, threading, time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # verify.py lives at the top level of the repo
import verify
from verify import batch_reward, extract_answer, is_equiv, reward

T, F = True, False
# where a row comes from. Public checkers' suites: huggingface/Math-Verify tests/ and issues,
# QwenLM/Qwen2.5-Math evaluation/grader.py, openai/prm800k grading/grader.py, hendrycks/math is_equiv
MV, MVI, QWEN, PRM, MATH, OUT = ("Math-Verify tests", "Math-Verify issue", "Qwen2.5-Math grader",
                                 "PRM800K grader", "Hendrycks MATH grader", "model output")
SIXTH = "0.1" + "6" * 299  # 1/6 to 300 places: right to 6 places, longer than MAX_LEN
# two notes many rows share (Math-Verify's own tests of these swap prediction and truth)
REL_SET = "MV compares a relation with a set only when the prediction is the set; the same set either way"
RIGHT_SIDE = "MV takes the right side of an equation in the prediction as its value; an equation is not its right side"
ANSWERS = [  # (pred, truth, equal, source[, why Math-Verify says otherwise]), checked with is_equiv()
    # --- plain numbers: exact, no relative tolerance (the fast path, no SymPy)
    ("42", "42", T, OUT), ("-3", "-3", T, OUT), ("+5", "5", T, OUT), ("-0", "0", T, OUT), ("5", "-5", F, OUT),
    ("1000001", "1000000", F, QWEN), ("12", "13", F, OUT), ("0.5", "1/2", T, MATH), ("0.50", "0.5", T, OUT),
    ("1/2", r"\frac{1}{2}", T, MATH), ("2/4", "1/2", T, PRM), (r"-\frac{1}{2}", "-0.5", T, OUT),
    (r"\frac{-1}{2}", "-1/2", T, OUT), ("3", "3.0", T, OUT), (r"\frac{6}{4}", r"\frac{3}{2}", T, PRM),
    (r"\frac{1}{3}", r"\frac{1}{4}", F, OUT), ("7,425,000", "7425000", T, MV), ("1000.0", "1000", T, MV),
    ("1,000.99", "1000.99", T, MV), ("1,22", "1.22", F, MV), ("10/9", r"\frac{10}{9}", T, MV),
    ("-10/9", r"-\frac{10}{9}", T, MV),
    ("7 3/4", "31/4", T, PRM,
         "MV reads 7 3/4 as 7 times 3/4; a whole number, a space and a fraction is a mixed number"),
    ("7 3/4", "21/4", F, PRM), ("2 million", "2000000", T, PRM, "MV drops the word; million scales the number"),
    ("2 million", "2", F, PRM),
    # --- a decimal meets an exact value only if it is right to 6 places
    ("0.333333", r"\frac{1}{3}", T, OUT), ("0.3333", r"\frac{1}{3}", F, OUT), ("0.333334", "1/3", F, OUT),
    ("0.666667", "2/3", T, OUT), ("0.66667", "2/3", F, OUT),
    ("3.0000001", "3", T, OUT, "MV: no match; rule 4: right to 6 places, |d - 3| < 5e-7"), ("3.000001", "3", F, OUT),
    ("3.14", r"\pi", F, QWEN), ("3.141593", r"\pi", T, OUT), ("3.1416", r"\pi", F, OUT), ("2.718282", "e", T, OUT),
    ("1.414214", r"\sqrt{2}", T, OUT), ("1.41", r"\sqrt2", F, OUT), ("0.707107", r"\frac{1}{\sqrt{2}}", T, OUT),
    ("0.0833333333333333", r"\frac{1}{12}", T, QWEN), (r"\frac{100}{3}", "33.3", F, QWEN),
    (SIXTH, r"\frac{1}{6}", T, OUT), (SIXTH, r"\frac{1}{7}", F, OUT), (SIXTH, "0.1667", F, OUT),
    ("0." + "3" * 1500, "1/3", T, OUT),
    # --- leading-dot decimals
    (".25", "1/4", T, MATH), (".25", "0.3", F, OUT), ("-.5", r"-\frac{1}{2}", T, OUT), (".4", "0.4", T, MV),
    # --- decoration is ignored, units are not converted
    ("5.", "5", T, OUT), (r"45^\circ", "45", T, MATH), ("45°", "45", T, OUT), (r"45^{\circ}", "45", T, MATH),
    (r"45\degree", "45", T, OUT), ("45°", "46", F, OUT), (r"\$5", "5", T, MATH), ("$5$", "5", T, OUT),
    ("€20", "20", T, OUT, "MV keeps the euro sign"), ("5 dollars", "5", T, OUT, "MV keeps the unit word"),
    (r"\$1,000.99", "1000.99", T, MV), (r"\$5.00", "5", T, OUT), (r"\$2.50", "2.5", T, PRM),
    (r"5\text{ cm}", "5", T, OUT), (r"5 \mbox{cm}", "5", T, OUT), ("5 cm", "5", T, OUT),
    (r"5 \text{cm}", "6", F, OUT), (r"5\text{ cm}^2", "25", F, OUT), (r"2.5 \text{ hours}", "2.5", T, PRM),
    (r"\frac{1}{2} \text{ inch}", "0.5", T, PRM), (r"\frac{1}{3} \textbf{meters}", "1/3", T, MV),
    (r"125\textnormal{ miles}", "125", T, MV), (r"15\text{ cm}^2", r"15\mbox{ cm}^2", T, MV),
    ("28 percent", r"28\%", T, MV), ("1,000", "1000", T, OUT), ("1{,}000", "1000", T, MATH),
    (r"1\,000", "1000", T, OUT, "MV does not join a thin-space thousands separator"),
    ("1,000,000", "1000000", T, OUT), ("1,000", "100", F, OUT), (r"\left(1,2\right)", "(1,2)", T, MATH),
    (r"\left[1,2\right)", "[1,2)", T, OUT), (r"\dfrac{1}{2}", "0.5", T, MATH), (r"\tfrac{3}{4}", "0.75", T, MATH),
    (r"\frac12", "0.5", T, MATH), (r"\frac12", "12", F, OUT), (r"\sqrt3", r"\sqrt{3}", T, MATH),
    (r"\displaystyle\frac{1}{2}", "1/2", T, OUT), (r"\frac94\pi", r"\frac{9}{4}\pi", T, MV),
    (r"\sqrt 2+\sqrt 5", r"\sqrt{2}+\sqrt{5}", T, MV), (r"\frac{a}{b}", "a/b", T, MATH),
    ("**12**", "12", T, OUT, "MV reads markdown bold as LaTeX; it is decoration"),
    # \( \) and \[ \] around the answer; \cfrac
    (r"\( \frac{1}{2} \)", "0.5", T, OUT), (r"\[ \frac{1}{2} \]", "1/2", T, MV),
    (r"\( \frac{1}{3} \)", "0.5", F, OUT), (r"\cfrac{1}{3}", "1/3", T, MV), (r"\cfrac{2}{3}", "1/3", F, OUT),
    (r"1+\cfrac{1}{1+\cfrac{1}{2}}", r"\frac{5}{3}", T, OUT),
    # thin-space thousands
    (r"2,\!500", "2500", T, OUT), (r"1,\! 000,\! 000", "1000000", T, OUT),
    (r"11,\! 111,\! 111,\! 100", "11111111100", T, MV), (r"32,\! 349", "32349", T, MV), ("32, 349", "32349", F, MV),
    (r"2,\!500", "250", F, OUT), ("14 {, }916", "14916", T, MV),
    # \mathrm{e} and \mathrm{i} are constants, other \mathrm{} a unit
    (r"2\mathrm{e}", "2e", T, OUT, "MV reads \\mathrm{e} as another object than e; both are Euler's number"),
    (r"\mathrm{e}^{2}", "e^2", T, OUT, "MV reads \\mathrm{e} as another object than e; both are Euler's number"),
    (r"3+4\mathrm{i}", "3+4i", T, OUT, "MV reads \\mathrm{i} as another object than i; both are the imaginary unit"),
    (r"3+4\mathrm{i}", "3-4i", F, OUT), (r"5\,\mathrm{m}", "5", T, OUT),
    (r"1 - \frac{1}{\mathrm{e}}", r"1 + \frac{1}{\mathrm{e}}", F, MV,
         "MV says equal (its own test expects it); they differ by 2/e"),
    # a name before the value: x =, f(x) =, (a, b) =, A:B =
    ("x = 5", "5", T, MATH), ("x=5", "5", T, OUT), ("5", "x = 5", T, OUT), ("x = 5", "6", F, OUT),
    ("y = 2x+3", "2x+3", T, OUT), (r"2\frac{1}{2}", "2.5", T, OUT), (r"2\frac{1}{2}", "1", F, OUT),
    (r"x = 2\frac12", "5/2", T, OUT), (r"\theta = 30", "30", T, OUT), ("x_1 = 4", "4", T, OUT),
    (r"1 \text{ apple}", "1", T, OUT), ("12 apples", "13", F, OUT), (r"k = \frac{1}{3}", "1/3", T, MV),
    ("k=1", "1", T, MV), ("g(t) = 3t-2", "3t-2", T, OUT), ("g(t) = 3t-2", "3t+2", F, OUT),
    ("f(x) = x^2 + 1", "x^2+1", T, OUT), ("(a,b)=(1,4)", "(1, 4)", T, OUT), ("(a,b)=(1,4)", "(4, 1)", F, OUT),
    ("(p,q,r)=(3,2,7)", "(3,2,7)", T, MV), ("(p,q)=(3,2)", "(3,2)", T, MV), ("A:B=2:5", "2:5", T, OUT),
    (r"V_{1}:V_{2}=11:21", "11:21", T, MV), ("AB=4, CD=5", "4, 5", T, MV), ("AB = 4", "5", F, OUT),
    # --- percent: one side's percent sign lets it mean x or x/100; never scale a plain truth
    (r"20\%", "20", T, OUT), (r"50\%", "0.5", T, OUT), ("20%", "20%", T, OUT), ("50", r"50\%", T, OUT),
    ("0.5", r"50\%", T, OUT), ("50", "0.5", F, OUT), ("0.2", "20", F, OUT), (r"20\%", "0.3", F, OUT),
    (r"50\%", r"0.5\%", F, OUT), ("10%", "0.1", T, QWEN), ("28", r"28\%", T, MV), ("28/100", "28", F, MV),
    ("0.28", "28", F, MV),
    # --- symbolic equality through SymPy
    (r"2\sqrt2", r"\sqrt8", T, OUT), (r"\sqrt{8}", r"2\sqrt{2}", T, OUT),
    (r"\frac{\sqrt2}{2}", r"\frac{1}{\sqrt2}", T, OUT), (r"\sqrt{8}", r"3\sqrt{2}", F, OUT), (r"\pi", "π", T, OUT),
    (r"2\pi", "2π", T, OUT), ("pi", r"\pi", T, OUT, "MV reads plain-text pi as the product p*i"),
    (r"\pi", "e", F, OUT), (r"e^{i\pi}", "-1", T, OUT, "MV takes i for a variable, not the imaginary unit"),
    ("i^2", "-1", T, OUT, "MV takes i for a variable, not the imaginary unit"), ("i", "-i", F, OUT),
    (r"\infty", "∞", T, OUT, "MV does not read the character ∞"), (r"-\infty", r"\infty", F, OUT),
    ("infinity", r"\infty", T, OUT), ("x^2+2x+1", "(x+1)^2", T, OUT), ("x^2+2x+1", "(x+1)^3", F, OUT),
    ("2x", "x+x", T, OUT), (r"\sqrt[3]{8}", "2", T, OUT),
    ("√2", r"\sqrt{2}", T, OUT, "MV does not read the character √"),
    ("√12", r"2\sqrt3", T, OUT, "MV does not read the character √"), ("sqrt(2)", r"\sqrt2", T, OUT),
    (r"\sin^2 x + \cos^2 x", "1", T, OUT), (r"\log_2 8", "3", T, OUT), (r"\ln(e^2)", "2", T, OUT),
    (r"\binom{5}{2}", "10", T, OUT), ("5!", "120", T, OUT), ("5!", "24", F, OUT), ("|-3|", "3", T, OUT),
    (r"\lfloor 2.5 \rfloor", "2", T, OUT), (r"\sqrt{3+2\sqrt2}", r"1+\sqrt2", T, OUT),
    (r"\frac{1+\sqrt5}{2}", r"\frac{\sqrt5+1}{2}", T, OUT), ("a+b", "b+a", T, OUT), ("a-b", "b-a", F, OUT),
    (r"\alpha+1", r"1+\alpha", T, OUT), ("2^{10}", "1024", T, OUT), ("2^10", "1024", T, OUT),
    ("10^{-2}", "0.01", T, OUT), ("x_1+x_2", "x_2+x_1", T, OUT), ("x_1", "x_2", F, OUT), (r"3\cdot 4", "12", T, OUT),
    (r"3\times 4", "12", T, OUT), (r"12\div 4", "3", T, OUT),
    ("2**3", "8", T, OUT, "MV does not read Python's ** power"), ("2x", "2y", F, OUT),
    (r"\frac{x}{2}", "0.5x", T, OUT), (r"\frac{x}{3}", "0.3333x", F, OUT), ("3(x+1)", "3x+3", T, OUT),
    (r"\frac{x}{7}+\frac{2}{7}", r"\frac{x+2}{7}", T, QWEN), (r"\sec^2(y)", r"\tan^2(y)+1", T, QWEN),
    (r"\frac{\sqrt{\sqrt{11}+\sqrt{194}}}{2\sqrt{33}+15}",
         r"\frac{\sqrt{\sqrt{11}+\sqrt{194}}}{15+2\sqrt{33}}", T, QWEN),
    ("(+5)(b+2)", "(a+5)(b+2)", F, QWEN), (r"\frac{1+\sqrt{5}}{2}", "2", F, QWEN),
    (r"\frac{34}{16}+\frac{\sqrt{1358}}{16}", "4", F, QWEN), ("1", r"1\sqrt{19}", F, QWEN),
    ("x+1", "x+2n+1", F, QWEN), (r"4\sqrt{2}", "4", F, MVI), (r"2 \sin b \cos a", r"2 \cos a \sin b", T, MV),
    (r"\frac{\pi r}{h+r}", r"\frac{r\pi}{r+h}", T, MV),
    # implicit products of single letters: ab is ba
    ("ab", "ba", T, OUT), ("ab", "a+b", F, OUT),
    ("2ab", "2ba", T, OUT, "MV: no match (it parses the two products differently), but 2ab is 2ba"),
    ("xyz", "zyx", T, OUT), ("xy", "x*y", T, OUT),
    # --- sets and bare lists are unordered, tuples ordered, intervals keep ends and openness
    (r"\{1,2\}", r"\{2,1\}", T, OUT), (r"\{1,2\}", r"\{1,3\}", F, OUT), ("1, 2", "2, 1", T, OUT),
    ("1,2,3", "3, 2, 1", T, OUT), ("1, 2", "1, 2, 3", F, OUT), (r"\{\sqrt8, 1\}", r"\{1, 2\sqrt2\}", T, OUT),
    ("(1,2)", "(1, 2)", T, OUT), ("(1,2)", "(2,1)", F, OUT), (r"(\frac12, \sqrt8)", r"(0.5, 2\sqrt2)", T, OUT),
    ("(1,2,3)", "(1,2)", F, OUT), ("[1,2)", "[1, 2)", T, OUT), ("[1,2)", "[1,2]", F, OUT), ("(1,2]", "(1,2)", F, OUT),
    ("(1,2)", "[1,2]", F, OUT), (r"(-\infty, 3)", "(-∞,3)", T, OUT, "MV does not read the character ∞"),
    (r"[0,\infty)", r"[0, \infty)", T, OUT), (r"(-\infty,1)\cup(2,\infty)", r"(2,\infty)\cup(-\infty,1)", T, OUT),
    (r"(-\infty,1)\cup(2,\infty)", r"(-\infty,1]\cup(2,\infty)", F, OUT),
    (r"\mathbb{R}", r"(-\infty,\infty)", T, OUT), (r"x \in [1,2]", "[1,2]", T, OUT),
    (r"\varnothing", r"\emptyset", T, OUT, "MV does not read \\varnothing as the empty set"),
    ("∅", r"\varnothing", T, OUT, "MV does not read ∅ or \\varnothing as the empty set"),
    (r"\varnothing", "0", F, OUT), (r"\{\}", r"\emptyset", T, OUT), ("[1, 2, 3]", "(1, 2, 3)", T, OUT),
    ("(1,4.5)", r"(1,\frac{9}{2})", T, QWEN), ("(0.6,2.6667]", r"(\frac{3}{5},\frac{8}{3}]", F, QWEN),
    ("[0,1)", "[0,1)", T, MV), ("[0,1)", "[0,9)", F, MV), ("[0,9)", "(0,9)", F, MV),
    (r"[-1, -\tfrac12) \cup (-\tfrac12, 0) \cup (0, 1) \cup (1, \infty)",
         r"[-1, -\frac{1}{2}) \cup (-\frac{1}{2}, 0) \cup (0, 1) \cup (1, \infty)", T, MV),
    (r"(2,12) \cup (12,102)", r"(2, 12) \cup (12, 102)", T, MV), (r"(1, +\infty)", r"(1, \infty)", T, MV),
    # an interval and the inequality that defines it
    ("[0, 3)", r"0 \le x < 3", T, OUT), (r"0 \le x < 3", "[0,3)", T, OUT, REL_SET),
    (r"0 \le x \le 3", "[0,3)", F, OUT), (r"(-\infty, 2]", r"x \le 2", T, OUT), (r"(-\infty, 2]", "x < 2", F, OUT),
    (r"(3, \infty)", "x > 3", T, OUT), ("x >= 3", r"[3, \infty)", T, OUT, REL_SET),
    (r"x \ne 1", r"(-\infty,1)\cup(1,\infty)", T, OUT, REL_SET),
    (r"x < 1 \text{ or } x > 2", r"(-\infty,1)\cup(2,\infty)", T, OUT, REL_SET),
    (r"x < 1 \text{ or } x > 2", r"(-\infty,1]\cup(2,\infty)", F, OUT), ("-2 <= x <= 7", "[-2, 7]", T, MV, REL_SET),
    (r"x \in [-2,7]", r"-2 \le x \le 7", T, MV), ("2x > 6", r"(3, \infty)", T, OUT, REL_SET),
    ("3 > x > 1", "(1, 3)", T, OUT, REL_SET), ("-793 < a < 10", "(-793, 10)", T, MV, REL_SET),
    ("-793 < a < 10", "(-793, 10]", F, OUT),
    # a union of finite sets is the merged set
    (r"\{1, 2\} \cup \{3\}", r"\{1, 2, 3\}", T, OUT), (r"\{1, 2\} \cup \{3\}", r"\{1, 2\}", F, OUT),
    (r"\{1,3\} \cup \{2,4\}", r"\{1,2,3,4\}", T, MV), (r"x \in \{-1\} \cup [0,7)", r"[0,7) \cup \{-1\}", T, MV),
    (r"\{-1\} \cup [0,7)", r"[0,7)", F, OUT),
    # ";" separates a list too; "and" joins one
    ("-12;-11;-10", r"\{-12, -11, -10\}", T, MV), ("1; 2; 3", "1, 2", F, OUT), ("(0;0;6)", "(0, 0, 6)", T, MV),
    ("(0;0;6)", "(0, 6, 0)", F, OUT), ("3 and 4", "3, 4", T, PRM),
    ("19, 46, and 82", r"19, 46, \text{ and } 82", T, MV), ("19, 46, and 82", "21, 36, and 82", F, MV),
    ("19, 46, and 82", "82, 46, 19", T, MV), ("1 and 2 and 3", "1,2,3", T, MV),
    # named values in a list
    ("m = 3, n = 7", "3, 7", T, OUT), ("m = 3, n = 7", "3, 8", F, OUT),
    (r"x = -5,\ p = \frac{14}{3}", r"-5, \frac{14}{3}", T, MV),
    ("a_3 = 2, a_{37} = 19", r"a_{37} = 19, \quad a_3 = 2", T, MV), ("n=1, 2, 3", "1, 2, 3", T, MV),
    ("n=2, 3, 4", "n=1, 2, 3", F, MV),
    # --- matrices compare entrywise, whatever the environment
    (r"\begin{pmatrix}1&2\\3&4\end{pmatrix}", r"\begin{bmatrix}1 & 2 \\ 3 & 4\end{bmatrix}", T, OUT),
    (r"\begin{pmatrix}1&2\\3&4\end{pmatrix}", r"\begin{pmatrix}1&3\\2&4\end{pmatrix}", F, OUT),
    (r"\begin{pmatrix}\frac12\\ \sqrt8\end{pmatrix}", r"\begin{pmatrix}0.5\\2\sqrt2\end{pmatrix}", T, OUT),
    (r"\begin{pmatrix}1\\2\end{pmatrix}", r"\begin{pmatrix}1&2\end{pmatrix}", F, OUT),
    (r"\begin{matrix}1&2\\3&4\end{matrix}", r"\begin{pmatrix}1&2\\3&4\end{pmatrix}", T, OUT),
    (r"\left[\begin{array}{cc}1 & 2 \\3 & 4\end{array}\right]", r"\begin{pmatrix}1 & 2 \\3 & 4\end{pmatrix}", T, MV),
    (r"\begin{bmatrix}1&2\\3&4\\\end{bmatrix}", r"\begin{pmatrix}1&2\\3&4\end{pmatrix}", T, OUT),
    (r"\begin{bmatrix}0&0\\0&0\end{bmatrix}", r"\begin{pmatrix}0&0\\0&1\end{pmatrix}", F, MV),
    (r"\begin{pmatrix}-\frac{7}{4}&-2\\4&\frac{1}{4}\end{pmatrix}",
         r"\begin{pmatrix}-1.75&-2\\4&0.25\end{pmatrix}", T, QWEN),
    (r"\begin{pmatrix} 3 \\ 2 \\ -6 \end{pmatrix}", r"\begin{pmatrix} 3 \\ 2 \\ 6 \end{pmatrix}", F, OUT),
    (r"\begin{pmatrix}1 & 2 \\ 3 & 4\end{pmatrix}", r"\begin{pmatrix}1 & 2 \\ 3 & 5\end{pmatrix}", F, MV),
    # --- equations up to a nonzero factor, inequalities up to a positive one (flipped is fine)
    ("x > 3", "3 < x", T, OUT), (r"x \ge 3", r"3 \le x", T, OUT), ("x > 3", r"x \ge 3", F, OUT),
    ("x>3", "x<3", F, OUT),
    ("2x > 6", "x > 3", T, OUT, "MV compares inequalities as written; dividing by 2 > 0 keeps the solution set"),
    ("-x < -3", "x > 3", T, OUT), ("x < 3", "-x < -3", F, OUT), ("x+y=3", "2x+2y=6", T, OUT),
    ("x+y=3", "x+y=4", F, OUT), (r"x \ne 2", r"2 \ne x", T, OUT, "MV does not flip a != relation; it is symmetric"),
    (r"x \le 5", "x < 5", F, OUT), ("x >= 3", r"x \geq 3", T, OUT), ("x^2 = 4", "4 = x^2", T, OUT),
    ("2x + z = 1", "1", F, MV, RIGHT_SIDE), ("a^2 + b = 0", "0", F, MV, RIGHT_SIDE),
    ("7 = 11a+c", "11a+c", F, MV, RIGHT_SIDE),
    # a line in two forms
    ("y = 2x - 1", "2x - y - 1 = 0", T, OUT), ("y = 2x - 1", "2x - y + 1 = 0", F, OUT),
    ("2x+4y-3=0", r"y=-\frac{1}{2}x+\frac{3}{4}", T, MV), ("x^2/4 + y^2/3 = 1", "x^2/16 + y^2/12 = 1/4", T, MV),
    ("34x+45y-20z+100=0", "-34x-45y+20z-100=0", T, QWEN), ("y = x + 1", "x = y - 1", T, OUT),
    ("x = 5", "x - 5 = 0", T, OUT),
    # a chain of equalities: the last value counts; an \approx after it does not
    ("y = 2+3 = 5", "5", T, OUT), ("y = 2+3 = 5", "6", F, OUT), ("x = 5+5+1 = 7 = 11", "x = 11", T, MV),
    ("z = 1 + 1 = 2", "z = 3+3 = 2", T, MV), (r"\frac{6}{2} = 3", "3", T, OUT), ("2+3 = 5", "6", F, OUT),
    (r"x = 5+5+1 = 1/3 \approx 11", "x = 1/3", T, MV), (r"x\approx11", "11", T, MV),
    # ASCII relations
    ("x >= 5", r"x \geq 5", T, MV), ("x <= 2", r"x \le 2", T, MV), ("x != 3", r"x \neq 3", T, MV),
    ("x >= 5", r"x \le 5", F, MV), ("-x > -1", "x < 1", T, MV), ("x < 1", "x > -1", F, MV),
    (r"x \lt 3", "x < 3", T, MV), (r"5 \geq x", r"x \leq 5", T, MV),
    # chains of comparisons
    ("a < b < c", "c > b > a", T, OUT, "MV does not match a chain written the other way round"),
    ("a < b < c", "a < c", F, OUT, "MV accepts the chain for the weaker a < c; the chain also says b"),
    ("a < b < c", "b < c < a", F, OUT),
    ("1 < x < 3", "3 > x > 1", T, OUT, "MV does not match a chain written the other way round"),
    (r"f(2) < f(1) < f(4)", r"f(2) < f(1) < f(4)", T, MV), (r"f(2) < f(1) < f(4)", r"f(1) < f(2) < f(4)", F, OUT),
    # --- hedges are wrong; both roots of a quadratic are the set
    ("12 or 14", "12", F, OUT), (r"12 \text{ or } 14", "12", F, OUT), (r"12 \text{ or } 14", "168", F, OUT),
    ("12 14", "168", F, OUT), ("12 14", "1214", F, OUT), (r"\pm 5", "5", F, OUT), (r"\pm 5", "5, -5", T, OUT),
    (r"\pm 5", r"\{-5, 5\}", T, OUT), (r"1 \pm \sqrt2", r"1+\sqrt2, 1-\sqrt2", T, OUT),
    (r"\frac{1 \pm \sqrt5}{2}", r"\frac{1-\sqrt5}{2}, \frac{1+\sqrt5}{2}", T, OUT,
         "MV does not expand \\pm inside a fraction"),
    (r"\frac{1 \pm \sqrt5}{2}", r"\frac{1+\sqrt5}{2}", F, OUT), ("5, -5", "5", F, OUT),
    (r"x \text{ or } y", "xy", F, OUT), (r"5 \text{ (or 6)}", "5", F, OUT, "MV reads past the hedge in parentheses"),
    ("5 (or 6)", "5", F, OUT), (r"\pm 2021", "2021", F, MV), (r"\pm 2021", r"\{-2021, 2021\}", T, MV),
    (r"\pm 2", r"2 \text{ or } -2", T, OUT), (r"2 \text{ or } -2", r"\pm 2", T, OUT),
    (r"x = 2 \text{ or } x = -2", r"\pm 2", T, OUT), (r"2 \text{ or } -2", "2", F, OUT),
    (r"2 \text{ or } 3", r"\pm 2", F, OUT), (r"1 \pm \sqrt{19}", r"1+\sqrt{19}, 1-\sqrt{19}", T, MV),
    (r"\{1\pm\sqrt{5},-2\}", r"\{-2, 1+\sqrt5, 1-\sqrt5\}", T, MV), (r"3 \pm 2 \sqrt{2}", r"3+2\sqrt2", F, MV),
    (r"(11,7) \text{ or } (7,11)", r"(7,11),\ (11,7)", T, MV),
    # --- text and multiple choice, case-insensitive
    ("(C)", "C", T, OUT), (r"\text{(C)}", "c", T, OUT), (r"\textbf{(C)}", "(C)", T, OUT), ("C", "(c)", T, OUT),
    ("(B)", "(C)", F, OUT), (r"\mathrm{(D)}", "D", T, OUT), (r"\text{Monday}", "monday", T, OUT),
    ("Monday", "Tuesday", F, OUT), ("dynamo", "Monday", F, OUT), (r"\text{yes}", "Yes", T, OUT),
    ("no", "yes", F, OUT), (r"\text{odd}", r"\text{even}", F, OUT), (r"\text{no solution}", "No Solution", T, OUT),
    (r"\text{E}", "E", T, MV), (r"\text{odd}", "odd", T, MV), (r"\text{Even}", "Even", T, MV),
    ("d", r"\text{E}", F, MV), (r"\text{Evelyn}", r"\text{Briana}", F, MV),
    (r"\text{The midpoints form a regular hexagon}", r"\text{The midpoints form a regular hexagon}", T, MV),
    (r"\text{13}", "13", T, MVI),
    # --- identical after normalization: equal, whatever the parser makes of it (issue 11)
    ("3:45", "3:45", T, OUT), ("3:45", "3:46", F, OUT), ("12:00", "1:00", F, MV), ("101_2", "101_2", T, OUT),
    ("101_2", "110_2", F, OUT), ("A:B=2:5", "A:B = 2:5", T, OUT), ("2:5", "5:2", F, OUT), ("204_5", "204_5", T, MV),
    ("1/0", "1/0", T, OUT), ("(1/0)", "(1/0)", T, OUT), ("@#!", "@#!", T, OUT), (r"\foo{1}", r"\foo{1}", T, OUT),
    ("1 < x < 3", "1 < x < 3", T, OUT),
    # --- undefined, empty or unbalanced input equals nothing else (empty and unbalanced: not even itself)
    ("1/0", "2/0", F, OUT), ("1/0", "1", F, OUT), ("0/0", "0", F, OUT), (r"\frac{1}{0}", "1", F, OUT),
    (r"\frac{0}{0}", "0", F, OUT), ("1/(1-1)", "1", F, OUT), ("", "", F, OUT), ("", "5", F, OUT), ("5", "", F, OUT),
    ("   ", "5", F, OUT), (r"\frac{1}{2", "1/2", F, OUT),
    (r"\frac{1}{2", r"\frac{1}{2", F, OUT, "MV repairs the brace; malformed output scores 0, even against itself"),
    ("{5", "5", F, OUT), ("5}", "5", F, OUT, "MV ignores the stray brace; malformed output scores 0"),
    ("x -", "x", F, OUT), (r"\foo{1}", "1", F, OUT),
    # --- screened: huge powers, binomials and factorials; overlong input. Only identical strings match
    ("10^{10^{10}}", "10^{10^{10}}", T, OUT), ("10^{10^{10}}", "1", F, OUT),
    ("10^{10^{10}}", "10^{10^{10}}+1", F, OUT), ("(10^{9})!", "1", F, OUT), ("2^{2^{2^{2^{2}}}}", "2", F, OUT),
    ("9" * 2000, "9" * 2000, T, OUT), ("9" * 2000, "9" * 1999 + "8", F, OUT),
    (r"\binom{10^{12}}{10^{11}}", "1", F, OUT), (r"\binom{10^{12}}{10^{11}}", r"\binom{10^{12}}{10^{11}}", T, OUT),
    (r"\binom{10^{12}}{2}", "499999999999500000000000", T, OUT),
]
COMPLETIONS = [  # (completion, truth, equal, source[, note]), checked with reward(): extraction first
    # several boxes: joined by "and" or commas one answer set, by "or" a hedge
    (r"So $x=\boxed{4}$ and $x=\boxed{-1}$.", "-1, 4", T, OUT),
    (r"So $x=\boxed{4}$ and $x=\boxed{-1}$.", "4", F, OUT), (r"\boxed{7} or \boxed{9}", "9", F, OUT),
    (r"\boxed{7} or \boxed{9}", "7", F, OUT),
    (r"It is $\boxed{7}$, or maybe $\boxed{9}$.", "9", F, OUT, "MV takes the last box and misses the hedge"),
    (r"$x = \boxed{2}$ or $x = \boxed{-2}$", r"\pm 2", T, OUT), (r"\boxed{1}\boxed{2}", "1, 2", T, MV),
    (r"\(\boxed{1}\) and \(\boxed{-2}\).", "-2, 1", T, MV),
    ("solutions are:\n\n\\[\n\\boxed{(1, 2)}, \\boxed{(2, 1)}, \\boxed{(-1, -20)}, \\boxed{(-20, -1)}\n\\]",
         "(2,1),(1,2),(-1,-20),(-20,-1)", T, MV),
    ("solutions are:\n\n\\[\n\\boxed{(1, 2)}, \\boxed{(2, 1)}, \\boxed{(-1, -20)}, \\boxed{(-20, -1)}\n\\]",
         "(2,1),(1,2),(-1,-20)", F, OUT),
    (r"\boxed{(2, 2)} \quad \text{and} \quad \boxed{(6, 2)}", "(2, 2), (6, 2)", T, MV),
    (r"\boxed{k = 45} \quad \text{and} \quad \boxed{n = 2}", "k = 45, n = 2", T, MV),
    (r"\boxed{1} and \boxed{2} and \boxed{3}", r"\{1,2,3\}", T, MV),
    (r"\boxed{1},\boxed{2},\boxed{3}", r"\{1,2,3\}", T, MV), (r"\boxed{1} no no no no no \boxed{2}", "1, 2", F, MV),
    (r"\boxed{(x, y) = (5, 8) \quad \text{and} \quad (8, 5)}", "(5, 8), (8, 5)", T, MV),
    (r"first \boxed{3}, no wait: \boxed{4}", "4", T, OUT,
         "MV reads both boxes as the answer {3, 4}; the last box corrects the first"),
    (r"first \boxed{3}, no wait: \boxed{4}", "3", F, OUT),
    ("The answer is $\\boxed{5}$.\n\n**Final Answer**\n\\boxed{5}", "5", T, OUT),
    ("the answer should be \\boxed{004}.\n\nBut let me check again.\n\n**Final Answer**\n\\boxed{004}", "004", T, MV),
    # answer phrases, delimiters, bold
    ("The final answer is \\((-6, 10)\\). I hope it is correct.", "(-6, 10)", T, MV),
    ("The final answer is \\((-6, 10)\\). I hope it is correct.", "[-6, 10]", F, OUT),
    ("Answer \\[ 9 \\]", "9", T, MV), ("Answer \\( (9+1) \\)", "10", T, MV), (r"\[ \boxed{12} \]", "12", T, OUT),
    (r"Answer $ \frac{1}{2} \$ = \frac{10}{9} $", "10/9", T, MV), ("The answer is .75", "3/4", T, OUT),
    ("Adding the parts gives the total.\nFinal Answer: **12**", "12", T, OUT),
    ("Final Answer: **12** (3 boxes of 4)", "4", F, OUT, "MV takes the last number; the bold final answer is 12"),
    ("**Final Answer:** $\\frac{1}{2}$", "0.5", T, OUT), ("所以答案是 7。", "7", T, QWEN),
    ("答案是：$\\frac{3}{4}$", "0.75", T, QWEN), ("所以答案是 7。", "8", F, QWEN),
    ("Final Answer: The largest $n$ is 34.", "34", T, MV),
    ("Final Answer: Jane started growing Sphere 3 hours ago. I hope it is correct.", "3", T, MV),
    ("Final Answer: The volume of $ABCDEFGH$ is 120. I hope it is correct.", "120", T, MV),
    ("Final Answer: The final answer is $10,455$. I hope it is correct.", "10455", T, MV),
    ("Final Answer: The final answer is $28 \\%$. I hope it is correct.", r"28\%", T, MV),
    ("Therefore $x \\geq 5$ is the solution.", "x >= 5", T, MV), ("We find that $x \\lt 3$.", "x < 3", T, MV),
    ("Thus $x <= 2$ is our answer.", r"x \leq 2", T, MV), ("We find that $x \\neq 3$.", "x != 3", T, MV),
    ("so the ordered pair $(x, y)$ that solves the system is $(7, 6)$.", "(7, 6)", T, MV),
    (r"The identity matrix is $ \begin{pmatrix}1 & 0 \\ 0 & 1\end{pmatrix} $.",
         r"\begin{pmatrix}1 & 0 \\ 0 & 1\end{pmatrix}", T, MV),
    ("The answer is 7, not 9.", "9", F, OUT),
    ("Maybe it is 9.", "9", F, OUT, "MV takes the last number; the sentence hedges"),
    ("It could be 12 or 14.", "14", F, OUT, "MV takes the last number; the sentence hedges"),
    ("The answer is 12 or 14 apples.", "14", F, OUT), ("AZYUK2A", "2", F, MV),
    ("Soucis : 2,74 $ a..", "2.74", F, MV,
         "MV reads a decimal comma; in English 2,74 is the list {2, 74}, and a checker cannot know the locale"),
    ("I had 3 apples and then 5 more apples.", "5", T, OUT),
    # MATH solutions, box last
    ("Thus $x-p=\\boxed{2-2p}$.", "2-2p", T, MV), (r"Therefore, $\boxed{14{,}916}$ is our answer.", "14916", T, MV),
    (r"the polar coordinates are $\boxed{\left( 3, \frac{\pi}{2} \right)}.$", r"(3, \frac{\pi}{2})", T, MV),
    (r"Therefore, $\boxed{\text{Evelyn}}$ is our answer.", r"\text{Evelyn}", T, MV),
    (r"&= \boxed{90^\circ}.", r"90^\circ", T, MV), (r"\sqrt{117} = \boxed{3\sqrt{13}}.", r"3\sqrt{13}", T, MV),
    (r"\sqrt{117} = \boxed{3\sqrt{13}}.", r"3\sqrt{31}", F, OUT),
    (r"the only integer roots are $\boxed{-2,1}.$", "-2,1", T, MV),
    (r"$(p,q,r) = \boxed{(6,31,-1)}.$", "(6,31,-1)", T, MV),
    (r"so $x = \boxed{1 \pm \sqrt{19}}.$", r"1 \pm \sqrt{19}", T, MV),
    (r"$\boxed{\frac{9}{4}\pi}$", r"\frac{9}{4}\pi", T, MV),
    (r"The distance is $\boxed{125\textnormal{ miles}}.$", "125", T, MV),
    (r"x \in \boxed{\{-1\} \cup [0,7)}.$", r"\{-1\} \cup [0,7)", T, MV),
    (r"$\boxed{\text{(C)}}.$", r"\text{C}", T, MV),
    (r"\boxed{1}", r"We find $\boxed{1}$, so the answer is 1.", T, OUT),
]
CASES = ANSWERS + COMPLETIONS

SOURCES = {MV, MVI, QWEN, PRM, MATH, OUT}

@pytest.mark.parametrize("pred,truth,expected", [r[:3] for r in ANSWERS])
def test_table_answers(pred, truth, expected):
    assert is_equiv(pred, truth) is expected

@pytest.mark.parametrize("completion,truth,expected", [r[:3] for r in COMPLETIONS])
def test_table_completions(completion, truth, expected):
    assert reward(completion, truth) == float(expected)

def test_table_size_and_sources():
    assert len(CASES) >= 320
    assert all(len(row) in (4, 5) and row[3] in SOURCES for row in CASES)
    assert len({row[:2] for row in CASES}) == len(CASES)  # no row twice

def test_batch_reward_agrees_with_one_pair_path():
    preds, truths = [c[0] for c in CASES], [c[1] for c in CASES]
    rewards, n_timeouts = batch_reward(preds, truths, workers=2)
    assert rewards == [reward(p, t) for p, t in zip(preds, truths)] and n_timeouts == 0
    # where the bare answer is its own extraction, the batch must also give the table's verdict
    for (p, t, expected, *_), r in zip(CASES, rewards):
        if extract_answer(p) == p or (p, t) in {c[:2] for c in COMPLETIONS}:
            assert r == float(expected), (p, t)

# -----------------------------------------------------------------------------
# extraction

@pytest.mark.parametrize("text,answer", [
    (r"so \boxed{\frac{1}{2}}", r"\frac{1}{2}"),               # nested braces
    (r"$\boxed{\{1, 2\}}$", r"\{1, 2\}"),
    (r"we get $\boxed 5$.", "5"),                              # plain-TeX \boxed 5
    (r"\fbox{7}", "7"),
    (r"first \boxed{3}, no wait: \boxed{4}", "4"),             # the last box wins over prose
    (r"x=\boxed{4} and x=\boxed{-1}", "4, -1"),                # boxes joined by "and": one answer set
    (r"\boxed{7} or \boxed{9}", "7 or 9"),                     # joined by "or": a hedge, scored wrong
    (r"\boxed{4}.\n\n**Final Answer**\n\boxed{4}", "4"),
    (r"\boxed{\boxed{5}}", "5"),
    (r"\boxed{5.}", "5."),
    (r"\boxed{5", None),                                       # never closes: no answer
    (r"\boxed{3} and \boxed{5", None),
    ("Natalia sold 48 clips.\n#### 72", "72"),                  # GSM8K
    ("#### 1,000", "1,000"),
    ("Thus the final answer is 7. Done.", "7"),
    (r"The answer is: $\frac12$. I hope it is correct.", r"$\frac12$"),
    ("The answer is 3.5", "3.5"), ("The answer is **42**.", "42"),
    ("**Final Answer:** 12", "12"), ("Final Answer:\n**12**", "12"), ("答案是 7。后面", "7"),
    ("Final Answer: The largest $n$ is 34.", "34"),            # an answer phrase before prose
    ("I had 3 apples and then 5 more apples.", "5"),            # last-number fallback
    ("so the ordered pair $(x, y)$ is $(7, 6)$.", "(7, 6)"),    # the last math span, when it is last
    ("We checked $x = 2$, so there are 4 ways", "4"),           # ...and the number, when that is
    ("It is 12 or 14.", "It is 12 or 14"),                     # a hedged sentence stays whole
    ("step2 AZYUK2A", None),                                   # digits inside words are no answer
    (r"\frac{1}{2}", r"\frac{1}{2}"),                           # a short reply is its own answer
    (r"\frac{1}{2} \text{ inch}", r"\frac{1}{2} \text{ inch}"),
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
    assert reward(r"\boxed{7} or \boxed{9}", "9") == 0.0  # issue 11: the reward hack a policy could learn

# -----------------------------------------------------------------------------
# nothing outside the workers is superlinear: extraction and normalization run in the caller, outside
# every deadline. Issue 11: the old hedge regex took 6 s on a 30 KB answer and over 900 s on 1 MB.
# Each shape below gets just under MAX_TEXT chars, where normalize() still runs all its regexes, and
# the hedge-shaped and slowest ones also 1 MB; a quadratic pattern takes minutes on either. We time
# CPU of this process, not wall clock, so that a busy machine does not fail the test.

SHAPES = [r"\text{" + "12 or 14 or " * 40 + r"\{}", "12 or ", r"\boxed{", r"\boxed{1} and ", "{", "(", " ", "$",
          r"\(", "answer is ", "#### ", "5 cm ", "1,000", r"\frac", "x = ", "**", r"\text{a}", "a < ", "9"]

@pytest.mark.parametrize("size,shapes", [(verify.MAX_TEXT - 200, SHAPES), (1_000_000, SHAPES[:2] + ["$", r"\(", "{"])])
def test_outside_the_workers_is_linear(size, shapes):
    worst = 0.0
    for shape in shapes:
        text = (shape * (size // len(shape) + 1))[:size]
        for work in (lambda: extract_answer(text), lambda: verify._quick(text, "12"), lambda: reward(text + " 12", "12")):
            t0 = time.process_time()
            work()
            worst = max(worst, time.process_time() - t0)
    assert worst < 1.0, worst  # each call takes at most ~0.2 s on 1 MB; the old hedge regex took 900 s

# -----------------------------------------------------------------------------
# the hard timeout: (x+y+z)^30 against (x+y+z+1)^30 keeps simplify busy for ~15 s on this machine.
# A check that times out is retried once on a warm worker, so it costs at most 2 x timeout plus the
# start of a fresh worker (SymPy's import and warm-up, ~1-2 s; more on a busy machine)

SLOW = ("(x+y+z)^{30}", "(x+y+z+1)^{30}")
WORKER_START = 20.0  # a generous bound on starting one worker, for a shared machine

def test_timeout_returns_false_is_retried_and_counted(caplog):
    assert is_equiv("x", "x+0")  # a warm worker: start-up is outside the bound we time
    before = verify.TIMEOUTS
    t0 = time.monotonic()
    assert is_equiv(*SLOW, timeout=0.3) is False
    assert time.monotonic() - t0 < 2 * 0.3 + WORKER_START
    assert verify.TIMEOUTS == before + 1  # two attempts, one timeout counted
    assert "timed out twice" in caplog.text  # and logged
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
    th.join(60)
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
# the workers under stress. Issue 11 found each of these by using the checker as a new user would.

def _fresh_pool():  # kill every idle worker, so the next checks start cold ones
    with verify._lock:
        idle = list(verify._idle)
        verify._idle.clear()
    for w in idle:
        w.kill()

FAKE_WORKER = r"""
import json, os, sys, time
print(json.dumps([99, True, "stale"]), flush=True)   # a stray line before the worker is ready
time.sleep(0.5)
print(json.dumps(["ready"]), flush=True)              # a slow start: "ready" comes late
for line in sys.stdin:
    job_id, job = json.loads(line)
    if os.environ.get("FAKE_SLEEP_ONCE") and not os.path.exists(os.environ["FAKE_SLEEP_ONCE"]):
        open(os.environ["FAKE_SLEEP_ONCE"], "w").close()
        time.sleep(30)                                # this job times out; the next worker answers
    print(json.dumps(["ready"]), flush=True)          # stray lines between replies...
    print(json.dumps([job_id - 1, True, "another job's verdict"]), flush=True)
    print(json.dumps([job_id, False, "fake verdict"]), flush=True)
"""

@pytest.fixture
def fake_workers(monkeypatch):
    _fresh_pool()
    monkeypatch.setattr(verify, "_worker_cmd", lambda: [sys.executable, "-c", FAKE_WORKER])
    yield
    _fresh_pool()

def test_replies_are_matched_to_their_job(fake_workers):
    """A worker whose start was slow answered with its late "ready" line, which was read as a verdict:
    is_equiv('x^2', "y^3") returned True, and batch_reward raised ValueError: 'r'. Every line that is
    not the reply to this job (a stale or early line, another job id) must be skipped."""
    assert verify.explain("x^2", "y^3")["rule"] == "fake verdict"
    assert is_equiv("x^2", "y^3") is False
    assert batch_reward(["x^2", "x^3"], ["y^3", "y^2"]) == ([0.0, 0.0], 0)

def test_a_timed_out_check_is_retried_once(fake_workers, monkeypatch, tmp_path):
    monkeypatch.setenv("FAKE_SLEEP_ONCE", str(tmp_path / "slept"))  # the first job hangs, the rest answer
    before = verify.TIMEOUTS
    assert verify.explain("x^2", "y^3", timeout=0.5)["rule"] == "fake verdict"  # the retry's verdict
    assert (tmp_path / "slept").exists() and verify.TIMEOUTS == before  # it timed out once, not counted

def test_correct_answers_score_1_on_a_loaded_machine():
    """Rewards depended on load: batch_reward from 4 threads on a busy machine scored correct symbolic
    answers 0 in every call, as each timeout replaced a worker by a cold one (first simplify 0.6-0.9 s)
    and timeouts cascaded. Now workers warm up before taking jobs and a timed-out check is retried.
    The timeout is tight on purpose: at 0.5 s the old checker failed this test on our 2 busy cores (a
    warm check takes ~0.02 s), at 1.5 s it passed."""
    pairs = [("x^2-1", "(x-1)(x+1)"), (r"\sin^2x+\cos^2x", "1"), (r"\frac{\sqrt2}{2}", r"\frac{1}{\sqrt2}"),
             (r"\sqrt{3+2\sqrt2}", r"1+\sqrt2"), ("[0, 3)", r"0 \le x < 3"), ("y = 2x - 1", "2x - y - 1 = 0")] * 2
    completions, truths = [rf"so \boxed{{{p}}}" for p, _ in pairs], [t for _, t in pairs]
    _fresh_pool()  # cold workers, started while the machine is busy
    busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    results = []
    def score():
        results.append(batch_reward(completions, truths, timeout=0.5, workers=1))
    try:
        threads = [threading.Thread(target=score) for _ in range(4)]
        for th in threads:
            th.start()
        for th in threads:
            th.join(300)
    finally:
        busy.kill()
        busy.wait()
        _fresh_pool()  # the 4 workers of this test
    assert results == [([1.0] * len(pairs), 0)] * 4

CALLER = r"""
import sys, threading, time
sys.path.insert(0, sys.argv[1])
import verify
th = threading.Thread(target=verify.is_equiv, args=("x^2-1", "(x-1)(x+1)"))
th.start()
th.join()  # the worker was started from a thread that has exited: it must live on (see verify._popen)
time.sleep(0.5)
first = verify._live[0].proc.pid
assert verify.is_equiv("x+1", "1+x") and verify._live[0].proc.pid == first
threading.Thread(target=verify.is_equiv, args=("(x+y+z)^{30}", "(x+y+z+1)^{30}"), kwargs={"timeout": 600}).start()
time.sleep(0.5)  # that worker is now busy on a 15 s simplify, so the next check starts a second one
assert verify.is_equiv("x^2", "x x") and len(verify._live) == 2
print(*[w.proc.pid for w in verify._live], flush=True)
time.sleep(600)
"""

def _alive(pid):  # a zombie (dead, not yet reaped) counts as gone
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False

@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_a_killed_caller_leaves_no_worker_behind():
    """A worker busy on \\binom{10^{12}}{10^{11}} outlived its killed caller for 11 minutes. Workers get
    a parent-death signal (and watch their parent's pid), so SIGKILL on the caller takes them along."""
    caller = subprocess.Popen([sys.executable, "-c", CALLER, str(ROOT)], stdout=subprocess.PIPE, text=True)
    watchdog = threading.Timer(120, caller.kill)  # a caller that hangs must not hang the test
    watchdog.start()
    try:
        pids = [int(p) for p in caller.stdout.readline().split()]
        assert len(pids) == 2 and all(_alive(p) for p in pids)  # one idle worker, one busy
    finally:
        watchdog.cancel()
        caller.kill()
        caller.wait()
    deadline = time.monotonic() + 10
    while any(_alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(_alive(p) for p in pids)

# -----------------------------------------------------------------------------
# property: 1,000 seeded random inputs never raise and each check returns within its bound. Half are
# soup (fragments, unicode, unbalanced braces), half well-formed expressions that do reach SymPy

FRAGMENTS = [r"\frac{", "}{", "}", "{", r"\sqrt", r"\boxed{", "^", "_", "(", ")", "[", "]", r"\{", r"\}", ",", "=",
             "<", r"\le", "x", "y", "e", "i", r"\pi", r"\infty", "!", "+", "-", "*", "/", r"\cdot", "0", "1", "7",
             "42", "3.14", "10^{10^{10}}", "99999!", "%", r"\%", "$", "°", r"\text{cm}", " or ", r"\pm", "&", r"\\",
             r"\begin{pmatrix}", r"\end{pmatrix}", r"\left(", r"\right)", "π", "√", "∅", "é", "字", "\x00", "\n",
             " ", ".", "#### ", "the answer is ", r"\sin", r"\log_", "|", r"\cup", "1,000", r"\mathbb{R}", ";", ":",
             r"\binom", r"\approx", r"\in", " and ", r"\(", r"\)", "**", "答案是", r"\mathrm{e}"]

LEAVES = ["0", "1", "7", "42", "0.5", "3.14", "x", "y", "e", "i", r"\pi", r"\infty", "10^{10^{10}}", "1/0"]
FORMS = [r"\frac{A}{B}", "A+B", "A-B", "AB", "A^{B}", r"\sqrt{A}", "(A, B)", r"\{A, B\}", "[A, B)", "A!", "-A",
         r"A \cdot B", "A = B", "A < B", r"\sin A", "|A|", r"A\%", r"\pm A", r"\begin{pmatrix}A & B\end{pmatrix}",
         r"\binom{A}{B}", r"A \cup B", "A < x < B", "A:B", "x = A = B", r"A \text{ or } B", r"\boxed{A} and \boxed{B}"]

def random_expr(rng, depth=3):
    if depth == 0 or rng.random() < 0.3:
        return rng.choice(LEAVES)
    form = rng.choice(FORMS).replace("A", "\0").replace("B", "\1")  # placeholders no leaf contains
    return form.replace("\0", random_expr(rng, depth - 1)).replace("\1", random_expr(rng, depth - 1))

def test_random_inputs_never_raise_and_return_in_time():
    _fresh_pool()
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
            assert time.monotonic() - t0 < 2 * timeout + WORKER_START, (check.__name__, a, b)  # the contract
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
    ex = cli("45°", "45.0", "--explain")
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
