"""
Rollouts: our own batched sampler with a KV cache, and the plain no-cache sampler it is tested against.

Shapes: Bp = prompts, G = samples per prompt, B = Bp * G rows (prompt-major: row i*G + g is sample g
of prompt i), P = prompt length (left-padded), T = completion length so far, V = vocabulary.

Why not model.generate? Three reasons, each a bug somebody has shipped:
1) generate reads sampling defaults from the model's generation_config (Qwen ships top_k=20,
   top_p=0.8, repetition_penalty=1.05), so the loss would model a different distribution than the
   one sampled from; here only the knobs we pass exist;
2) GRPO samples G completions of the same prompt: we prefill each prompt once and copy its KV cache
   G times (nanochat does the same) instead of prefilling G identical rows;
3) we want the per-token log-probs of the sampled tokens and exact control of stopping (every EOS
   id, per row), without post-processing generate's output.
How it departs from a production engine: no paged cache, no continuous batching, no CUDA graphs. The
cache is Hugging Face's DynamicCache, which grows by one column per step (a concat per layer).
"""
import torch
import torch.nn.functional as F
from transformers import DynamicCache


def encode_prompts(tokenizer, prompts, device):
    """Left-pad a list of prompt strings -> ids (Bp, P), mask (Bp, P). Chat-templated prompts already
    carry their special tokens, so we add none then."""
    enc = tokenizer(prompts, return_tensors="pt", padding=True, padding_side="left",
                    add_special_tokens=not getattr(tokenizer, "chat_template", None))
    return enc.input_ids.to(device), enc.attention_mask.to(device)


def sample_token(logits, temperature, top_k, top_p, generator):
    """
    logits: (B, V) fp32 scores of the next token. Returns tokens (B,) and their log-probs (B,) under
    softmax(logits / temperature): the distribution the loss models (top-k / top-p truncation is not
    in it; with both off, which is the default, the two are the same). temperature 0 = greedy, and
    then the log-prob is under softmax(logits).
    """
    if temperature == 0:
        tokens = logits.argmax(-1)                                            # (B,)
        return tokens, F.log_softmax(logits, -1).gather(-1, tokens[:, None]).squeeze(-1)
    z = logits / temperature                                                  # (B, V)
    logp_all = F.log_softmax(z, -1)                                           # (B, V)
    if top_k > 0:
        kth = torch.topk(z, min(top_k, z.shape[-1]), dim=-1).values[:, -1:]   # (B, 1)
        z = z.masked_fill(z < kth, float("-inf"))
    if top_p < 1.0:
        sorted_z, order = torch.sort(z, descending=True)                      # (B, V)
        cum = torch.softmax(sorted_z, -1).cumsum(-1)                          # (B, V)
        drop = cum - torch.softmax(sorted_z, -1) >= top_p  # mass before this token already >= p
        z = z.masked_fill(drop.scatter(-1, order, drop), float("-inf"))       # never drops the top token
    tokens = torch.multinomial(torch.softmax(z, -1), 1, generator=generator).squeeze(-1)   # (B,)
    return tokens, logp_all.gather(-1, tokens[:, None]).squeeze(-1)


@torch.no_grad()
def generate(model, prompt_ids, prompt_mask, group_size, max_new_tokens, eos_ids, pad_id,
             temperature=1.0, top_k=0, top_p=1.0, generator=None):
    """
    KV-cached sampling of group_size completions per prompt.
    prompt_ids, prompt_mask: (Bp, P) left-padded.
    Returns completion ids (B, T), completion mask (B, T) (1 up to and including the EOS), and the
    sampler's log-prob of each completion token (B, T), with B = Bp * group_size and T <= max_new_tokens.
    """
    was_training = model.training
    model.eval()  # dropout off while sampling (train-mode sampling is a known silent accuracy killer)
    eos = torch.tensor(eos_ids, device=prompt_ids.device)
    # prefill: every prompt once. Left padding shifts rows, so positions count real tokens only
    pos = (prompt_mask.cumsum(1) - 1).clamp(min=0)                                        # (Bp, P)
    cache = DynamicCache()
    out = model(input_ids=prompt_ids, attention_mask=prompt_mask, position_ids=pos,
                past_key_values=cache, use_cache=True, logits_to_keep=1)
    # copy each prompt's cache to its G rows: the prompt is prefilled once, not G times
    cache.batch_repeat_interleave(group_size)
    logits = out.logits[:, -1].float().repeat_interleave(group_size, 0)                   # (B, V)
    attn = prompt_mask.repeat_interleave(group_size, 0)                                   # (B, P)
    B = attn.shape[0]
    done = torch.zeros(B, dtype=torch.bool, device=prompt_ids.device)                     # (B,)
    tokens, masks, logps = [], [], []
    for t in range(max_new_tokens):
        tok, lp = sample_token(logits, temperature, top_k, top_p, generator)              # (B,), (B,)
        real = ~done                      # this token belongs to the completion (incl. its EOS)
        tokens.append(tok.masked_fill(done, pad_id))
        masks.append(real)
        logps.append(lp.masked_fill(done, 0.0))
        done = done | torch.isin(tok, eos)
        if done.all() or t == max_new_tokens - 1:  # stop the loop as soon as every row has stopped
            break
        # feed the new token; a finished row keeps running on padding that nothing attends to.
        # note: done.all() above is a GPU->CPU sync once per token; cheap next to the forward
        attn = torch.cat([attn, real.long()[:, None]], dim=1)                             # (B, P+t+1)
        out = model(input_ids=tokens[-1][:, None], attention_mask=attn,
                    position_ids=attn.sum(1, keepdim=True) - 1, past_key_values=cache, use_cache=True)
        logits = out.logits[:, -1].float()                                                # (B, V)
    model.train(was_training)
    return torch.stack(tokens, 1), torch.stack(masks, 1).long(), torch.stack(logps, 1)


@torch.no_grad()
def generate_nocache(model, prompt_ids, prompt_mask, group_size, max_new_tokens, eos_ids, pad_id,
                     temperature=1.0, top_k=0, top_p=1.0, generator=None):
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
        tok, lp = sample_token(logits, temperature, top_k, top_p, generator)
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
