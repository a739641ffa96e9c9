"""Tiny random Hugging Face PyTorch models saved to disk, one per family variant (session-scoped).

Reusable by other tests: ``make_tiny_hf_model(kind, out_dir)`` builds, perturbs and saves one
(``kind`` in ``TINY_KINDS``), and the ``tiny_hf`` fixture returns a cached ``TinyHF`` per kind:

    def test_x(tiny_hf):
        m = tiny_hf("qwen2")      # m.path (HF dir), m.torch_model (eval, float32), m.kind
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any, Callable

import numpy as np
import pytest

VOCAB = 128

# name -> (transformers config class name, model class name, config kwargs)
TINY_SPECS: dict[str, tuple[str, str, dict[str, Any]]] = {
    # Llama with grouped-query attention and Llama-3.1 "llama3" RoPE scaling, separate head.
    "llama_gqa_llama3": ("LlamaConfig", "LlamaForCausalLM", dict(
        vocab_size=VOCAB, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, tie_word_embeddings=False,
        max_position_embeddings=128,
        rope_parameters=dict(rope_type="llama3", rope_theta=500000.0, factor=8.0, low_freq_factor=1.0,
                             high_freq_factor=4.0, original_max_position_embeddings=16),
    )),
    # Llama MHA with linear RoPE scaling, attention and MLP biases, tied embeddings.
    "llama_mha_linear": ("LlamaConfig", "LlamaForCausalLM", dict(
        vocab_size=VOCAB, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=4, tie_word_embeddings=True,
        attention_bias=True, mlp_bias=True,
        rope_parameters=dict(rope_type="linear", rope_theta=10000.0, factor=2.0),
    )),
    "qwen2": ("Qwen2Config", "Qwen2ForCausalLM", dict(
        vocab_size=VOCAB, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, tie_word_embeddings=True,
        rope_parameters=dict(rope_type="default", rope_theta=1000000.0),
    )),
    # Qwen3: explicit head_dim (32 != 64 / 4), one KV head, separate head.
    "qwen3": ("Qwen3Config", "Qwen3ForCausalLM", dict(
        vocab_size=VOCAB, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=1, head_dim=32, tie_word_embeddings=False,
    )),
    "gpt2": ("GPT2Config", "GPT2LMHeadModel", dict(
        vocab_size=VOCAB, n_embd=64, n_layer=2, n_head=4, n_positions=64,
        bos_token_id=0, eos_token_id=0,
    )),
    # Gemma 3 text: window 4 (< the test sequences) on local layers, one global layer.
    "gemma3": ("Gemma3TextConfig", "Gemma3ForCausalLM", dict(
        vocab_size=VOCAB, hidden_size=64, intermediate_size=128, num_hidden_layers=3,
        num_attention_heads=4, num_key_value_heads=1, head_dim=32, query_pre_attn_scalar=24,
        sliding_window=4, layer_types=["sliding_attention", "sliding_attention", "full_attention"],
        pad_token_id=0, bos_token_id=2, eos_token_id=1,
    )),
}
TINY_KINDS = tuple(TINY_SPECS)


@dataclasses.dataclass
class TinyHF:
    kind: str
    path: str
    torch_model: Any  # transformers PreTrainedModel in eval mode, float32


def make_tiny_hf_model(kind: str, out_dir: str, seed: int = 0, max_shard_size: str | None = None) -> TinyHF:
    """Build a tiny random HF model of ``kind``, perturb every weight, save it to ``out_dir``.

    HF initialises biases to 0 and norm weights to 1 (or 0); the perturbation makes every tensor
    matter, so a mis-mapped bias or norm changes the logits.
    """
    import torch
    import transformers

    cfg_cls, model_cls, kwargs = TINY_SPECS[kind]
    torch.manual_seed(seed)
    config = getattr(transformers, cfg_cls)(**kwargs)
    model = getattr(transformers, model_cls)(config).float().eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            p.add_(0.1 * torch.randn_like(p))
    kw = {"max_shard_size": max_shard_size} if max_shard_size else {}
    model.save_pretrained(out_dir, safe_serialization=True, **kw)
    return TinyHF(kind, out_dir, model)


@pytest.fixture(scope="session")
def tiny_hf(tmp_path_factory) -> Callable[[str], TinyHF]:
    """Factory fixture: ``tiny_hf(kind)`` builds each tiny model once per session."""
    pytest.importorskip("torch")
    cache: dict[str, TinyHF] = {}

    def get(kind: str) -> TinyHF:
        if kind not in cache:
            out = tmp_path_factory.mktemp(f"hf_{kind}")
            cache[kind] = make_tiny_hf_model(kind, os.fspath(out))
        return cache[kind]

    return get


def torch_logits(model: Any, tokens: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    """Float32 logits of an HF PyTorch model for int tokens [B,T] (optional attention mask)."""
    import torch

    kw = {}
    if mask is not None:
        kw["attention_mask"] = torch.as_tensor(np.asarray(mask, np.int64))
    with torch.no_grad():
        out = model(input_ids=torch.as_tensor(np.asarray(tokens, np.int64)), **kw)
    return out.logits.float().numpy()
