"""Tiny offline stand-ins for tests and examples: a byte-level tokenizer with a chat template and a
tiny random Llama-style model (no downloads).

    bundle = tiny_bundle(seed=0)        # ModelBundle named "tiny"
    team = default_team("tiny", n=3)
"""

from __future__ import annotations

from typing import Any

import jax

SPECIAL_TOKENS = ("<pad>", "<|im_start|>", "<|im_end|>")
CHAT_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def tiny_tokenizer(chat: bool = True):
    """A byte-level BPE tokenizer without merges (one token per byte, 259 ids, EOS ``<|im_end|>`` = 2)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    vocab = {t: i for i, t in enumerate(list(SPECIAL_TOKENS) + alphabet)}
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens(list(SPECIAL_TOKENS))
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", eos_token="<|im_end|>")
    if chat:
        fast.chat_template = CHAT_TEMPLATE
    return fast


def tiny_config(vocab_size: int = 3 + 256, **kw: Any):
    from spgg_jax.models import ModelConfig

    base = dict(family="llama", vocab_size=vocab_size, d_model=32, n_layers=2, n_heads=2, n_kv_heads=1,
                head_dim=16, d_ff=64, max_position_embeddings=4096, eos_token_ids=(2,), pad_token_id=0,
                tie_embeddings=False)
    base.update(kw)
    return ModelConfig(**base)


def tiny_params(cfg: Any, seed: int = 0):
    from spgg_jax.models import init_params

    return init_params(cfg, jax.random.key(seed))


def tiny_bundle(name: str = "tiny", seed: int = 0, chat: bool = True, **cfg_kw: Any):
    """A :class:`~spgg_jax.rollout.episode.ModelBundle` of a tiny random model and byte tokenizer."""
    from spgg_jax.rollout.episode import ModelBundle

    tok = tiny_tokenizer(chat=chat)
    cfg = tiny_config(vocab_size=len(tok), **cfg_kw)
    return ModelBundle.create(name, cfg, tiny_params(cfg, seed), tok)
