"""Named model shapes (published dimensions) for random-weight runs and benchmarks.

Each entry is a ``config.json``-style dict turned into a ``ModelConfig`` through
``ModelConfig.from_hf_config``, so the named shapes exercise the same mapping as real checkpoints.
``get_shape(name, **overrides)`` returns the config; ``SHAPES.names()`` lists them.
"""

from __future__ import annotations

from typing import Any, Callable

from spgg_jax.models.config import ModelConfig
from spgg_jax.registry import Registry

SHAPES: Registry[Callable[..., ModelConfig]] = Registry("model shape")


def _shape(name: str, hf: dict[str, Any]) -> None:
    @SHAPES.register(name)
    def factory(**overrides: Any) -> ModelConfig:
        return ModelConfig.from_hf_config(hf, **overrides)

    factory.__doc__ = f"ModelConfig of the {name} shape (random weights)."


_shape("qwen2.5-0.5b", dict(
    model_type="qwen2", vocab_size=151936, hidden_size=896, intermediate_size=4864,
    num_hidden_layers=24, num_attention_heads=14, num_key_value_heads=2, rms_norm_eps=1e-6,
    max_position_embeddings=32768, rope_theta=1000000.0, tie_word_embeddings=True,
    bos_token_id=151643, eos_token_id=151645,
))
_shape("llama-3.1-8b", dict(
    model_type="llama", vocab_size=128256, hidden_size=4096, intermediate_size=14336,
    num_hidden_layers=32, num_attention_heads=32, num_key_value_heads=8, rms_norm_eps=1e-5,
    max_position_embeddings=131072, rope_theta=500000.0, tie_word_embeddings=False,
    rope_scaling=dict(rope_type="llama3", factor=8.0, low_freq_factor=1.0, high_freq_factor=4.0,
                      original_max_position_embeddings=8192),
    bos_token_id=128000, eos_token_id=[128001, 128008, 128009],
))
_shape("smollm2-135m", dict(
    model_type="llama", vocab_size=49152, hidden_size=576, intermediate_size=1536,
    num_hidden_layers=30, num_attention_heads=9, num_key_value_heads=3, rms_norm_eps=1e-5,
    max_position_embeddings=8192, rope_theta=100000.0, tie_word_embeddings=True,
    bos_token_id=1, eos_token_id=2, pad_token_id=2,
))
_shape("qwen3-0.6b", dict(
    model_type="qwen3", vocab_size=151936, hidden_size=1024, intermediate_size=3072,
    num_hidden_layers=28, num_attention_heads=16, num_key_value_heads=8, head_dim=128,
    rms_norm_eps=1e-6, max_position_embeddings=40960, rope_theta=1000000.0,
    tie_word_embeddings=True, bos_token_id=151643, eos_token_id=151645,
))
_shape("gemma3-270m", dict(
    model_type="gemma3_text", vocab_size=262144, hidden_size=640, intermediate_size=2048,
    num_hidden_layers=18, num_attention_heads=4, num_key_value_heads=1, head_dim=256,
    query_pre_attn_scalar=256, rms_norm_eps=1e-6, max_position_embeddings=32768,
    sliding_window=512, sliding_window_pattern=6, rope_theta=1000000.0,
    rope_local_base_freq=10000.0, tie_word_embeddings=True,
    bos_token_id=2, eos_token_id=1, pad_token_id=0,
))
_shape("gpt2", dict(
    model_type="gpt2", vocab_size=50257, n_embd=768, n_layer=12, n_head=12, n_positions=1024,
    layer_norm_epsilon=1e-5, activation_function="gelu_new", tie_word_embeddings=True,
    bos_token_id=50256, eos_token_id=50256,
))


def get_shape(name: str, **overrides: Any) -> ModelConfig:
    """The ``ModelConfig`` of a named shape; ``overrides`` e.g. ``dtype="bfloat16"``."""
    return SHAPES.get(name)(**overrides)
