"""The llama family (llama, qwen2, qwen3, mistral) against transformers itself.

Tiny random-weight checkpoints written by transformers (hidden 64, 2 layers, 4 heads, 2 key/value
heads), one per variant: Llama with llama3 RoPE scaling and a tied head; Qwen2 with q/k/v biases
and a padded vocabulary; Qwen3 with q/k norms and its own head_dim; Mistral; a bfloat16 sharded
Llama. Each is compared with transformers (logits, attention patterns, greedy generation) and
with itself (the KV-cache path against the full pass); TransformerLens 4's bridge, where it is
installed and boots offline, checks the hooks. Bad configs are refused with clear messages.
"""
from __future__ import annotations

import json

import numpy as np
import pytest

import core
from core.model.forward import KVCache, gpt_forward

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
tokenizers = pytest.importorskip("tokenizers")

TEXT = "The quick brown fox jumps over the lazy dog. Hello world, hello model!"
CORPUS = [TEXT, "a small corpus for a small tokenizer", "the cat sat on the mat", "0123456789 .,;:!?"] * 4
TOKENIZER_SIZE = 300


def write_tokenizer(folder, size=TOKENIZER_SIZE):
    """A byte-level BPE tokenizer.json of `size` tokens (<|endoftext|> first) trained on CORPUS."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=size, special_tokens=["<|endoftext|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tokenizer.train_from_iterator(CORPUS, trainer)
    folder.mkdir(parents=True, exist_ok=True)
    tokenizer.save(str(folder / "tokenizer.json"))
    (folder / "tokenizer_config.json").write_text(json.dumps({"eos_token": "<|endoftext|>"}))
    return tokenizer.get_vocab_size()


BASE = dict(hidden_size=64, intermediate_size=96, num_hidden_layers=2, num_attention_heads=4,
            num_key_value_heads=2, max_position_embeddings=128, eos_token_id=0, bos_token_id=0, pad_token_id=0)
VARIANTS = {
    "llama3-tied": ("LlamaConfig", "LlamaForCausalLM", dict(
        vocab_size=TOKENIZER_SIZE, tie_word_embeddings=True,
        rope_parameters={"rope_type": "llama3", "rope_theta": 500000.0, "factor": 8.0, "low_freq_factor": 1.0,
                         "high_freq_factor": 4.0, "original_max_position_embeddings": 16})),
    "qwen2-padded": ("Qwen2Config", "Qwen2ForCausalLM", dict(vocab_size=TOKENIZER_SIZE + 37, tie_word_embeddings=False)),
    "qwen3-head-dim": ("Qwen3Config", "Qwen3ForCausalLM", dict(vocab_size=TOKENIZER_SIZE, head_dim=24,
                                                              tie_word_embeddings=False)),
    "mistral": ("MistralConfig", "MistralForCausalLM", dict(vocab_size=TOKENIZER_SIZE, sliding_window=64,
                                                          tie_word_embeddings=False)),
    "llama-bf16-sharded": ("LlamaConfig", "LlamaForCausalLM", dict(vocab_size=TOKENIZER_SIZE,
                                                                   tie_word_embeddings=False)),
}


def write_checkpoint(folder, variant):
    """transformers' own tiny random checkpoint of `variant` in `folder`, with a tokenizer.json."""
    config_class, model_class, options = VARIANTS[variant]
    config = getattr(transformers, config_class)(**{**BASE, **options})
    torch.manual_seed(0)
    model = getattr(transformers, model_class)(config)
    with torch.no_grad():  # weights large enough that patterns and predictions are far from uniform
        for name, parameter in model.named_parameters():
            if parameter.ndim == 2:
                parameter.normal_(0, 0.3 if "embed" in name or "lm_head" in name else 0.15)
            elif name.endswith("bias"):
                parameter.normal_(0, 0.2)
            else:
                parameter.uniform_(0.5, 1.5)  # the norms' weights
    if variant == "llama-bf16-sharded":
        model = model.to(torch.bfloat16)
        model.save_pretrained(folder, max_shard_size="50KB")
    else:
        model.save_pretrained(folder)
    write_tokenizer(folder)
    return folder


@pytest.fixture(scope="module", params=list(VARIANTS))
def checkpoint(request, tmp_path_factory):
    folder = write_checkpoint(tmp_path_factory.mktemp(request.param), request.param)
    reference = transformers.AutoModelForCausalLM.from_pretrained(
        str(folder), attn_implementation="eager", dtype=torch.float32).eval()
    return request.param, folder, core.load_checkpoint(folder), reference


