"""The tiny model and its tokenizer round-trip through save_pretrained / from_pretrained, and the
chunked log-prob + entropy matches the naive full-logits computation (values and gradients)."""
import os

import pytest
import torch
import torch.nn.functional as F

from nanoentropy.config import Config
from nanoentropy.model import (_LogpEntropy, build_char_tokenizer, build_tiny_model, eos_ids, load_policy,
                               policy_logp_entropy, warm_start)


def test_char_tokenizer_round_trip(tmp_path):
    tok = build_char_tokenizer()
    text = "12+34=\\boxed{-3/4}\nThe answer is 7."
    ids = tok(text).input_ids
    assert len(ids) == len(text) and tok.decode(ids) == text
    assert tok("é").input_ids == [tok.unk_token_id]
    tok.save_pretrained(tmp_path)
    from transformers import AutoTokenizer
    again = AutoTokenizer.from_pretrained(tmp_path)
    assert again(text).input_ids == ids and again.eos_token_id == tok.eos_token_id


def test_tiny_model_save_reload_identical_logits(tmp_path):
    from transformers import AutoModelForCausalLM
    tok = build_char_tokenizer()
    model = build_tiny_model(Config(), tok).eval()
    n = sum(p.numel() for p in model.parameters())
    assert 0.5e6 < n < 2e6   # "about 1M parameters"
    model.save_pretrained(tmp_path)
    again = AutoModelForCausalLM.from_pretrained(tmp_path).eval()
    x = torch.tensor([tok("12+34=\\boxed{46}").input_ids])
    assert torch.equal(model(x).logits, again(x).logits)


def _naive(model, p_ids, p_mask, c_ids, c_mask, temperature):
    """Reference: full logits for every position, log_softmax over the vocabulary, gather."""
    ids, attn = torch.cat([p_ids, c_ids], 1), torch.cat([p_mask, c_mask], 1)
    logits = model(input_ids=ids, attention_mask=attn, position_ids=(attn.cumsum(1) - 1).clamp(min=0)).logits
    logits = logits[:, p_ids.shape[1] - 1:-1].float() / temperature
    logp_all = F.log_softmax(logits, -1)
    logp = logp_all.gather(-1, c_ids[..., None]).squeeze(-1) * c_mask
    entropy = -(logp_all.exp() * logp_all).sum(-1) * c_mask
    return logp, entropy


@pytest.mark.parametrize("chunk", [1, 5, 4096])
def test_chunked_logp_entropy_matches_naive(chunk):
    tok = build_char_tokenizer()
    model = build_tiny_model(Config(tiny_hidden=64, tiny_layers=2), tok)
    g = torch.Generator().manual_seed(0)
    p_ids = torch.randint(3, len(tok), (3, 4), generator=g)
    p_mask = torch.tensor([[0, 1, 1, 1], [1, 1, 1, 1], [0, 0, 1, 1]])
    c_ids = torch.randint(3, len(tok), (3, 5), generator=g)
    c_mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1], [1, 0, 0, 0, 0]])
    logp, ent = policy_logp_entropy(model, p_ids, p_mask, c_ids, c_mask, 0.8, chunk_size=chunk)
    (logp.sum() + ent.sum()).backward()
    grads = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    ref_logp, ref_ent = _naive(model, p_ids, p_mask, c_ids, c_mask, 0.8)
    (ref_logp.sum() + ref_ent.sum()).backward()
    assert torch.allclose(logp, ref_logp, atol=1e-5) and torch.allclose(ent, ref_ent, atol=1e-5)
    assert (ent[c_mask.bool()] > 0).all() and (logp[~c_mask.bool()] == 0).all()
    for a, p in zip(grads, model.parameters()):
        assert torch.allclose(a, p.grad, atol=1e-5)


def test_head_gradient_goes_into_grad_and_accumulates():
    """_LogpEntropy adds dL/dW into W.grad itself (it returns None for W): the first backward must create
    .grad, a second must add to it, as autograd would, and W must get its gradient even when h has none."""
    g = torch.Generator().manual_seed(0)
    head = torch.nn.Linear(6, 11, bias=False)
    h = torch.randn(7, 6, generator=g)                      # (N, D), no grad: only the head learns
    targets = torch.randint(0, 11, (7,), generator=g)
    w_logp, w_ent = torch.randn(7, generator=g), torch.randn(7, generator=g)   # arbitrary upstream gradients
    for _ in range(2):   # .grad is None, then holds the first gradient
        logp, ent = _LogpEntropy.apply(h, head.weight, targets, head, 0.7, 3)
        ((logp * w_logp).sum() + (ent * w_ent).sum()).backward()
    ref_w = head.weight.detach().clone().requires_grad_(True)
    logp_all = F.log_softmax(h @ ref_w.t() / 0.7, -1)
    ref_logp, ref_ent = logp_all.gather(-1, targets[:, None]).squeeze(-1), -(logp_all.exp() * logp_all).sum(-1)
    (2 * ((ref_logp * w_logp).sum() + (ref_ent * w_ent).sum())).backward()
    assert torch.allclose(logp, ref_logp, atol=1e-6) and torch.allclose(ent, ref_ent, atol=1e-6)
    assert torch.allclose(head.weight.grad, ref_w.grad, atol=1e-5)


