"""Tests for core.model (params, forward, config, interventions): parameters, the forward pass
against plain references, its cache, dropout, interventions, the KV cache and bad input."""
from __future__ import annotations

import math

import numpy as np
import pytest

import core
from core.model.config import GPTConfig
from core.model.forward import KVCache, check_ids, gpt_forward
from core.model.interventions import Interventions
from core.model.ops import merge_heads
from core.model.params import check_params, init_params, param_shapes

CONFIG = GPTConfig(vocab_size=23, n_positions=12, n_embd=16, n_layer=2, n_head=4)


def random_params(config=CONFIG, seed=0, dtype=np.float64):
    """init_params with non-trivial LayerNorm weights and biases, so that every parameter matters."""
    rng = np.random.default_rng(seed + 100)
    params = init_params(config, seed)
    for name in params:
        if ".ln_" in name or name.endswith(".bias"):
            params[name] = params[name] + rng.normal(0, 0.3, params[name].shape)
        else:
            params[name] = params[name] * 10  # larger weights: attention patterns far from uniform
    return {name: value.astype(dtype) for name, value in params.items()}


def reference_forward(params, config, ids):
    """GPT-2 written plainly, one token and one head at a time, float64: logits [L, V]."""
    p = {name: value.astype(np.float64) for name, value in params.items()}
    eps, n_head, d_head = config.layer_norm_epsilon, config.n_head, config.d_head

    def ln(row, prefix):
        mean = sum(row) / len(row)
        var = sum((value - mean) ** 2 for value in row) / len(row)
        return (row - mean) / math.sqrt(var + eps) * p[prefix + ".weight"] + p[prefix + ".bias"]

    def gelu(value):
        return 0.5 * value * (1 + np.tanh(math.sqrt(2 / math.pi) * (value + 0.044715 * value**3)))

    rows = [p["transformer.wte.weight"][token] + p["transformer.wpe.weight"][i] for i, token in enumerate(ids)]
    for layer in range(config.n_layer):
        h = f"transformer.h.{layer}."
        normed = [ln(row, h + "ln_1") for row in rows]
        qkv = [row @ p[h + "attn.c_attn.weight"] + p[h + "attn.c_attn.bias"] for row in normed]
        attended = []
        for i in range(len(rows)):
            heads = []
            for head in range(n_head):
                cut = slice(head * d_head, (head + 1) * d_head)
                q = qkv[i][: config.n_embd][cut]
                scores = np.array([q @ qkv[j][config.n_embd: 2 * config.n_embd][cut] / math.sqrt(d_head)
                                   for j in range(i + 1)])
                weights = np.exp(scores - scores.max())
                weights /= weights.sum()
                heads.append(sum(weights[j] * qkv[j][2 * config.n_embd:][cut] for j in range(i + 1)))
            attended.append(np.concatenate(heads) @ p[h + "attn.c_proj.weight"] + p[h + "attn.c_proj.bias"])
        rows = [row + out for row, out in zip(rows, attended)]
        hidden = [gelu(ln(row, h + "ln_2") @ p[h + "mlp.c_fc.weight"] + p[h + "mlp.c_fc.bias"]) for row in rows]
        rows = [row + out @ p[h + "mlp.c_proj.weight"] + p[h + "mlp.c_proj.bias"] for row, out in zip(rows, hidden)]
    return np.array([ln(row, "transformer.ln_f") @ p["lm_head.weight"].T for row in rows])


@pytest.fixture
def params():
    return random_params()


@pytest.fixture
def ids():
    return np.array([3, 7, 7, 1, 22, 0, 5, 9])


# --- parameters ----------------------------------------------------------------------------

def test_init_params_follows_gpt2_names_shapes_and_init():
    params = init_params(CONFIG, seed=0)
    assert list(params) == list(param_shapes(CONFIG))
    assert params["transformer.h.1.attn.c_attn.weight"].shape == (16, 48)
    assert params["lm_head.weight"].shape == (23, 16)
    assert all(value.dtype == np.float32 for value in params.values())
    assert np.all(params["transformer.h.0.ln_1.weight"] == 1) and np.all(params["transformer.h.0.ln_1.bias"] == 0)
    big = init_params(GPTConfig(vocab_size=500, n_embd=64, n_layer=2), seed=0)
    assert abs(big["transformer.wte.weight"].std() - 0.02) < 0.001
    assert abs(big["transformer.h.0.mlp.c_proj.weight"].std() - 0.02 / 2) < 0.001  # 1/sqrt(2 * n_layer)
    assert not np.array_equal(big["lm_head.weight"], big["transformer.wte.weight"])  # not tied
    np.testing.assert_array_equal(init_params(CONFIG, 3)["lm_head.weight"], init_params(CONFIG, 3)["lm_head.weight"])


