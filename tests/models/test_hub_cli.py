"""``spgg models`` and ``spgg generate`` on a tiny synthetic GGUF model (offline, temp cache)."""

from __future__ import annotations

import json

import pytest

from spgg_jax.cli import generate as gen_cli
from spgg_jax.cli.main import build_parser, main
from spgg_jax.models.weights import hub
from spgg_jax.models.weights.gguf import write_synthetic_gguf


@pytest.fixture(scope="module")
def tiny_gguf(tmp_path_factory):
    p = tmp_path_factory.mktemp("cli") / "tiny.gguf"
    write_synthetic_gguf(p, "llama", n_layers=2, seed=3)
    return p


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SPGG_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


def _rows(out: str) -> list[dict]:
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def test_every_flag_has_help():
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    for cmd in ("models", "generate"):
        stack = [sub.choices[cmd]]
        while stack:
            p = stack.pop()
            for a in p._actions:
                if a.dest == "help":
                    continue
                if a.choices and isinstance(a.choices, dict):
                    stack.extend(a.choices.values())
                    continue
                assert a.help, f"{p.prog}: {a.option_strings or a.dest} has no help text"


def test_cli_default_model_is_the_hub_default():
    assert gen_cli.DEFAULT_MODEL == hub.DEFAULT_MODEL


def test_models_list(cache, capsys):
    assert main(["models", "list", "--json"]) == 0
    rows = {r["name"]: r for r in _rows(capsys.readouterr().out)}
    assert set(rows) == set(hub.MODELS.names())
    assert rows["smollm2-135m-instruct"]["fetched"] is False  # empty temp cache
    assert rows["smollm2-135m-instruct"]["path"] == str(cache / "models" / "smollm2-135m-instruct")
    assert main(["models", "list"]) == 0
    assert "gemma3-270m" in capsys.readouterr().out


def test_models_info_gguf_path(cache, tiny_gguf, capsys):
    assert main(["models", "info", str(tiny_gguf), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["family"] == "llama" and info["n_layers"] == 2 and info["vocab_size"] == 263
    d, f, n, kv, hd, v = 64, 96, 4, 2, 16, 263
    assert info["n_params"] == v * d + 2 * (2 * d * n * hd + 2 * d * kv * hd + 3 * d * f + 2 * d) + d
    assert info["path"].startswith(str(cache)) and info["chat_template"] is True
    assert main(["models", "info", str(tiny_gguf)]) == 0
    assert "parameters:" in capsys.readouterr().out


def test_errors_exit_2(cache, tmp_path, capsys):
    assert main(["models", "info", "no-such-model"]) == 2
    err = capsys.readouterr().err
    assert "unknown model 'no-such-model'" in err and "smollm2-135m-instruct" in err
    assert main(["models", "fetch", "no-such-model"]) == 2
    assert main(["generate", "--model", str(tmp_path / "nope.gguf"), "--prompt", "x"]) == 2
    assert main(["generate", "--model", "whatever"]) == 2
    assert "no prompts" in capsys.readouterr().err


def test_read_prompts(tmp_path):
    plain = tmp_path / "p.txt"
    plain.write_text("first prompt\n\nsecond {not json}\n")
    assert gen_cli.read_prompts(["a"], str(plain)) == ["a", "first prompt", "second {not json}"]
    jl = tmp_path / "p.jsonl"
    jl.write_text(json.dumps({"prompt": "x y", "id": 1}) + "\n" + json.dumps({"prompt": "z"}) + "\n")
    assert gen_cli.read_prompts([], str(jl)) == ["x y", "z"]
    jl.write_text(json.dumps({"text": "no prompt field"}) + "\n")
    with pytest.raises(ValueError, match=r"line 1 needs a string \"prompt\""):
        gen_cli.read_prompts([], str(jl))
    with pytest.raises(FileNotFoundError):
        gen_cli.read_prompts([], str(tmp_path / "missing.txt"))
    with pytest.raises(ValueError, match="no prompts"):
        gen_cli.read_prompts([], None)


def test_generate_batch_matches_single_prompts(cache, tiny_gguf, tmp_path, capsys):
    """Left padding must not change a prompt's greedy continuation: batched == one at a time."""
    prompts = ["the", "this is the longest prompt of the batch", "is it"]
    pf = tmp_path / "prompts.jsonl"
    pf.write_text("".join(json.dumps({"prompt": p}) + "\n" for p in prompts[1:]))
    args = ["generate", "--model", str(tiny_gguf), "--max-new-tokens", "6", "--json", "--no-chat-template"]
    assert main(args + ["--prompt", prompts[0], "--prompts-file", str(pf)]) == 0
    batched = _rows(capsys.readouterr().out)
    assert [r["prompt"] for r in batched] == prompts
    for r in batched:
        assert 1 <= r["new_tokens"] <= 6 and isinstance(r["completion"], str)
    loaded = hub.load_model(tiny_gguf)
    for p, r in zip(prompts, batched):
        (single,) = gen_cli.generate(str(tiny_gguf), [p], max_new_tokens=6, chat=False, loaded=loaded)
        assert single == r
    # default: the chat template of the synthetic vocabulary wraps the prompt
    assert main(["generate", "--model", str(tiny_gguf), "--prompt", "the", "--max-new-tokens", "3"]) == 0
    assert "1 prompt(s)" in capsys.readouterr().err


def test_generate_chat_needs_template(tiny_gguf, cache):
    cfg, params, tok = hub.load_model(tiny_gguf)
    tok.chat_template = None
    with pytest.raises(ValueError, match="no chat template"):
        gen_cli.generate("tiny", ["hi"], chat=True, loaded=(cfg, params, tok))
    with pytest.raises(ValueError, match="max-new-tokens"):
        gen_cli.generate("tiny", ["hi"], max_new_tokens=0, loaded=(cfg, params, tok))


def test_completions_cut_at_eos():
    import numpy as np

    class Tok:
        def decode(self, ids, skip_special_tokens=True):
            return ",".join(map(str, ids))

    from spgg_jax.sampling import SampleOutput

    out = SampleOutput(
        tokens=np.array([[5, 6, 2, 0], [7, 8, 9, 10]]), mask=np.array([[1, 1, 1, 0], [1, 1, 1, 1]], bool),
        logprobs=np.zeros((2, 4)), model_logprobs=np.zeros((2, 4)), lengths=np.array([3, 4]),
        finish_reason=np.array([1, 0]),
    )
    rows = gen_cli.completions(Tok(), out, (2,))
    assert rows == [
        {"completion": "5,6", "new_tokens": 3, "finished": True},
        {"completion": "7,8,9,10", "new_tokens": 4, "finished": False},
    ]