def test_the_checkpoint_reads_as_the_family_it_is(checkpoint):
    variant, folder, model, reference = checkpoint
    config = model.config
    assert config.family == "llama" and config.model_type == reference.config.model_type
    assert (config.n_head, config.n_kv_head, config.n_layer) == (4, 2, 2)
    assert config.head_dim == (24 if variant == "qwen3-head-dim" else 16)
    assert config.tied == (variant == "llama3-tied")
    assert config.attention_bias == (variant == "qwen2-padded") and config.qk_norm == (variant == "qwen3-head-dim")
    assert (config.rope_scaling is not None) == (variant == "llama3-tied")
    assert config.n_positions == (64 if variant == "mistral" else 128)  # Mistral: capped at its window
    if config.tied:
        assert "lm_head.weight" not in model.params
    assert model.parameter_count == sum(p.numel() for p in reference.parameters())
    assert all(value.dtype == np.float32 for value in model.params.values())


def test_logits_and_attention_equal_transformers(checkpoint):
    variant, folder, model, reference = checkpoint
    trace = model.run(TEXT)
    with torch.no_grad():
        out = reference(torch.tensor([trace.ids.tolist()]), output_attentions=True)
    expected = out.logits[0].double().numpy()
    np.testing.assert_allclose(trace.logits, expected, rtol=1e-4, atol=1e-4 * np.abs(expected).max())
    for layer, attentions in enumerate(out.attentions):
        np.testing.assert_allclose(trace[f"blocks.{layer}.attn.hook_pattern"], attentions[0].numpy(),
                                   rtol=1e-4, atol=1e-6)
    assert trace.position_embeddings is None and "hook_pos_embed" not in trace


def test_greedy_generation_equals_transformers_generate(checkpoint):
    variant, folder, model, reference = checkpoint
    ours = model.generate("Hello world", 20)
    with torch.no_grad():
        theirs = reference.generate(torch.tensor([ours.prompt_ids]), max_new_tokens=20, do_sample=False,
                                    pad_token_id=0, eos_token_id=None)
    new = theirs[0, len(ours.prompt_ids):].tolist()
    assert ours.new_ids == new[:len(ours.new_ids)]
    assert len(ours.steps) == 20 or ours.stop_reason == "end_of_text"
    assert isinstance(ours.text, str)


def test_the_kv_cache_path_equals_the_full_pass(checkpoint):
    variant, folder, model, reference = checkpoint
    ids = np.array(model.tokenizer.encode(TEXT))
    full = gpt_forward(model.params, model.config, ids)
    kv_cache = KVCache()
    parts = [gpt_forward(model.params, model.config, ids[:5], kv_cache=kv_cache)]
    parts += [gpt_forward(model.params, model.config, ids[i:i + 1], kv_cache=kv_cache) for i in range(5, len(ids))]
    np.testing.assert_allclose(np.concatenate(parts), full, rtol=1e-4, atol=1e-5 * np.abs(full).max())
    assert kv_cache.keys[0].shape == (model.config.n_kv_head, len(ids), model.config.head_dim)


def test_hooks_have_the_documented_shapes_and_interventions_work(checkpoint):
    variant, folder, model, reference = checkpoint
    config = model.config
    trace = model.run(TEXT)
    L, H, Hkv, D, M = len(trace.ids), config.n_head, config.n_kv_head, config.head_dim, config.d_mlp
    shapes = {"attn.hook_q": (H, L, D), "attn.hook_k": (Hkv, L, D), "attn.hook_rot_q": (H, L, D),
              "attn.hook_rot_k": (Hkv, L, D), "attn.hook_v": (Hkv, L, D), "attn.hook_cos": (L, D),
              "attn.hook_pattern": (H, L, L), "attn.hook_z": (H, L, D), "mlp.hook_pre": (L, M),
              "mlp.hook_pre_linear": (L, M), "mlp.hook_post": (L, M), "ln1.hook_scale": (L, 1),
              "hook_resid_post": (L, config.n_embd)}
    if config.qk_norm:
        shapes.update({"attn.q_norm.hook_normalized": (H, L, D), "attn.k_norm.hook_scale": (Hkv, L, 1)})
    for name, shape in shapes.items():
        assert trace[f"blocks.1.{name}"].shape == shape, name
    assert trace.layers[0].k.shape == (H, L, D)  # the trace shows keys per query head
    post = trace["blocks.0.mlp.hook_post"]
    gate, up = trace["blocks.0.mlp.hook_pre"], trace["blocks.0.mlp.hook_pre_linear"]
    np.testing.assert_allclose(post, gate / (1 + np.exp(-gate)) * up, rtol=1e-5, atol=1e-6)
    for interventions in (core.Interventions(zero_heads={(0, 1)}), core.Interventions(causal=False),
                          core.Interventions(scale_scores=False), core.Interventions(skip_ln={(1, "ln_2")}),
                          core.Interventions(skip_residual={(0, "attn")}), core.Interventions(activation="relu")):
        changed = model.run(TEXT, interventions)
        assert changed.logits.shape == trace.logits.shape and not np.allclose(changed.logits, trace.logits)
    zeroed = model.run(TEXT, core.Interventions(zero_heads={(0, 1)}))
    assert not zeroed["blocks.0.attn.hook_z"][1].any() and zeroed["blocks.0.attn.hook_z"][0].any()