def test_check_params_names_every_problem(params):
    check_params(params, CONFIG)
    with pytest.raises(ValueError, match="missing"):
        check_params({k: v for k, v in params.items() if k != "lm_head.weight"}, CONFIG)
    with pytest.raises(ValueError, match="unexpected"):
        check_params({**params, "extra": np.zeros(1)}, CONFIG)
    with pytest.raises(ValueError, match="shape"):
        check_params({**params, "lm_head.weight": np.zeros((23, 15))}, CONFIG)
    with pytest.raises(TypeError, match="float32 or float64"):
        check_params({**params, "lm_head.weight": np.zeros((23, 16), dtype=np.int32)}, CONFIG)
    with pytest.raises(TypeError, match="mix dtypes"):
        check_params({**params, "lm_head.weight": np.zeros((23, 16), dtype=np.float32)}, CONFIG)
    with pytest.raises(ValueError, match="NaN"):
        check_params({**params, "lm_head.weight": np.full((23, 16), np.nan)}, CONFIG)


# --- the forward pass against references ---------------------------------------------------------

def test_forward_matches_a_plain_reference(params, ids):
    logits = gpt_forward(params, CONFIG, ids)
    assert logits.shape == (len(ids), CONFIG.vocab_size) and logits.dtype == np.float64
    np.testing.assert_allclose(logits, reference_forward(params, CONFIG, ids), rtol=0, atol=1e-10)


def test_forward_matches_torch_gpt2(params, ids):
    torch = pytest.importorskip("torch")
    functional = torch.nn.functional
    p = {name: torch.from_numpy(value) for name, value in params.items()}
    x = p["transformer.wte.weight"][torch.from_numpy(ids)] + p["transformer.wpe.weight"][: len(ids)]
    eps = CONFIG.layer_norm_epsilon
    for layer in range(CONFIG.n_layer):
        h = f"transformer.h.{layer}."
        a = functional.layer_norm(x, (16,), p[h + "ln_1.weight"], p[h + "ln_1.bias"], eps)
        q, k, v = (a @ p[h + "attn.c_attn.weight"] + p[h + "attn.c_attn.bias"]).split(16, dim=-1)
        q, k, v = (t.view(len(ids), 4, 4).transpose(0, 1) for t in (q, k, v))
        z = functional.scaled_dot_product_attention(q, k, v, is_causal=True).transpose(0, 1).reshape(len(ids), 16)
        x = x + z @ p[h + "attn.c_proj.weight"] + p[h + "attn.c_proj.bias"]
        m = functional.layer_norm(x, (16,), p[h + "ln_2.weight"], p[h + "ln_2.bias"], eps)
        m = functional.gelu(m @ p[h + "mlp.c_fc.weight"] + p[h + "mlp.c_fc.bias"], approximate="tanh")
        x = x + m @ p[h + "mlp.c_proj.weight"] + p[h + "mlp.c_proj.bias"]
    x = functional.layer_norm(x, (16,), p["transformer.ln_f.weight"], p["transformer.ln_f.bias"], eps)
    expected = (x @ p["lm_head.weight"].T).numpy()
    np.testing.assert_allclose(gpt_forward(params, CONFIG, ids), expected, rtol=0, atol=1e-10)


def test_float32_params_give_float32_logits_close_to_float64(ids):
    logits32 = gpt_forward(random_params(dtype=np.float32), CONFIG, ids)
    assert logits32.dtype == np.float32
    np.testing.assert_allclose(logits32, gpt_forward(random_params(), CONFIG, ids), rtol=0, atol=1e-3)


