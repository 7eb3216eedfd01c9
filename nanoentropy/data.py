"""
Problems for RL: two generated tasks for the tiny model (arith: "12+34=", the quick start; sum: "12+7+30=",
the entropy lab, added in any order), the teacher the tiny model's warm start imitates, and loaders for
GSM8K, MATH-style datasets and any local JSONL / parquet file (through datasets.load_dataset).

A problem is a dict: {"question": raw text, "prompt": text fed to the model, "truth": final answer
string checked by verify.py}, plus "operands" for the sum task.

Choices worth knowing: 1) arith answers are integers, negatives ("-") and reduced fractions ("/"), so the
checker's sign and fraction handling is exercised from the first step; 2) the held-out split is disjoint
from the training split by construction (distinct problems, drawn once and cut), generated or loaded;
3) a row without a usable answer is skipped and counted, never silently turned into ""; 4) a sum has several
right answers (one per order of adding), so entropy collapse loses something real (the entropy lab's task).
"""
import math
import random
from fractions import Fraction

from verify import extract_answer

# The prompt template of each task; cfg.prompt_template replaces it. The tiny model sees a bare "12+34=" and
# answers "\boxed{46}": every extra character is compute on a 2-core CPU. Real models get the usual instruction.
REASON = "{question}\nPlease reason step by step, and put your final answer within \\boxed{{}}."
TEMPLATES = {"arith": "{question}=", "sum": "{question}=", "gsm8k": REASON, "math": REASON, "jsonl": REASON}


class DataError(ValueError):
    pass


def arith_answer(a, op, b):
    """Exact answer of 'a op b' as the string we expect inside \\boxed{}: '-7', '3/4', '12'."""
    val = {"+": Fraction(a + b), "-": Fraction(a - b), "*": Fraction(a * b),
           "/": Fraction(a, b) if b else None}[op]
    if val is None:
        return None
    return str(val.numerator) if val.denominator == 1 else f"{val.numerator}/{val.denominator}"


def corrupt_answer(answer):
    """The near miss a noisy teacher writes: the last digit moved up by one, 9 wrapping to 0 ('46' ->
    '47', '3/4' -> '3/5', '-9' -> '-0'; always a wrong answer). One consistent slip, so the
    warm-started policy learns "right answer, or right answer with the last digit bumped" and RL
    can unlearn the slip as a rule that carries over to held-out problems."""
    i = max(j for j, ch in enumerate(answer) if ch.isdigit())
    return answer[:i] + str((int(answer[i]) + 1) % 10) + answer[i + 1:]


def teacher(problem, rng, noise):
    """The warm start's teacher: one completion of a generated problem, as a noisy student writes it.
    arith: "\\boxed{46}", wrong with probability `noise`. sum: a running sum, "12+30=42,42+7=\\boxed{49}".
    Half the time the teacher adds left to right, its favourite order; otherwise it draws an order
    uniformly (6 of them for 3 numbers, every one right). It slips (bumps the last digit of the answer,
    corrupt_answer) with probability `noise` in its favourite order and 1 - (1 - noise)^2 in the others,
    as if it had two chances to slip there. So the base policy hedges on the first operands (real choices,
    each a right way) and on the last digit, and its likelier order is also the more often rewarded one:
    the covariance that drives GRPO's entropy collapse (Cui et al.) is there from the first step."""
    order = list(problem.get("operands", []))
    if rng.random() < 0.5:
        rng.shuffle(order)                          # draws nothing for arith: an empty list
    favourite = order == list(problem.get("operands", []))
    answer = problem["truth"]
    if rng.random() < (noise if favourite else 1 - (1 - noise) ** 2):
        answer = corrupt_answer(answer)
    steps, total = [], order[0] if order else 0
    for x in order[1:]:
        steps.append(f"{total}+{x}={total + x}")
        total += x
    last = steps.pop().rsplit("=", 1)[0] + "=" if steps else ""
    return ",".join(steps + [last + "\\boxed{" + answer + "}"])


