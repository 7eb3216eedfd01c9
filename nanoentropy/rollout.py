"""
Rollouts: our own batched sampler with a KV cache (tests/reference.py holds the no-cache sampler it is tested against).

Shapes: Bp = prompts, G = samples per prompt, B = Bp * G rows (prompt-major: row i*G + g is sample g
of prompt i), P = prompt length (left-padded), T = completion length so far, V = vocabulary.

Why not model.generate? Three reasons, each a bug somebody has shipped: 1) generate reads sampling
defaults from the model's generation_config (Qwen ships top_k=20, top_p=0.8, repetition_penalty=1.05), so
the loss would model another distribution than the one sampled; 2) GRPO samples G completions of one
prompt: we prefill it once and copy its KV cache G times (as nanochat does); 3) we want the sampled tokens'
log-probs and exact control of stopping (every EOS id, per row).
How it departs from a production engine: no paged cache, no continuous batching, no CUDA graphs. The cache
is one buffer per layer sized for the whole rollout (PreallocatedLayer), not HF's DynamicCache, which
re-copies it at every token; decode steps attend with two matmuls (decode_attention), not sdpa. What each
choice buys is measured in tests/bench.py (README "Performance").
"""
import torch
import torch.nn.functional as F
from transformers import AttentionInterface
from transformers.cache_utils import Cache, DynamicLayer

from nanoentropy.model import with_cache


class PreallocatedLayer(DynamicLayer):
    """
    One layer's KV cache for one rollout. HF's DynamicLayer grows by torch.cat, copying the whole cache at
    every token (on the tiny model about as costly as attention itself). Here the (B, H, max_len, hd) buffer
    is allocated once at prefill, each step writes one column, and attention gets a view of the filled part
    (no copy). Everything else (mask sizes, what the model asks of a cache) is DynamicLayer's.
    """

    def __init__(self, max_len):
        super().__init__()
        self.max_len, self.n = max_len, 0            # capacity and filled columns

    def update(self, key_states, value_states, *args, **kwargs):
        """key_states, value_states: (B, H, L, hd), L = P at prefill and 1 per generated token."""
        if self.n == 0:          # prefill: allocate once, never again. (is_initialized is for transformers 5.x)
            B, H, _, hd = key_states.shape
            self.k_buf = key_states.new_empty(B, H, self.max_len, hd)           # (B, H, max_len, hd)
            self.v_buf = value_states.new_empty(B, H, self.max_len, value_states.shape[-1])
            self.dtype, self.device, self.is_initialized = key_states.dtype, key_states.device, True
        L = key_states.shape[-2]
        self.k_buf[:, :, self.n:self.n + L] = key_states
        self.v_buf[:, :, self.n:self.n + L] = value_states
        self.n += L
        self.keys, self.values = self.k_buf[:, :, :self.n], self.v_buf[:, :, :self.n]   # views: no copy
        return self.keys, self.values

    def get_seq_length(self):
        return self.n

    def batch_repeat_interleave(self, repeats):
        """Prefill ran on Bp prompts; give each of its G samples its own copy (rows prompt-major). Only the
        n filled columns are copied, in one broadcast write each: the rest of the buffer is written later."""
        def repeat(buf):                                                   # (Bp, H, max_len, hd)
            Bp, H, M, hd = buf.shape
            out = buf.new_empty(Bp, repeats, H, M, hd)
            out[:, :, :, :self.n] = buf[:, None, :, :self.n]               # (Bp, G, H, n, hd)
            return out.view(Bp * repeats, H, M, hd)                        # (Bp * G, H, max_len, hd)
        self.k_buf, self.v_buf = repeat(self.k_buf), repeat(self.v_buf)
        self.keys, self.values = self.k_buf[:, :, :self.n], self.v_buf[:, :, :self.n]


