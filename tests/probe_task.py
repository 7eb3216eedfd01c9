"""
Where a policy's entropy sits on a task: sample G completions of held-out problems and print the mean
full-vocabulary entropy per completion token, the entropy at each completion position, the share of tokens
that carry more than 0.1 nats, how many different first steps a prompt's samples take, sampled accuracy and
pass@G. A script, not a test (README "The entropy lab" quotes it).

    python tests/probe_task.py out/_base/<key> --config configs/lab_none.yaml     # the lab's warm-started base
    python tests/probe_task.py out/lab/none_s0/ckpt --config configs/lab_none.yaml # after plain GRPO
"""
import argparse
import os
import sys

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
from nanoentropy.config import load_config  # noqa: E402
from nanoentropy.data import get_problems  # noqa: E402
from nanoentropy.model import eos_ids, policy_logp_entropy  # noqa: E402
from nanoentropy.rollout import encode_prompts, generate  # noqa: E402
from verify import batch_reward  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    ap.add_argument("model", help="a model folder (a cached base or a checkpoint)")
    ap.add_argument("--config", default="configs/lab_none.yaml", help="the task's config")
    ap.add_argument("--prompts", type=int, default=100, help="held-out problems")
    ap.add_argument("--G", type=int, default=8, help="samples per problem")
    args = ap.parse_args()
    from transformers import AutoModelForCausalLM, AutoTokenizer
    torch.set_num_threads(1)
    cfg = load_config(["--config", args.config])
    problems = get_problems(cfg)[1][:args.prompts]
    model, tok = AutoModelForCausalLM.from_pretrained(args.model).eval(), AutoTokenizer.from_pretrained(args.model)
    ids, mask = encode_prompts(tok, [p["prompt"] for p in problems], "cpu")
    c, cm, _ = generate(model, ids, mask, args.G, cfg.max_new_tokens, eos_ids(model, tok), tok.pad_token_id, 1.0,
                        torch.Generator().manual_seed(0))
    with torch.no_grad():
        _, ent = policy_logp_entropy(model, ids.repeat_interleave(args.G, 0), mask.repeat_interleave(args.G, 0), c, cm)
    texts = tok.batch_decode(c.masked_fill(cm == 0, tok.pad_token_id), skip_special_tokens=True)
    r = torch.tensor(batch_reward(texts, [p["truth"] for p in problems for _ in range(args.G)])[0]).view(-1, args.G)
    print(f"sampled accuracy {r.mean():.3f}, pass@{args.G} {(r.max(1).values > 0).float().mean():.3f}")
    print(f"mean entropy {(ent * cm).sum() / cm.sum():.4f} nats per completion token, {cm.sum(1).float().mean():.1f} "
          f"tokens per completion; {((ent > 0.1) & (cm > 0)).sum() / cm.sum():.3f} of tokens carry > 0.1 nats")
    per_position = (ent * cm).sum(0) / cm.sum(0).clamp(min=1)
    print("entropy by completion position:", " ".join(f"{x:.2f}" for x in per_position.tolist()))
    firsts = [t.split(",")[0] for t in texts]
    print(f"different first steps among a prompt's {args.G} samples: "
          f"{sum(len(set(firsts[i:i + args.G])) for i in range(0, len(firsts), args.G)) / len(problems):.2f}")
    print("samples of the first problem:", texts[:args.G])


if __name__ == "__main__":
    main()