def test_batched_forward_equals_each_row(params):
    batch = np.random.default_rng(1).integers(0, CONFIG.vocab_size, (3, 9))
    logits = gpt_forward(params, CONFIG, batch)
    assert logits.shape == (3, 9, CONFIG.vocab_size)
    for row, row_logits in zip(batch, logits):
        np.testing.assert_allclose(row_logits, gpt_forward(params, CONFIG, row), rtol=0, atol=1e-12)


def test_a_later_token_never_changes_earlier_logits(params, ids):
    changed = ids.copy()
    changed[-1] = (changed[-1] + 1) % CONFIG.vocab_size
    full, other = gpt_forward(params, CONFIG, ids), gpt_forward(params, CONFIG, changed)
    np.testing.assert_allclose(full[:-1], other[:-1], rtol=0, atol=1e-12)
    assert not np.allclose(full[-1], other[-1])


# --- the cache -------------------------------------------------------------------------------

def test_cache_holds_every_hook_with_documented_shapes(params):
    batch = np.random.default_rng(2).integers(0, CONFIG.vocab_size, (2, 5))
    cache = {}
    logits = gpt_forward(params, CONFIG, batch, cache=cache)
    np.testing.assert_array_equal(logits, gpt_forward(params, CONFIG, batch))
    B, L, C, H, D = 2, 5, 16, 4, 4
    expected = {"hook_tokens": (B, L), "hook_embed": (B, L, C), "hook_pos_embed": (L, C), "ln_final.hook_normalized": (B, L, C),
                "ln_final.hook_scale": (B, L, 1)}
    for layer in range(CONFIG.n_layer):
        b = f"blocks.{layer}."
        expected.update({b + "hook_resid_pre": (B, L, C), b + "ln1.hook_normalized": (B, L, C),
                         b + "ln1.hook_scale": (B, L, 1), b + "attn.hook_q": (B, H, L, D),
                         b + "attn.hook_k": (B, H, L, D), b + "attn.hook_v": (B, H, L, D),
                         b + "attn.hook_attn_scores": (B, H, L, L), b + "attn.hook_pattern": (B, H, L, L),
                         b + "attn.hook_z": (B, H, L, D), b + "hook_attn_out": (B, L, C),
                         b + "hook_resid_mid": (B, L, C), b + "ln2.hook_normalized": (B, L, C),
                         b + "ln2.hook_scale": (B, L, 1), b + "mlp.hook_pre": (B, L, 4 * C),
                         b + "mlp.hook_post": (B, L, 4 * C), b + "hook_mlp_out": (B, L, C),
                         b + "hook_resid_post": (B, L, C)})
    assert {name: value.shape for name, value in cache.items()} == expected


def test_the_display_only_scores_can_be_left_out():
    model = core.load_default()  # float32, 32 positions: the C kernel's tile path
    ids = np.random.default_rng(3).integers(0, model.config.vocab_size, (2, model.config.n_positions))
    full, lean = {}, {}
    logits = gpt_forward(model.params, model.config, ids, cache=full)
    np.testing.assert_array_equal(gpt_forward(model.params, model.config, ids, cache=lean, record_scores=False), logits)
    np.testing.assert_array_equal(gpt_forward(model.params, model.config, ids), logits)
    assert set(full) - set(lean) == {f"blocks.{layer}.attn.hook_attn_scores" for layer in range(model.config.n_layer)}


