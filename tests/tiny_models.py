"""A self-contained tiny model directory for end-to-end tests (no downloads, no torch).

``make_tiny_model_dir(path)`` writes an HF-format directory: ``config.json`` and
``model.safetensors`` of a random 2-layer Llama, and a character-level tokenizer (``tokenizers``
WordLevel wrapped in ``PreTrainedTokenizerFast``) with a ChatML chat template, so the whole
pipeline (chat template -> tokenizer -> sampler -> decode -> scorers) runs on it.
"""

from __future__ import annotations

import json
import string
from pathlib import Path

import jax
import numpy as np

SPECIALS = ["<pad>", "<unk>", "<|im_start|>", "<|im_end|>"]
CHARS = list(string.ascii_letters + string.digits + string.punctuation + " \n")
CHAT_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def make_tokenizer():
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {tok: i for i, tok in enumerate(SPECIALS + CHARS)}
    tk = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    special = "|".join(t.replace("|", r"\|") for t in SPECIALS)
    tk.pre_tokenizer = pre_tokenizers.Split(Regex(f"{special}|."), behavior="isolated")
    tk.decoder = decoders.Fuse()
    tok = PreTrainedTokenizerFast(tokenizer_object=tk, pad_token="<pad>", unk_token="<unk>",
                                  eos_token="<|im_end|>", additional_special_tokens=["<|im_start|>"])
    tok.chat_template = CHAT_TEMPLATE
    return tok


def make_tiny_model_dir(path: str | Path, seed: int = 0, d_model: int = 32, n_layers: int = 2) -> Path:
    from safetensors.numpy import save_file

    from spgg_jax.models import ModelConfig, hf_state_dict_from_params, init_params

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    tok = make_tokenizer()
    eos = tok.convert_tokens_to_ids("<|im_end|>")
    cfg = ModelConfig(family="llama", vocab_size=len(SPECIALS) + len(CHARS), d_model=d_model, n_layers=n_layers,
                      n_heads=4, n_kv_heads=2, head_dim=d_model // 4, d_ff=2 * d_model,
                      max_position_embeddings=2048, tie_embeddings=True, eos_token_ids=(eos,), pad_token_id=0,
                      bos_token_id=None)
    params = init_params(cfg, jax.random.key(seed))
    state = {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in hf_state_dict_from_params(cfg, params).items()}
    save_file(state, str(path / "model.safetensors"))
    (path / "config.json").write_text(json.dumps(cfg.to_hf_config(), indent=2))
    tok.save_pretrained(str(path))
    return path


# ------------------------------------------------------------------------------------------------
# Trainer runs on the tiny model (tests/rl, tests/parallel)
# ------------------------------------------------------------------------------------------------

#: prefixes of the metrics that measure time: they differ between otherwise identical runs
TIMING_PREFIXES = ("time/", "tokens_per_s/")


def tiny_train_overrides(model_dir, run_dir, steps: int, method: str = "gen_params", **extra) -> list[str]:
    """``key=value`` overrides for a few fast trainer steps on the tiny model (``extra`` may use dotted
    keys: ``**{"token.group_size": 2}``).

    The token-based cost makes rewards vary with generated lengths, so the policy really updates. The
    validation split has as many problems as the test split (2 when there is none), so the
    evaluation's batches share their compiled shapes.
    """
    kw = {"team.model": str(model_dir), "run_dir": str(run_dir), "steps": steps, "batch": 4,
          "team.agents.max_new_tokens": 10, "train_size": 16, "eval_size": 0, "checkpoint_every": 1,
          "progress": "false", "team.effort": "tokens", "method": method}
    if method == "gen_params":
        kw["gen_params.minibatch"] = 2
    kw["val_size"] = extra.get("eval_size") or 2
    kw.update(extra)
    return [f"{k}={v}" for k, v in kw.items()]


def run_metrics(run_dir) -> list[dict]:
    """A run's ``metrics.jsonl`` rows without the timing metrics."""
    rows = [json.loads(line) for line in (Path(run_dir) / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in r.items() if not k.startswith(TIMING_PREFIXES)} for r in rows]


def load_script(path, name: str | None = None):
    """A Python file that is not a package module (an experiments/ script, make_reference.py) loaded
    as a module, for tests to call its functions."""
    import importlib.util

    path = Path(path)
    spec = importlib.util.spec_from_file_location(name or path.stem, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod
