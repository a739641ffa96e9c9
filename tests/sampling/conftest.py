"""Fixtures for sampler tests: a tiny random model of our own, and the tiny HF models of tests/models."""

import importlib.util
import pathlib
import sys

import jax
import pytest

from spgg_jax.models.config import ModelConfig
from spgg_jax.models.decoder import init_params

_spec = importlib.util.spec_from_file_location(
    "_tiny_hf_models", pathlib.Path(__file__).parents[1] / "models" / "conftest.py"
)
_tiny = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = _tiny
_spec.loader.exec_module(_tiny)
tiny_hf = _tiny.tiny_hf
TINY_KINDS = _tiny.TINY_KINDS


@pytest.fixture(scope="session")
def tiny_model():
    cfg = ModelConfig(family="llama", vocab_size=64, d_model=32, n_layers=2, n_heads=4, n_kv_heads=2,
                      head_dim=8, d_ff=64, max_position_embeddings=256, eos_token_ids=(1,))
    params = init_params(cfg, jax.random.key(0))
    # sharpen the random logits a little so sampled text is not uniform noise
    params = jax.tree_util.tree_map(lambda x: x * 3.0, params)
    return cfg, params