def test_a_padded_vocabulary_shows_placeholders(checkpoint):
    variant, folder, model, reference = checkpoint
    if variant != "qwen2-padded":
        pytest.skip("only the padded checkpoint has rows beyond the tokenizer")
    assert model.tokenizer.vocab_size == TOKENIZER_SIZE < model.config.vocab_size
    assert model.vocabulary[-1] == f"<pad {model.config.vocab_size - 1}>"
    assert len(model.run(TEXT).top_predictions(model.config.vocab_size)) == model.config.vocab_size


# --- TransformerLens 4 --------------------------------------------------------------------------

TL_HOOKS = ("attn.hook_rot_q", "attn.hook_rot_k", "mlp.hook_pre", "mlp.hook_pre_linear", "mlp.hook_post",
            "hook_resid_post")


def test_hooks_equal_transformer_lens_bridge(checkpoint):
    variant, folder, model, reference = checkpoint
    pytest.importorskip("transformer_lens")
    from transformer_lens.model_bridge import TransformerBridge
    hf_tokenizer = transformers.AutoTokenizer.from_pretrained(str(folder))
    try:
        bridge = TransformerBridge.boot_transformers(str(folder), hf_model=reference, tokenizer=hf_tokenizer)
        bridge.enable_compatibility_mode(no_processing=True)
    except Exception as error:  # noqa: BLE001 - the reason is the skip's message
        pytest.skip(f"TransformerBridge did not boot this tiny {variant} offline: {type(error).__name__}: "
                    f"{str(error)[:300]}")
    trace = model.run(TEXT)
    _, cache = bridge.run_with_cache(torch.tensor([trace.ids.tolist()]))
    for layer in range(model.config.n_layer):
        for hook in TL_HOOKS:
            name = f"blocks.{layer}.{hook}"
            assert name in cache, f"the bridge has no {name}"
            theirs = cache[name][0].detach().double().numpy()
            ours = trace[name]
            if ours.ndim == 3:  # head-first [H, L, D] here; [L, H, D] in TransformerLens
                ours = np.swapaxes(ours, 0, 1)
            np.testing.assert_allclose(ours, theirs.reshape(ours.shape), rtol=1e-4,
                                       atol=1e-5 * max(1.0, np.abs(theirs).max()), err_msg=name)


# --- refusals -----------------------------------------------------------------------------------

def edited(tmp_path, change, variant="mistral"):
    folder = write_checkpoint(tmp_path / variant, variant)
    config = json.loads((folder / "config.json").read_text())
    change(config, folder)
    (folder / "config.json").write_text(json.dumps(config))
    return folder


def test_an_unknown_rope_type_is_refused_by_name(tmp_path):
    def yarn(config, folder):
        config.pop("rope_parameters", None)
        config["rope_theta"], config["rope_scaling"] = 10000.0, {"type": "yarn", "factor": 4.0}
    with pytest.raises(ValueError, match="rope_scaling type 'yarn' is not supported; Glassbox runs default and llama3"):
        core.load_checkpoint(edited(tmp_path, yarn))


def test_head_dim_times_heads_not_matching_the_weights_is_refused(tmp_path):
    def wrong_head_dim(config, folder):
        config["head_dim"] = 8
    with pytest.raises(ValueError, match=r"q_proj.weight has 64 rows but config.json's head_dim \(8\) x "
                                         r"num_attention_heads \(4\) = 32"):
        core.load_checkpoint(edited(tmp_path, wrong_head_dim))