def test_cache_obeys_the_residual_and_attention_identities(params, ids):
    cache = {}
    logits = gpt_forward(params, CONFIG, ids, cache=cache)
    p = params
    np.testing.assert_allclose(cache["blocks.0.hook_resid_pre"], cache["hook_embed"] + cache["hook_pos_embed"])
    for layer in range(CONFIG.n_layer):
        b, h = f"blocks.{layer}.", f"transformer.h.{layer}."
        np.testing.assert_allclose(cache[b + "hook_resid_mid"], cache[b + "hook_resid_pre"] + cache[b + "hook_attn_out"])
        np.testing.assert_allclose(cache[b + "hook_resid_post"], cache[b + "hook_resid_mid"] + cache[b + "hook_mlp_out"])
        pattern, scores = cache[b + "attn.hook_pattern"], cache[b + "attn.hook_attn_scores"]
        np.testing.assert_allclose(pattern.sum(-1), 1.0)
        assert np.all(np.triu(pattern, 1) == 0) and np.all(np.isneginf(scores[:, np.triu_indices(len(ids), 1)[0],
                                                                              np.triu_indices(len(ids), 1)[1]]))
        softmax = np.exp(scores - scores.max(-1, keepdims=True))
        np.testing.assert_allclose(softmax / softmax.sum(-1, keepdims=True), pattern, atol=1e-12)
        np.testing.assert_allclose(cache[b + "attn.hook_z"], pattern @ cache[b + "attn.hook_v"], atol=1e-12)
        np.testing.assert_allclose(cache[b + "hook_attn_out"], merge_heads(cache[b + "attn.hook_z"])
                                   @ p[h + "attn.c_proj.weight"] + p[h + "attn.c_proj.bias"], atol=1e-12)
        x, scale = cache[b + "hook_resid_pre"], cache[b + "ln1.hook_scale"]
        np.testing.assert_allclose((x - x.mean(-1, keepdims=True)) / scale * p[h + "ln_1.weight"] + p[h + "ln_1.bias"],
                                   cache[b + "ln1.hook_normalized"], atol=1e-12)
    np.testing.assert_allclose(cache["ln_final.hook_normalized"] @ p["lm_head.weight"].T, logits, atol=1e-12)


# --- dropout ---------------------------------------------------------------------------------

def test_dropout_stores_the_scaled_keep_masks_it_used(params):
    batch = np.random.default_rng(3).integers(0, CONFIG.vocab_size, (4, 10))
    cache = {}
    gpt_forward(params, CONFIG, batch, cache=cache, dropout=0.25, rng=np.random.default_rng(0))
    masks = [cache["hook_embed_dropout"]] + [cache[f"blocks.{l}.hook_{part}_dropout"]
                                            for l in range(CONFIG.n_layer) for part in ("attn", "mlp")]
    for mask in masks:
        assert mask.shape == (4, 10, 16)
        assert set(np.unique(mask)) == {0.0, 1 / 0.75}
        assert 0.15 < (mask == 0).mean() < 0.35
    np.testing.assert_allclose(cache["blocks.0.hook_resid_pre"],
                               (cache["hook_embed"] + cache["hook_pos_embed"]) * cache["hook_embed_dropout"])
    for layer in range(CONFIG.n_layer):
        b = f"blocks.{layer}."
        np.testing.assert_allclose(cache[b + "hook_resid_mid"],
                                   cache[b + "hook_resid_pre"] + cache[b + "hook_attn_out"] * cache[b + "hook_attn_dropout"])
        np.testing.assert_allclose(cache[b + "hook_resid_post"],
                                   cache[b + "hook_resid_mid"] + cache[b + "hook_mlp_out"] * cache[b + "hook_mlp_dropout"])


def test_dropout_is_reproducible_and_off_by_default(params, ids):
    first = gpt_forward(params, CONFIG, ids, dropout=0.5, rng=np.random.default_rng(7))
    again = gpt_forward(params, CONFIG, ids, dropout=0.5, rng=np.random.default_rng(7))
    np.testing.assert_array_equal(first, again)
    assert not np.allclose(first, gpt_forward(params, CONFIG, ids))
    cache = {}
    gpt_forward(params, CONFIG, ids, cache=cache)
    assert not any("dropout" in name for name in cache)


@pytest.mark.parametrize("rate", [-0.1, 1.0, float("nan"), "0.1"])
def test_bad_dropout_rates_are_rejected(params, ids, rate):
    with pytest.raises(ValueError, match="dropout"):
        gpt_forward(params, CONFIG, ids, dropout=rate, rng=np.random.default_rng(0))


def test_dropout_needs_a_generator(params, ids):
    with pytest.raises(TypeError, match="Generator"):
        gpt_forward(params, CONFIG, ids, dropout=0.1)


# --- interventions ---------------------------------------------------------------------------

def run_with(params, ids, **changes):
    cache = {}
    logits = gpt_forward(params, CONFIG, ids, cache=cache, interventions=Interventions(**changes))
    return logits, cache


def test_default_interventions_are_the_plain_forward(params, ids):
    logits, _ = run_with(params, ids)
    np.testing.assert_array_equal(logits, gpt_forward(params, CONFIG, ids))
    assert Interventions(zero_heads=[(np.int64(1), 2)]) == Interventions(zero_heads={(1, 2)})  # hashable, normalised


