"""spgg_jax.models: Flax decoder-only LLMs (llama, qwen2, qwen3, gpt2, gemma3) and their tokenizers.

Fetching and converting weights lives in ``spgg_jax.models.weights`` (HF directories, GGUF files,
the embedded models); its HF loader is re-exported here. See ``docs/models.md``. Main entry points:

    from spgg_jax.models import ModelConfig, load_hf_dir, init_params, apply, forward, init_cache
    cfg, params = load_hf_dir("path/to/hf_dir")            # config.json + safetensors
    logits, _ = apply(params, cfg, tokens, positions, mask)  # cfg is static under jit
"""

from spgg_jax.models.config import FAMILIES, ModelConfig, RopeConfig
from spgg_jax.models.decoder import (
    CACHE_AXES,
    KVCache,
    apply,
    count_params,
    embed,
    final_hidden,
    forward,
    forward_capturing,
    init_boxed_params,
    init_cache,
    init_params,
    layer_slice,
    logits_from_hidden,
    param_logical_axes,
    param_shapes,
    positions_from_mask,
    run_layers,
    split_layers,
)
from spgg_jax.models.generate import greedy_generate
from spgg_jax.models.shapes import SHAPES, get_shape
from spgg_jax.models.weights.hf import (
    SafetensorsDir,
    hf_state_dict_from_params,
    load_hf_dir,
    params_from_hf_state_dict,
    hf_model_config,
    read_hf_config,
)

__all__ = [
    "CACHE_AXES", "FAMILIES", "KVCache", "ModelConfig", "RopeConfig", "SHAPES", "SafetensorsDir",
    "apply", "count_params", "embed", "final_hidden", "forward", "forward_capturing", "get_shape", "greedy_generate", "hf_state_dict_from_params",
    "init_boxed_params", "init_cache", "init_params", "layer_slice", "load_hf_dir", "logits_from_hidden",
    "param_logical_axes", "param_shapes", "params_from_hf_state_dict", "positions_from_mask",
    "hf_model_config",
    "read_hf_config", "run_layers", "split_layers",
]