def test_shared_prompt_forward_matches_one_forward_per_row():
    """group_size = G: each prompt runs once and its KV cache is copied to its G rows. The reference is the
    plain path (group_size=1), one prompt + completion forward per row: equal log-probs, entropies and
    gradients (the prompt's share of the gradient arrives through the copied cache). Left-padded prompts of
    two lengths, completions of different lengths; a micro-batch whose rows don't form groups falls back."""
    tok = build_char_tokenizer()
    model = build_tiny_model(Config(tiny_hidden=64, tiny_layers=2), tok)
    g = torch.Generator().manual_seed(0)
    G = 3
    p_ids = torch.randint(3, len(tok), (2, 5), generator=g)
    p_ids[1, :2] = tok.pad_token_id
    p_mask = torch.tensor([[1, 1, 1, 1, 1], [0, 0, 1, 1, 1]])
    p_ids, p_mask = p_ids.repeat_interleave(G, 0), p_mask.repeat_interleave(G, 0)           # (6, 5)
    c_ids = torch.randint(3, len(tok), (6, 4), generator=g)
    c_mask = torch.tensor([[1, 1, 1, 1], [1, 1, 0, 0], [1, 0, 0, 0], [1, 1, 1, 0], [1, 1, 1, 1], [1, 1, 0, 0]])
    w = torch.randn(2, 6, 4, generator=g)
    out, calls = {}, []
    model.register_forward_pre_hook(lambda m, args, kw: calls.append(tuple(kw["input_ids"].shape)), with_kwargs=True)
    for name, group_size in (("shared", G), ("plain", 1), ("fallback", 2)):
        model.zero_grad()
        logp, ent = policy_logp_entropy(model, p_ids, p_mask, c_ids, c_mask, 0.9, group_size=group_size)
        ((logp * w[0]).sum() + (ent * w[1]).sum()).backward()
        out[name] = [logp, ent] + [p.grad.clone() for p in model.parameters()]
    assert calls == [(2, 5), (6, 4), (6, 9), (6, 9)]   # shared: 2 prompts, then 6 completions; the others: 6 rows
    for a, b, c in zip(out["shared"], out["plain"], out["fallback"]):
        assert torch.allclose(a, b, atol=1e-5) and torch.equal(b, c)


def test_eos_ids_collects_generation_config():
    tok = build_char_tokenizer()
    model = build_tiny_model(Config(tiny_hidden=64, tiny_layers=2), tok)
    model.generation_config.eos_token_id = [1, 7]   # Qwen2.5-Instruct ships two EOS ids
    assert eos_ids(model, tok) == [1, 7]


def test_format_prompt_system_prompt_modes():
    """default: the template's own system prompt; none: an empty system turn; else the given text. A plain
    tokenizer (no chat template) gets the raw text whatever the mode."""
    from nanoentropy.model import format_prompt
    tok = build_char_tokenizer()
    assert format_prompt(tok, "1+2=", "be brief") == "1+2="
    # SmolLM2-Instruct's template, shortened: a default system turn when the chat has none
    tok.chat_template = ("{% if messages[0]['role'] != 'system' %}<s>DEFAULT</s>{% endif %}{% for m in messages %}"
                         "<{{ m['role'] }}>{{ m['content'] }}</s>{% endfor %}<assistant>")
    assert format_prompt(tok, "Q") == "<s>DEFAULT</s><user>Q</s><assistant>"
    assert format_prompt(tok, "Q", "none") == "<system></s><user>Q</s><assistant>"
    assert format_prompt(tok, "Q", "Be brief.") == "<system>Be brief.</s><user>Q</s><assistant>"


