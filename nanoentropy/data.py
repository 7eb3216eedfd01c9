"""
Problems for RL: a generated arithmetic task for the tiny model, and loaders for GSM8K, MATH-style
datasets and any local JSONL / parquet file (through datasets.load_dataset).

A problem is a dict: {"question": raw text, "prompt": text fed to the model, "truth": final answer
string checked by verify.py, "reference": the reference answer the warm start imitates (arith only)}.

Choices worth knowing:
1) arith answers come in several forms: integers, negatives (from "-") and reduced fractions (from
   "/"), so the checker's fraction and sign handling is exercised from the first step;
2) the held-out split is disjoint from the training split by construction (distinct problems are
   drawn once, shuffled, and cut), for generated and loaded data alike;
3) a row without a usable answer is skipped and counted, never silently turned into "".
"""
import random
import zlib
from fractions import Fraction

from verify import extract_answer

# The prompt template of each task; cfg.prompt_template replaces it. The tiny model sees a bare "12+34=" and
# answers "\boxed{46}": every extra character is compute on a 2-core CPU. Real models get the usual instruction.
TEMPLATES = {
    "arith": "{question}=",
    "gsm8k": "{question}\nPlease reason step by step, and put your final answer within \\boxed{{}}.",
    "math": "{question}\nPlease reason step by step, and put your final answer within \\boxed{{}}.",
    "jsonl": "{question}\nPlease reason step by step, and put your final answer within \\boxed{{}}.",
}


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


def make_arith(cfg):
    """Returns (train, held_out) lists of problems for the generated task, seeded by cfg.seed."""
    rng = random.Random(cfg.seed)
    hi = 10 ** cfg.arith_digits
    target = cfg.num_train + cfg.eval_size
    space = hi * hi * len(cfg.arith_ops)
    if target > 0.8 * space:
        raise DataError(f"arith_digits={cfg.arith_digits} with ops '{cfg.arith_ops}' has only {space} "
                        f"problems; asked for num_train + eval_size = {target}")
    seen, problems = set(), []
    while len(problems) < target:
        a, b, op = rng.randrange(hi), rng.randrange(hi), rng.choice(cfg.arith_ops)
        ans = arith_answer(a, op, b)
        if ans is None or (a, op, b) in seen:
            continue
        seen.add((a, op, b))
        q = f"{a}{op}{b}"
        problems.append({"question": q, "prompt": (cfg.prompt_template or TEMPLATES["arith"]).format(question=q),
                         "truth": ans, "reference": ans})
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
        rows = _load_rows(path, split)
    except Exception as e:  # datasets raises many types; all mean "cannot read this"
        raise DataError(f"cannot load dataset '{path}' (split '{split}'): {type(e).__name__}: {e}") from None
    cols = rows.column_names
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
        problems.append({"question": q, "prompt": prompt, "truth": truth, "reference": None})
    if not problems:
        raise DataError(f"dataset '{path}' has no usable rows ({skipped} skipped: missing question or answer)")
    return problems, skipped


def get_problems(cfg):
    """(train, held_out, n_skipped) for the configured task."""
    if cfg.task == "arith":
        train, held = make_arith(cfg)
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