def test_zeroing_a_head_zeroes_its_output_only(params, ids):
    logits, cache = run_with(params, ids, zero_heads={(1, 2)})
    z = cache["blocks.1.attn.hook_z"]
    assert np.all(z[2] == 0) and np.all(np.abs(z[[0, 1, 3]]).sum(axis=(1, 2)) > 0)
    _, plain = run_with(params, ids)
    np.testing.assert_array_equal(cache["blocks.0.hook_resid_post"], plain["blocks.0.hook_resid_post"])
    assert not np.allclose(logits, gpt_forward(params, CONFIG, ids))


def test_dropping_the_causal_mask_lets_tokens_see_the_future(params, ids):
    logits, cache = run_with(params, ids, causal=False)
    pattern = cache["blocks.0.attn.hook_pattern"]
    assert np.all(np.triu(pattern, 1)[:, 0, 1:] > 0)
    assert np.isfinite(cache["blocks.0.attn.hook_attn_scores"]).all()
    np.testing.assert_allclose(pattern.sum(-1), 1.0)
    assert not np.allclose(logits[0], gpt_forward(params, CONFIG, ids)[0])


def test_dropping_the_scale_uses_plain_dot_products(params, ids):
    _, cache = run_with(params, ids, scale_scores=False)
    q, k = cache["blocks.0.attn.hook_q"], cache["blocks.0.attn.hook_k"]
    raw = q @ np.swapaxes(k, -1, -2)
    visible = np.tril(np.ones((len(ids), len(ids)), dtype=bool))
    np.testing.assert_allclose(cache["blocks.0.attn.hook_attn_scores"][:, visible], raw[:, visible])
    softmax = np.exp(np.where(visible, raw, -np.inf) - raw.max(-1, keepdims=True))
    np.testing.assert_allclose(cache["blocks.0.attn.hook_pattern"], softmax / softmax.sum(-1, keepdims=True), atol=1e-12)


def test_skipping_a_layer_norm_passes_the_residual_through(params, ids):
    _, cache = run_with(params, ids, skip_ln={(0, "ln_2")})
    np.testing.assert_array_equal(cache["blocks.0.ln2.hook_normalized"], cache["blocks.0.hook_resid_mid"])
    assert "blocks.0.ln2.hook_scale" not in cache and "blocks.0.ln1.hook_scale" in cache


def test_skipping_a_residual_keeps_only_the_sublayer_output(params, ids):
    _, cache = run_with(params, ids, skip_residual={(1, "attn"), (0, "mlp")})
    np.testing.assert_array_equal(cache["blocks.1.hook_resid_mid"], cache["blocks.1.hook_attn_out"])
    np.testing.assert_array_equal(cache["blocks.0.hook_resid_post"], cache["blocks.0.hook_mlp_out"])


def test_relu_replaces_gelu(params, ids):
    _, cache = run_with(params, ids, activation="relu")
    pre = cache["blocks.0.mlp.hook_pre"]
    np.testing.assert_array_equal(cache["blocks.0.mlp.hook_post"], np.maximum(pre, 0))


@pytest.mark.parametrize("changes, error", [
    ({"zero_heads": {(2, 0)}}, ValueError), ({"zero_heads": {(0, 4)}}, ValueError),
    ({"skip_ln": {(0, "ln_3")}}, ValueError), ({"skip_residual": {(5, "mlp")}}, ValueError),
    ({"zero_heads": {0}}, ValueError), ({"zero_heads": {(0, 1, 2)}}, ValueError),
    ({"activation": "tanh"}, ValueError), ({"causal": "no"}, TypeError), ({"zero_heads": {(0.5, 1)}}, TypeError),
])
def test_bad_interventions_are_rejected(params, ids, changes, error):
    with pytest.raises(error):
        gpt_forward(params, CONFIG, ids, interventions=Interventions(**changes))


def test_zero_head_by_row_ablates_each_row_as_zero_heads_does_alone(params, ids):
    """Row b of one batched pass equals a pass of its own with that one head zeroed."""
    zeroed = (None, (0, 1), (1, 0))
    batch = np.broadcast_to(ids, (len(zeroed), len(ids)))
    together = gpt_forward(params, CONFIG, batch, interventions=Interventions(zero_head_by_row=zeroed))
    for row, pair in enumerate(zeroed):
        alone = gpt_forward(params, CONFIG, ids, interventions=Interventions(zero_heads={pair} if pair else set()))
        np.testing.assert_allclose(together[row], alone, rtol=1e-5, atol=1e-6)
    assert not np.allclose(together[1], together[0])