def test_cached_warm_start_base_is_prepared_like_a_fresh_policy(tmp_path):
    """The second run loads the base from the cache: it must get what load_policy gives every policy (a
    generation_config as it came, checkpointing when asked) and the very weights the first run saved."""
    cfg = Config(tiny_hidden=32, tiny_layers=1, tiny_heads=2, sft_steps=2, sft_batch_size=4, num_train=20,
                 eval_size=4, base_cache_dir=str(tmp_path))
    examples = [{"prompt": "1+2=", "truth": "3"}, {"prompt": "2+2=", "truth": "4"}]
    model, tok = load_policy(cfg, "cpu")
    first, path = warm_start(model, tok, examples, cfg, "cpu")
    cfg.grad_checkpointing = True           # not part of the cache key: the same base, prepared differently
    again, path2 = warm_start(*load_policy(cfg, "cpu"), examples, cfg, "cpu")
    assert path2 == path and again is not first
    assert again.generation_config.to_dict() == first.generation_config.to_dict() and again.model.gradient_checkpointing
    for a, b in zip(first.state_dict().values(), again.state_dict().values()):
        assert torch.equal(a, b)


def test_model_path_errors_are_one_line(tmp_path):
    """Regression (issue 13): a missing folder gave a 69-line OSError about repo ids; a folder without
    tokenizer files loaded an empty tokenizer and crashed much later in a reshape."""
    from nanoentropy.config import ConfigError
    with pytest.raises(ConfigError, match=f"cannot load model_name_or_path '{tmp_path}/nothing': no such folder"):
        load_policy(Config(model_name_or_path=str(tmp_path / "nothing")), "cpu")
    build_tiny_model(Config(tiny_hidden=32, tiny_layers=1, tiny_heads=2), build_char_tokenizer()).save_pretrained(
        tmp_path / "no_tokenizer")
    with pytest.raises(ConfigError, match=f"'{tmp_path}/no_tokenizer' has no tokenizer files") as e:
        load_policy(Config(model_name_or_path=str(tmp_path / "no_tokenizer")), "cpu")
    assert "\n" not in str(e.value)


@pytest.mark.filterwarnings("ignore:torch.distributed is")   # dist.py silences it, pytest resets warning filters
def test_checkpoint_keeps_the_generation_config_the_model_came_with(tmp_path):
    """Regression (issue 12): prepare_policy blanked the sampling defaults (our sampler never reads them) and
    checkpoints were saved blank; they must carry the model's own, so whoever loads one samples as intended."""
    import json
    from nanoentropy import dist
    tok = build_char_tokenizer()
    model = build_tiny_model(Config(tiny_hidden=32, tiny_layers=1, tiny_heads=2), tok)
    model.generation_config.update(do_sample=True, top_k=20, top_p=0.8, temperature=0.7, repetition_penalty=1.05)
    model.save_pretrained(tmp_path / "qwenlike")   # what Qwen2.5-Instruct ships, on the tiny model
    tok.save_pretrained(tmp_path / "qwenlike")
    policy, tok = load_policy(Config(model_name_or_path=str(tmp_path / "qwenlike")), "cpu")
    dist.save_checkpoint(str(tmp_path / "ckpt"), policy, tok, torch.optim.AdamW(policy.parameters()), {"step": 1})
    saved = json.load(open(tmp_path / "ckpt" / "generation_config.json"))
    assert (saved["top_k"], saved["top_p"], saved["temperature"], saved["repetition_penalty"]) == (20, 0.8, 0.7, 1.05)
    assert dist.finish_checkpoint(str(tmp_path / "ckpt")) == {"step": 1}   # and its trainer state


def test_save_folder_is_atomic_and_the_first_of_concurrent_builders_wins(tmp_path):
    """Runs started together (torchrun ranks, the lab's jobs) each convert the same GGUF file into the same
    cache folder: the second rename must not fail (it did: 'No such file or directory' from a shared
    path.tmp), and the folder in place stays whole, with no temporary folder left behind."""
    from multiprocessing import get_context
    from nanoentropy.model import save_folder
    tok = build_char_tokenizer()
    model = build_tiny_model(Config(), tok)
    path = str(tmp_path / "base")
    ctx = get_context("fork")
    procs = [ctx.Process(target=save_folder, args=(model, tok, path)) for _ in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join()
    assert [p.exitcode for p in procs] == [0, 0, 0]
    assert sorted(os.listdir(tmp_path)) == ["base"]
    save_folder(model, tok, path)                        # once more, in place already: keeps it, no error
    assert sorted(os.listdir(tmp_path)) == ["base"]
    again = load_policy(Config(model_name_or_path=path), torch.device("cpu"))[0]
    assert torch.equal(again.model.embed_tokens.weight, model.model.embed_tokens.weight)