def decode_attention(module, query, key, value, attention_mask, scaling=None, **kwargs):
    """
    Attention for a single new token per row, plugged into the HF model by name for generate()'s decode
    steps (AttentionInterface is transformers' hook for this; the model code is unchanged).
    query (B, H, 1, hd); key, value (B, Hkv, L, hd), views of the cache; attention_mask (B, 1, 1, L) additive
    (0 = attend, -inf = padding). With one query there is nothing to tile, and on CPU sdpa's flash kernel
    costs ~1.7x these two matmuls at the tiny model's shapes (tests/bench.py row 1 shows the whole effect).
    GQA: the H / Hkv query heads that share a key/value head become rows of one matmul, so the cache is
    never expanded to H heads.
    """
    B, H, q_len, hd = query.shape
    Hkv = key.shape[1]
    assert q_len == 1, "decode_attention serves one new token per row; prefill and training use the model's own"
    q = query.reshape(B, Hkv, H // Hkv, hd)                                      # (B, Hkv, H/Hkv, hd)
    scale = hd ** -0.5 if scaling is None else scaling
    scores = torch.matmul(q, key.transpose(-1, -2)).mul_(scale).add_(attention_mask)     # (B, Hkv, H/Hkv, L)
    probs = scores.float().softmax(-1).to(value.dtype)  # fp32 softmax (bf16 under autocast), as HF eager does
    return torch.matmul(probs, value).reshape(B, 1, H, hd), None      # (B, q=1, H, hd), no attention weights


AttentionInterface.register("nanoentropy_decode", decode_attention)


def encode_prompts(tokenizer, prompts, device):
    """Left-pad a list of prompt strings -> ids (Bp, P), mask (Bp, P). Chat-templated prompts already
    carry their special tokens, so we add none then."""
    enc = tokenizer(prompts, return_tensors="pt", padding=True, padding_side="left",
                    add_special_tokens=not getattr(tokenizer, "chat_template", None))
    return enc.input_ids.to(device), enc.attention_mask.to(device)


def _uniforms(n, generator, device):
    """(n, 1) fp64 draws from U[0, 1). generator: one torch.Generator, or a list of them, one per prompt, each
    drawing for its n / len(list) consecutive rows: then a prompt's samples depend on its own stream only, not
    on which prompts share its batch (train.py seeds one per prompt: the same completions on 1 GPU or 8)."""
    if isinstance(generator, (list, tuple)):
        k = n // len(generator)
        return torch.cat([torch.rand(k, 1, generator=g, dtype=torch.float64, device=device) for g in generator])
    return torch.rand(n, 1, generator=generator, dtype=torch.float64, device=device)


def sample_token(logits, temperature, generator):
    """
    logits: (B, V) fp32 scores of the next token. Returns tokens (B,) and their log-probs (B,) under
    softmax(logits / temperature), the distribution the loss models (so no top-k / top-p truncation,
    which the loss would not model). temperature 0 = greedy, and then the log-prob is under softmax(logits).
    """
    if temperature == 0:
        tokens = logits.argmax(-1)                                            # (B,)
        return tokens, F.log_softmax(logits, -1).gather(-1, tokens[:, None]).squeeze(-1)
    z = logits / temperature                                                  # (B, V)
    logp_all = F.log_softmax(z, -1)                                           # (B, V)
    # one draw per row by inverting the CDF: u ~ U[0, total), the first token whose cumulative probability
    # exceeds u. What torch.multinomial samples, with one random number per row and much faster on CPU. fp64
    # cumsum: the last of 152k terms still counts. The clamp guards against u rounding up (odds ~1e-16)
    cdf = logp_all.exp().cumsum(-1, dtype=torch.float64)                      # (B, V)
    u = _uniforms(z.shape[0], generator, z.device) * cdf[:, -1:]                  # (B, 1)
    tokens = torch.searchsorted(cdf, u, right=True).squeeze(-1).clamp_(max=z.shape[-1] - 1)  # (B,)
    return tokens, logp_all.gather(-1, tokens[:, None]).squeeze(-1)


def generate(model, prompt_ids, prompt_mask, group_size, max_new_tokens, eos_ids, pad_id,
             temperature=1.0, generator=None):
    """
    KV-cached sampling of group_size completions per prompt.
    prompt_ids, prompt_mask: (Bp, P) left-padded.
    Returns completion ids (B, T), completion mask (B, T) (1 up to and including the EOS), and the
    sampler's log-prob of each completion token (B, T), with B = Bp * group_size and T <= max_new_tokens.
    """
    was_training = model.training
    model.eval()  # dropout off while sampling (train-mode sampling is a known silent accuracy killer)
    # inference_mode, not only no_grad: no autograd bookkeeping at all, ~10% faster with 8 rows, where per-op
    # overhead dominates. Its tensors can never enter autograd: the results are cloned on the way out
    with torch.inference_mode():
        eos = torch.tensor(eos_ids, device=prompt_ids.device)
        (Bp, P), G, N = prompt_ids.shape, group_size, max_new_tokens
        B = Bp * G
        # prefill: every prompt once. Left padding shifts rows, so positions count real tokens only.
        # logits_to_keep=1: only the last position's logits (at V = 152k the rest would cost a lot)
        pos = (prompt_mask.cumsum(1) - 1).clamp(min=0)                                        # (Bp, P)
        cache = Cache(layer_class_to_replicate=lambda: PreallocatedLayer(P + N))
        kw = with_cache(model, cache)       # the forward's KV-cache argument, by the name this transformers uses
        out = model(input_ids=prompt_ids, attention_mask=prompt_mask, position_ids=pos, use_cache=True,
                    logits_to_keep=1, **kw)
        # copy each prompt's cache to its G rows: the prompt is prefilled once, not G times
        cache.batch_repeat_interleave(G)
        logits = out.logits[:, -1].float().repeat_interleave(G, 0)                            # (B, V)
        # everything the loop writes is allocated once up front, like the cache: no per-token torch.cat
        dev = prompt_ids.device
        # the attention mask, additive, one column per position: -inf on prompt padding and on positions fed
        # after a row finished, 0 elsewhere. (B, 1, 1, keys) is the shape the attention takes as it is
        bias = torch.zeros(B, 1, 1, P + N, device=dev)                                       # (B, 1, 1, P+N)
        bias[:, 0, 0, :P].masked_fill_(prompt_mask.repeat_interleave(G, 0) == 0, float("-inf"))
        n_real = prompt_mask.sum(1).repeat_interleave(G, 0)        # (B,) real tokens so far, for positions
        tokens = prompt_ids.new_full((B, N), pad_id)                                          # (B, N)
        masks = torch.zeros(B, N, dtype=torch.long, device=dev)                               # (B, N)
        logps = torch.zeros(B, N, dtype=torch.float32, device=dev)                            # (B, N)
        done = torch.zeros(B, dtype=torch.bool, device=dev)                                   # (B,)
        attn_impl = model.config._attn_implementation
        model.config._attn_implementation = "nanoentropy_decode"   # decode_attention, for the loop only
        try:
            for t in range(N):
                tok, lp = sample_token(logits, temperature, generator)                        # (B,), (B,)
                real = ~done                      # this token belongs to the completion (incl. its EOS)
                tokens[:, t] = tok.masked_fill(done, pad_id)
                masks[:, t] = real
                logps[:, t] = lp.masked_fill(done, 0.0)
                done = done | torch.isin(tok, eos)
                if done.all() or t == N - 1:  # stop the loop as soon as every row has stopped
                    break
                # feed the new token; a finished row runs on padding that nothing attends to. (done.all() above:
                # a GPU->CPU sync per token, cheap next to the forward)
                bias[:, 0, 0, P + t].masked_fill_(~real, float("-inf"))
                n_real += real
                out = model(input_ids=tokens[:, t:t + 1], attention_mask=bias[..., :P + t + 1],
                            position_ids=(n_real - 1)[:, None], use_cache=True, **kw)
                logits = out.logits[:, -1].float()                                            # (B, V)
        finally:  # back to the model's own attention, even if the loop raised
            model.config._attn_implementation = attn_impl
    model.train(was_training)
    return tokens[:, :t + 1].clone(), masks[:, :t + 1].clone(), logps[:, :t + 1].clone()