def test_a_missing_tokenizer_json_is_refused(tmp_path):
    def no_tokenizer(config, folder):
        (folder / "tokenizer.json").unlink()
    with pytest.raises(ValueError, match=r"tokenizer\.json is missing"):
        core.load_checkpoint(edited(tmp_path, no_tokenizer))


def test_kv_heads_must_divide_heads(tmp_path):
    def three_kv_heads(config, folder):
        config["num_key_value_heads"] = 3
    with pytest.raises(ValueError, match=r"num_key_value_heads \(3\) must divide num_attention_heads \(4\)"):
        core.load_checkpoint(edited(tmp_path, three_kv_heads))


def test_hub_style_rope_keys_read_as_transformers_5_ones():
    hub = {"model_type": "llama", "vocab_size": 300, "hidden_size": 64, "intermediate_size": 96,
           "num_hidden_layers": 2, "num_attention_heads": 4, "max_position_embeddings": 131072,
           "rope_theta": 500000.0, "rope_scaling": {"rope_type": "llama3", "factor": 32.0, "low_freq_factor": 1.0,
                                                    "high_freq_factor": 4.0, "original_max_position_embeddings": 8192}}
    new = {**{k: v for k, v in hub.items() if k not in ("rope_theta", "rope_scaling")},
           "rope_parameters": {**hub["rope_scaling"], "rope_theta": 500000.0}}
    assert core.GPTConfig.from_hf_dict(hub) == core.GPTConfig.from_hf_dict(new)
    config = core.GPTConfig.from_hf_dict(hub)
    assert config.n_positions == 8192 and config.max_position_embeddings == 131072 and config.rope_theta == 500000.0
    qwen = {**hub, "model_type": "qwen2", "sliding_window": 4096, "use_sliding_window": False, "rope_scaling": None}
    assert core.GPTConfig.from_hf_dict(qwen).sliding_window is None  # dormant unless use_sliding_window


# --- real tokenizers, padded vocabularies -------------------------------------------------------

REAL = {  # (tokenizer kind of tests/helpers/tokenizers.py, config class, model class, vocab_size, options)
    "qwen3-real-tokenizer": ("qwen3", "Qwen3Config", "Qwen3ForCausalLM", 151936, dict(tie_word_embeddings=True)),
    "llama3-real-tokenizer": ("llama3", "LlamaConfig", "LlamaForCausalLM", 128256, dict(tie_word_embeddings=True)),
    "mistral-sentencepiece": ("sentencepiece", "MistralConfig", "MistralForCausalLM", 512,
                              dict(tie_word_embeddings=False, sliding_window=None)),
}


@pytest.mark.parametrize("variant", list(REAL))
def test_real_tokenizers_and_padded_vocabularies_match_transformers(tmp_path, variant):
    """Qwen 3's and Llama 3's own tokenizer.json (Qwen's embedding padded past its 151,669 tokens as
    the real models' are), and a SentencePiece-style one with byte fallback under Mistral."""
    from helpers.tokenizers import write_tokenizer as write_real_tokenizer
    kind, config_class, model_class, vocab_size, options = REAL[variant]
    config = getattr(transformers, config_class)(
        vocab_size=vocab_size, hidden_size=32, intermediate_size=48, num_hidden_layers=1, num_attention_heads=4,
        num_key_value_heads=2, max_position_embeddings=64, **options)
    torch.manual_seed(0)
    reference = getattr(transformers, model_class)(config).eval()
    with torch.no_grad():
        for name, parameter in reference.named_parameters():
            if parameter.ndim == 2:
                parameter.normal_(0, 0.3)
    reference.save_pretrained(tmp_path)
    write_real_tokenizer(tmp_path, kind)
    model = core.load_checkpoint(tmp_path)
    assert model.tokenizer.vocab_size <= model.config.vocab_size == vocab_size
    trace = model.run("Hello, world! ünïcödé 🤖")
    with torch.no_grad():
        expected = reference(torch.tensor([trace.ids.tolist()])).logits[0].double().numpy()
    np.testing.assert_allclose(trace.logits, expected, rtol=1e-4, atol=1e-4 * np.abs(expected).max())
    ours = model.generate("Hello", 8)
    with torch.no_grad():
        theirs = reference.generate(torch.tensor([ours.prompt_ids]), max_new_tokens=8, do_sample=False,
                                    pad_token_id=0, eos_token_id=None)
    assert ours.new_ids == theirs[0, len(ours.prompt_ids):].tolist()[:len(ours.new_ids)]
    assert len(model.vocabulary) == vocab_size and isinstance(ours.text, str)


