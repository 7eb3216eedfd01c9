"""The slow references the fast paths are tested against (tests/test_rollout.py) and timed against
(tests/bench.py). Kept out of the package: nothing trains with them."""
import torch

from nanoentropy.rollout import sample_token


@torch.no_grad()
def generate_nocache(model, prompt_ids, prompt_mask, group_size, max_new_tokens, eos_ids, pad_id,
                     temperature=1.0, generator=None):
    """The reference: same contract as generate(), but every step re-runs the whole sequence through
    the model with no cache and no shared prefill. Slow (quadratic) and obviously right; the tests
    check that greedy generate() matches it token for token."""
    was_training = model.training
    model.eval()
    eos = torch.tensor(eos_ids, device=prompt_ids.device)
    ids = prompt_ids.repeat_interleave(group_size, 0)                                     # (B, P)
    attn = prompt_mask.repeat_interleave(group_size, 0)                                   # (B, P)
    done = torch.zeros(ids.shape[0], dtype=torch.bool, device=ids.device)
    tokens, masks, logps = [], [], []
    for t in range(max_new_tokens):
        pos = (attn.cumsum(1) - 1).clamp(min=0)
        logits = model(input_ids=ids, attention_mask=attn, position_ids=pos, use_cache=False).logits[:, -1].float()
        tok, lp = sample_token(logits, temperature, generator)
        real = ~done
        tokens.append(tok.masked_fill(done, pad_id))
        masks.append(real)
        logps.append(lp.masked_fill(done, 0.0))
        done = done | torch.isin(tok, eos)
        if done.all():
            break
        ids = torch.cat([ids, tokens[-1][:, None]], 1)
        attn = torch.cat([attn, real.long()[:, None]], 1)
    model.train(was_training)
    return torch.stack(tokens, 1), torch.stack(masks, 1).long(), torch.stack(logps, 1)
