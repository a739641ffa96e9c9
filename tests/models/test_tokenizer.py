"""Tokenizers built from GGUF metadata, chat templates, and left-padded batch encoding.

The offline tests use the tiny byte-level vocabulary of ``write_synthetic_gguf``; the
``real_model`` tests compare the embedded models' converted tokenizers with transformers' own GGUF
tokenizer on strings covering chat-template output, unicode, digits and whitespace.
"""

from __future__ import annotations

import chex
import numpy as np
import pytest

from spgg_jax.models.tokenizer import (
    apply_chat_template,
    decode_batch,
    encode_batch,
    has_chat_template,
    load_tokenizer,
)
from spgg_jax.models.weights.gguf import write_synthetic_gguf
from spgg_jax.models.weights.gguf_tokenizer import build_tokenizer_from_gguf, save_tokenizer_from_gguf

PARITY_STRINGS = [
    "Hello world",
    "What is the capital of France?",
    "  leading spaces, trailing spaces   ",
    "tabs\tand\nnewlines\n\n\nand\r\nCRLF",
    "digits 0 7 42 1234567890 3.14159 -12,345.67 1e-9",
    "unicode: héllo naïve café 日本語 中文 Ελληνικά русский 🎉👍🏽 ∑∫√",
    "code: def f(x):\n    return x**2  # comment",
    "",
    "<|im_start|>user\nHi there<|im_end|>\n<|im_start|>assistant\n",
    "<bos><start_of_turn>user\nhello<end_of_turn>",
]


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    d = tmp_path_factory.mktemp("tok")
    src = d / "tiny.gguf"
    write_synthetic_gguf(src, "llama")
    out = save_tokenizer_from_gguf(src, d / "hf")
    return src, out


def test_build_and_reload_same_ids(synth):
    src, out = synth
    built = build_tokenizer_from_gguf(src)
    reloaded = load_tokenizer(out)  # a directory with tokenizer files only
    for s in PARITY_STRINGS:
        assert built(s)["input_ids"] == reloaded(s)["input_ids"], s
    # byte-level BPE with the file's merges: " the" is one token, specials stay whole.
    ids = built(" the<|im_end|>")["input_ids"]
    assert ids == [built.convert_tokens_to_ids("\u0120the"), 2]
    assert built.eos_token == "<|im_end|>" and built.eos_token_id == 2
    assert has_chat_template(reloaded)


def test_chat_template(synth):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(synth[1]))
    text = apply_chat_template(tok, [{"role": "user", "content": "hi"}])
    assert text == "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"
    text = apply_chat_template(tok, [{"role": "user", "content": "hi"}], add_generation_prompt=False)
    assert text == "<|im_start|>user\nhi<|im_end|>\n"
    with pytest.raises(ValueError, match="'role' and 'content'"):
        apply_chat_template(tok, [{"content": "no role"}])
    with pytest.raises(ValueError, match="non-empty"):
        apply_chat_template(tok, [])
    tok.chat_template = None
    with pytest.raises(ValueError, match="no chat template"):
        apply_chat_template(tok, [{"role": "user", "content": "hi"}])


def test_encode_batch_left_padding(synth):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(synth[1]))
    texts = ["the", "this is the end", "a"]
    ids, mask = encode_batch(tok, texts)
    rows = [tok(t)["input_ids"] for t in texts]
    t = max(len(r) for r in rows)
    chex.assert_shape(ids, (3, t))
    assert ids.dtype == np.int32 and mask.dtype == np.bool_
    for i, r in enumerate(rows):
        assert mask[i].sum() == len(r)
        assert mask[i, t - len(r):].all() and not mask[i, : t - len(r)].any()  # padding on the LEFT
        assert ids[i, t - len(r):].tolist() == r
        assert (ids[i, : t - len(r)] == tok.pad_token_id).all()
    assert mask[:, -1].all()
    assert decode_batch(tok, ids, mask) == texts

    ids16, mask16 = encode_batch(tok, texts, pad_to_multiple_of=16)
    assert ids16.shape == (3, 16)
    np.testing.assert_array_equal(ids16[:, -t:], ids)
    assert not mask16[:, : 16 - t].any()

    ids2, mask2 = encode_batch(tok, texts, max_length=2)  # keeps the LAST tokens
    assert ids2.shape == (3, 2) and ids2[1].tolist() == rows[1][-2:]


def test_encode_batch_errors(synth):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(synth[1]))
    with pytest.raises(ValueError, match="non-empty list"):
        encode_batch(tok, [])
    with pytest.raises(ValueError, match="non-empty list"):
        encode_batch(tok, "a string, not a list")
    with pytest.raises(ValueError, match=r"texts\[1\] must be a string"):
        encode_batch(tok, ["ok", 3])
    with pytest.raises(ValueError, match="zero tokens"):
        encode_batch(tok, ["ok", ""])
    with pytest.raises(ValueError, match="max_length"):
        encode_batch(tok, ["ok"], max_length=0)
    with pytest.raises(ValueError, match="shape"):
        decode_batch(tok, np.zeros((2, 3), np.int32), np.ones((2, 4), bool))


@pytest.mark.torch
def test_synthetic_matches_transformers_gguf_tokenizer(synth):
    pytest.importorskip("torch")
    from transformers import AutoTokenizer

    src, out = synth
    ref = AutoTokenizer.from_pretrained(str(src.parent), gguf_file=src.name)
    ours = AutoTokenizer.from_pretrained(str(out))
    for s in PARITY_STRINGS:
        assert ours(s)["input_ids"] == ref(s)["input_ids"], s


def _check_parity(name: str, chat: bool) -> None:
    from transformers import AutoTokenizer

    from spgg_jax.models.weights.hub import fetch_model, source_gguf

    d = fetch_model(name)
    g = source_gguf(name)
    ours = load_tokenizer(d)
    assert str(d) in str(g)
    ref = AutoTokenizer.from_pretrained(str(g.parent), gguf_file=g.name)
    strings = list(PARITY_STRINGS)
    assert has_chat_template(ours) == chat == has_chat_template(ref)
    if chat:
        msgs = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "What is 12 * 7? Answer: "}]
        text = apply_chat_template(ours, msgs)
        assert text == ref.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)
        strings.append(text)
    for s in strings:
        for special in (True, False):
            a = ours(s, add_special_tokens=special)["input_ids"]
            b = ref(s, add_special_tokens=special)["input_ids"]
            assert a == b, (s, special)
        assert ours.decode(ours(s)["input_ids"]) == ref.decode(ref(s)["input_ids"])
    assert (ours.bos_token_id, ours.eos_token_id, ours.pad_token_id) == (ref.bos_token_id, ref.eos_token_id, ref.pad_token_id)


@pytest.mark.real_model
@pytest.mark.torch
def test_smollm2_tokenizer_matches_transformers_gguf():
    pytest.importorskip("torch")
    _check_parity("smollm2-135m-instruct", chat=True)


@pytest.mark.real_model
@pytest.mark.torch
@pytest.mark.slow
def test_gemma3_tokenizer_matches_transformers_gguf():
    pytest.importorskip("torch")
    _check_parity("gemma3-270m", chat=False)