# --- memory -------------------------------------------------------------------------------------

PEAK_KB = "int(next(line.split()[1] for line in open('/proc/self/status') if line.startswith('VmHWM:')))"


def test_a_bfloat16_sharded_checkpoint_loads_without_holding_the_weights_twice(tmp_path):
    """Resident memory after loading a ~120 MB (float32) bfloat16 sharded Llama stays under 1.2x its
    float32 weights, peak included (each tensor read once, converted, never held twice)."""
    import subprocess
    import sys
    import textwrap
    config = transformers.LlamaConfig(vocab_size=32000, hidden_size=512, intermediate_size=1376, num_hidden_layers=4,
                                      num_attention_heads=8, num_key_value_heads=2, tie_word_embeddings=False)
    reference = transformers.LlamaForCausalLM(config).to(torch.bfloat16)
    reference.save_pretrained(tmp_path, max_shard_size="20MB")
    del reference
    write_tokenizer(tmp_path)
    assert (tmp_path / "model.safetensors.index.json").is_file()
    script = textwrap.dedent(f"""
        import resource
        import core
        from core.text.hf import HFTokenizer
        HFTokenizer.from_folder({str(tmp_path)!r})  # the tokenizer's own libraries loaded before measuring
        def rss():
            return int(open("/proc/self/statm").read().split()[1]) * resource.getpagesize()
        before = rss()
        model = core.load_checkpoint({str(tmp_path)!r})
        weights = sum(value.nbytes for value in model.params.values())
        print(weights, rss() - before, {PEAK_KB} * 1024 - before)
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300, check=True)
    weights, grown, peak = map(int, result.stdout.split())
    assert weights > 100_000_000
    assert grown < 1.2 * weights and peak < 1.2 * weights


def test_a_llama_model_too_large_for_memory_is_refused_before_reading(tmp_path):
    def huge(config, folder):
        config.update(hidden_size=8192, intermediate_size=28672, num_hidden_layers=128, num_attention_heads=64,
                      num_key_value_heads=8, head_dim=128, vocab_size=128256)
    with pytest.raises(ValueError, match=r"describes a model of [\d.]+ GB in float32, more than the [\d.]+ GB"):
        core.load_checkpoint(edited(tmp_path, huge))


def test_a_llama_model_saves_and_loads_back(checkpoint, tmp_path):
    variant, folder, model, reference = checkpoint
    saved = core.load_checkpoint(model.save(tmp_path / "copy"))
    assert saved.config == model.config
    np.testing.assert_array_equal(saved.run(TEXT).logits, model.run(TEXT).logits)


def test_the_cli_generates_and_describes_a_llama_family_folder(checkpoint, capsys):
    from core.cli import main
    variant, folder, model, reference = checkpoint
    assert main(["generate", "Hello", "--checkpoint", str(folder), "--temperature", "0",
                 "--max-new-tokens", "5"]) == 0
    assert capsys.readouterr().out.startswith("Hello")
    assert main(["info", "--checkpoint", str(folder)]) == 0
    out = capsys.readouterr().out
    config = model.config
    assert f"Llama family ({config.model_type})" in out and f"{config.n_kv_head} key/value heads" in out
    assert f"head_dim {config.head_dim}" in out and f"RoPE theta {config.rope_theta:g}" in out
    assert ("llama3 scaling" in out) == (config.rope_scaling is not None)


def test_attention_reads_the_key_value_heads_without_repeating_them(checkpoint, monkeypatch):
    """The attention call gets k and v with n_kv_head heads (grouped-query attention, no copy per query head)."""
    from core.model import forward
    variant, folder, model, reference = checkpoint
    seen, attend = [], forward.scaled_dot_product_attention

    def recording(q, k, v, **options):
        seen.append((q.shape[-3], k.shape[-3], v.shape[-3]))
        return attend(q, k, v, **options)
    monkeypatch.setattr(forward, "scaled_dot_product_attention", recording)
    model.run(TEXT)
    assert seen == [(4, 2, 2)] * model.config.n_layer
