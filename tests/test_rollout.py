"""The KV-cached sampler against the no-cache reference, and the sampler's contract: G samples of one
prompt differ, EOS stops one row while others go on, log-probs match the training forward."""
import pytest
import torch

from nanoentropy.config import Config
from nanoentropy.model import build_char_tokenizer, build_tiny_model, policy_logp_entropy
from nanoentropy.rollout import decode_attention, encode_prompts, generate, sample_token
from reference import generate_nocache


@pytest.fixture(scope="module")
def tiny():
    tok = build_char_tokenizer()
    model = build_tiny_model(Config(tiny_hidden=64, tiny_layers=2), tok)
    ids, mask = encode_prompts(tok, ["1+2=", "123*45=", "9="], "cpu")   # three lengths: left padding in play
    return model, tok, ids, mask


def test_greedy_cached_equals_nocache(tiny):
    model, tok, ids, mask = tiny
    assert (mask == 0).any(), "the batch must contain padding for this test to mean anything"
    args = (model, ids, mask, 2, 12, [tok.eos_token_id], tok.pad_token_id)
    a_ids, a_mask, a_logp = generate(*args, temperature=0.0)
    b_ids, b_mask, b_logp = generate_nocache(*args, temperature=0.0)
    assert torch.equal(a_ids, b_ids) and torch.equal(a_mask, b_mask)
    assert torch.allclose(a_logp, b_logp, atol=1e-5)


def test_group_samples_differ_under_uniform_logits(tiny):
    """nanochat's regression: a batched sampler that broadcasts one draw to all G rows."""
    _, tok, ids, mask = tiny
    model = build_tiny_model(Config(tiny_hidden=64, tiny_layers=2), tok)
    with torch.no_grad():
        model.lm_head.weight.zero_()   # tied with the embedding: every logit is 0 -> uniform next token
    g = torch.Generator().manual_seed(0)
    out, _, logp = generate(model, ids[:1], mask[:1], 8, 3, [tok.eos_token_id], tok.pad_token_id, 1.0, generator=g)
    assert len(set(out[:, 0].tolist())) > 1
    assert torch.allclose(logp[:, 0], torch.full((8,), -torch.log(torch.tensor(float(len(tok))))))


def test_eos_stops_one_row_while_others_go_on(tiny):
    model, tok, ids, mask = tiny
    run = lambda stop: generate(model, ids, mask, 1, 10, stop, tok.pad_token_id, 1.0,
                                generator=torch.Generator().manual_seed(3))   # same seed: same draws
    free, _, _ = run([-1])   # -1 is no token: nothing stops
    # pick a token that row 0 emits first at step t and row 1 never emits: make it the EOS
    t, stop = next((t, free[0, t].item()) for t in range(1, 9)
                   if free[0, t].item() not in free[1].tolist() + free[0, :t].tolist())
    out, out_mask, _ = run([stop])
    assert out_mask[0].tolist() == [1] * (t + 1) + [0] * (out.shape[1] - t - 1)   # EOS itself is kept
    assert (out[0, t + 1:] == tok.pad_token_id).all()
    assert out_mask[1].sum() == out.shape[1] == 10                                  # row 1 ran to the cap
    assert torch.equal(out[1], free[1])


def test_loop_stops_when_all_rows_done(tiny):
    model, tok, ids, mask = tiny
    free, _, _ = generate(model, ids, mask, 1, 10, [-1], tok.pad_token_id, temperature=0.0)
    stops = free[:, 0].tolist()   # every row stops at its first token
    out, out_mask, _ = generate(model, ids, mask, 1, 10, stops, tok.pad_token_id, temperature=0.0)
    assert out.shape[1] == 1 and out_mask.sum() == 3


def test_sampler_logp_matches_training_forward(tiny):
    model, tok, ids, mask = tiny
    g = torch.Generator().manual_seed(1)
    out, out_mask, logp = generate(model, ids, mask, 4, 8, [tok.eos_token_id], tok.pad_token_id, 0.7, generator=g)
    train_logp, _ = policy_logp_entropy(model, ids.repeat_interleave(4, 0), mask.repeat_interleave(4, 0),
                                        out, out_mask, temperature=0.7)
    assert torch.allclose(logp, train_logp, atol=1e-5)


def test_eval_mode_while_sampling_and_restored(tiny):
    model, tok, ids, mask = tiny
    seen = []
    hook = model.register_forward_pre_hook(lambda m, a: seen.append(m.training))
    model.train()
    generate(model, ids, mask, 1, 2, [tok.eos_token_id], tok.pad_token_id, temperature=0.0)
    hook.remove()
    assert seen and not any(seen) and model.training


def test_sample_token_draws_the_softmax_at_the_temperature():
    """The inverse-CDF draw (one uniform per row) samples softmax(logits / T), and returns the log-probs of
    that distribution; T = 0 is greedy."""
    logits = torch.tensor([[2.0, 1.0, 0.0, -1.0]] * 20000)
    g = torch.Generator().manual_seed(0)
    for T in (1.0, 0.5):
        tok, logp = sample_token(logits, T, g)
        p = torch.softmax(logits[0] / T, -1)
        freq = torch.bincount(tok, minlength=4).float() / len(tok)
        assert torch.allclose(freq, p, atol=0.01), (T, freq, p)
        assert torch.allclose(logp, p.log()[tok])
    tok, _ = sample_token(logits, 0.0, g)
    assert (tok == 0).all()


@pytest.mark.parametrize("H, Hkv", [(4, 4), (14, 2)])   # plain multi-head, and Qwen2.5-0.5B's GQA (7 per kv head)
def test_decode_attention_equals_sdpa(H, Hkv):
    """The decode steps' two-matmul attention against torch's sdpa, with padding masked out of each row."""
    g = torch.Generator().manual_seed(0)
    B, L, hd = 3, 9, 16
    q = torch.randn(B, H, 1, hd, generator=g)
    k, v = torch.randn(B, Hkv, L, hd, generator=g), torch.randn(B, Hkv, L, hd, generator=g)
    keep = torch.ones(B, 1, 1, L, dtype=torch.bool)
    keep[0, ..., :3] = False                       # left padding
    keep[2, ..., 5:7] = False                      # positions fed after a row finished
    bias = torch.zeros(B, 1, 1, L).masked_fill(~keep, float("-inf"))
    out, _ = decode_attention(None, q, k, v, bias, scaling=0.3)                       # (B, 1, H, hd)
    ref = torch.nn.functional.scaled_dot_product_attention(
        q, k.repeat_interleave(H // Hkv, 1), v.repeat_interleave(H // Hkv, 1), attn_mask=keep, scale=0.3)
    assert torch.allclose(out, ref.transpose(1, 2), atol=1e-6)                       # sdpa: (B, H, 1, hd)