def make_task(cfg):
    """(train, held_out) of a generated task, seeded by cfg.base_seed: arith, "12+34=" (arith_ops), or sum,
    "12+7+30=" (sum_operands numbers, distinct as multisets: no held-out problem reorders a training one)."""
    rng = random.Random(cfg.base_seed)
    hi, n = 10 ** cfg.arith_digits, cfg.num_train + cfg.eval_size
    k = cfg.sum_operands
    space = hi * hi * len(cfg.arith_ops) if cfg.task == "arith" else math.comb(hi + k - 1, k)   # sums: multisets
    if n > 0.8 * space:
        raise DataError(f"task {cfg.task} has {space} distinct problems (see arith_digits, arith_ops, sum_operands); "
                        f"asked for num_train + eval_size = {n}")
    seen, problems = set(), []
    while len(problems) < n:
        if cfg.task == "arith":
            a, b, op = rng.randrange(hi), rng.randrange(hi), rng.choice(cfg.arith_ops)
            key, q, truth, extra = (a, op, b), f"{a}{op}{b}", arith_answer(a, op, b), {}
        else:
            ops = [rng.randrange(hi) for _ in range(cfg.sum_operands)]
            key, q, truth, extra = tuple(sorted(ops)), "+".join(map(str, ops)), str(sum(ops)), {"operands": ops}
        if truth is None or key in seen:
            continue
        seen.add(key)
        prompt = (cfg.prompt_template or TEMPLATES[cfg.task]).format(question=q)
        problems.append({"question": q, "prompt": prompt, "truth": truth, **extra})
    return problems[cfg.eval_size:], problems[:cfg.eval_size]


def _load_rows(path, split):
    """Local .jsonl/.json/.parquet file, or a hub dataset id with an optional ':config' suffix."""
    from datasets import load_dataset
    if path.endswith((".jsonl", ".json")):
        return load_dataset("json", data_files=path, split="train")
    if path.endswith(".parquet"):
        return load_dataset("parquet", data_files=path, split="train")
    name, _, config = path.partition(":")
    return load_dataset(name, config or None, split=split)


def _truth(task, answer):
    """The final answer of a dataset row: after '####' for GSM8K, the last \\boxed{} for MATH, the
    field itself for plain JSONL (unless it too carries one of those markers)."""
    if not isinstance(answer, (str, int, float)) or isinstance(answer, bool):
        return None
    answer = str(answer).strip()
    if task == "gsm8k" or "####" in answer or "\\boxed" in answer or "\\fbox" in answer:
        return extract_answer(answer, fallback_last_number=False)
    return answer or None


def load_problems(cfg, path, split):
    """Problems from a dataset. Returns (problems, n_skipped). Empty result -> DataError."""
    try:
        data = _load_rows(path, split)
        rows = data.to_list()  # a byte that is not UTF-8 fails only here, when the rows are read
    except Exception as e:  # datasets raises many types; all mean "cannot read this" (an empty file: StopIteration)
        why = f"{type(e).__name__}: {str(e) or 'no rows'}"
        raise DataError(f"cannot load dataset '{path}' (split '{split}'): {why}") from None
    cols = data.column_names
    for key in (cfg.question_key, cfg.answer_key):
        if key not in cols:
            raise DataError(f"dataset '{path}' has no column '{key}' (columns: {', '.join(cols)}); "
                            f"set question_key / answer_key")
    problems, skipped = [], 0
    for row in rows:
        q, truth = row[cfg.question_key], _truth(cfg.task, row[cfg.answer_key])
        if not isinstance(q, str) or not q.strip() or not truth:
            skipped += 1
            continue
        prompt = (cfg.prompt_template or TEMPLATES[cfg.task]).format(question=q.strip())
        problems.append({"question": q, "prompt": prompt, "truth": truth})
    if not problems:
        raise DataError(f"dataset '{path}' has no usable rows ({skipped} skipped: missing question or answer)")
    return problems, skipped


def get_problems(cfg):
    """(train, held_out, n_skipped) for the configured task."""
    if cfg.task in ("arith", "sum"):
        train, held = make_task(cfg)
        return train, held, 0
    train, skipped = load_problems(cfg, cfg.data_path, "train")
    if cfg.eval_data_path:
        held, s2 = load_problems(cfg, cfg.eval_data_path, "test")
        held, skipped = held[:cfg.eval_size or len(held)], skipped + s2   # its first eval_size; 0 = all
    elif len(train) > cfg.eval_size and cfg.eval_size > 0:
        train, held = train[:-cfg.eval_size], train[-cfg.eval_size:]   # disjoint: cut, not sampled
    else:
        raise DataError(f"dataset '{cfg.data_path}' has {len(train)} usable rows, not enough to hold out "
                        f"eval_size={cfg.eval_size}; lower eval_size or set eval_data_path")
    return train, held, skipped