@pytest.mark.parametrize("zeroed", [((0, 1),), ((0, 1), None, None), ((0, 9), None)])
def test_zero_head_by_row_needs_one_valid_pair_per_row(params, ids, zeroed):
    batch = np.broadcast_to(ids, (2, len(ids)))
    with pytest.raises(ValueError, match="zero_head"):
        gpt_forward(params, CONFIG, batch, interventions=Interventions(zero_head_by_row=zeroed))


# --- the KV cache ----------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_kv_cache_decoding_equals_the_full_forward(ids, dtype):
    params = random_params(dtype=dtype)
    full = gpt_forward(params, CONFIG, ids)
    kv_cache = KVCache()
    steps = [gpt_forward(params, CONFIG, ids[:3], kv_cache=kv_cache)]
    for token in ids[3:]:
        cache = {}
        steps.append(gpt_forward(params, CONFIG, [token], kv_cache=kv_cache, cache=cache))
        assert cache["blocks.0.attn.hook_q"].shape == (4, 1, 4)  # one query vector per head
        assert cache["blocks.0.attn.hook_k"].shape == (4, kv_cache.length, 4)  # against every cached key
    assert kv_cache.length == len(ids)
    tolerance = 1e-4 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(np.concatenate(steps), full, rtol=0, atol=tolerance)


def test_kv_cache_refuses_to_grow_past_the_context(params):
    kv_cache = KVCache()
    gpt_forward(params, CONFIG, np.zeros(CONFIG.n_positions, dtype=int), kv_cache=kv_cache)
    with pytest.raises(ValueError, match="context"):
        gpt_forward(params, CONFIG, [1], kv_cache=kv_cache)


# --- bad ids ---------------------------------------------------------------------------------

@pytest.mark.parametrize("ids, error, message", [
    ([], ValueError, "empty"), ([[]], ValueError, "empty"), (np.zeros((1, 1, 2), dtype=int), ValueError, r"\[L\]"),
    ([1.0, 2.0], TypeError, "integers"), ([True], TypeError, "integers"), (["a"], TypeError, "integers"),
    ([0, 23], ValueError, "0..22"), ([-1], ValueError, "0..22"), (np.zeros(13, dtype=int), ValueError, "context"),
])
def test_bad_ids_are_clear_errors(params, ids, error, message):
    with pytest.raises(error, match=message):
        gpt_forward(params, CONFIG, ids)


def test_check_ids_returns_int64():
    assert check_ids(np.array([1, 2], dtype=np.uint8), CONFIG).dtype == np.int64


# --- the config ----------------------------------------------------------------------------

def test_config_round_trips_through_gpt2_keys():
    hf = CONFIG.to_hf_dict(eos_token_id=0)
    assert hf["model_type"] == "gpt2" and hf["n_ctx"] == hf["n_positions"] == 12 and hf["n_inner"] is None
    assert GPTConfig.from_hf_dict(hf) == CONFIG and CONFIG.d_head == 4


@pytest.mark.parametrize("changes, error", [
    ({"vocab_size": 2}, ValueError), ({"n_layer": 0}, ValueError), ({"n_head": 3}, ValueError),
    ({"n_embd": 16.0}, TypeError), ({"n_positions": True}, TypeError), ({"layer_norm_epsilon": 0}, ValueError),
    ({"layer_norm_epsilon": float("nan")}, ValueError), ({"layer_norm_epsilon": "1e-5"}, TypeError),
])
def test_config_out_of_range_is_rejected(changes, error):
    fields = {"vocab_size": 23, "n_positions": 12, "n_embd": 16, "n_layer": 2, "n_head": 4, **changes}
    with pytest.raises(error):
        GPTConfig(**fields)


def test_unknown_word_notices_shorten_long_words():
    from helpers.models import random_model

    model = random_model()
    trace = model.run("the sky is " + "a" * 5000)
    notice = next(notice for notice in trace.notices if "unknown" in notice)
    assert ("a" * 30 + "…") in notice and len(notice) < 100
