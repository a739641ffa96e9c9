"""Test set-up: 8 fake CPU devices for sharding tests, float32 everywhere, a shared tmp cache."""

import gc
import os

# Must happen before JAX initialises its backends.
os.environ.setdefault("JAX_PLATFORMS", "cpu")
_flags = os.environ.get("XLA_FLAGS", "")
if "xla_force_host_platform_device_count" not in _flags:
    os.environ["XLA_FLAGS"] = (_flags + " --xla_force_host_platform_device_count=8").strip()
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# One persistent compilation cache for the whole run, this process and the training processes the
# tests start: the suite builds many trainers whose programs are the same HLO (tiny models, same
# shapes), and a cache hit skips XLA's compile. A fresh directory per run, removed at exit.
if "JAX_COMPILATION_CACHE_DIR" not in os.environ:
    import atexit
    import shutil
    import tempfile

    _cache_dir = tempfile.mkdtemp(prefix="spgg-test-xla-cache-")
    atexit.register(shutil.rmtree, _cache_dir, ignore_errors=True)
    os.environ["JAX_COMPILATION_CACHE_DIR"] = _cache_dir
    os.environ["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0"
    os.environ["JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES"] = "0"

import jax  # noqa: E402

jax.config.update("jax_num_cpu_devices", 8)

import pytest  # noqa: E402


def _count_lines(path: str) -> int:
    try:
        with open(path) as f:
            return sum(1 for _ in f)
    except OSError:  # not Linux: no /proc
        return 0


def _map_limit() -> int:
    try:
        with open("/proc/sys/vm/max_map_count") as f:
            return int(f.read())
    except (OSError, ValueError):
        return 0


@pytest.fixture(autouse=True, scope="module")
def _release_compiled_programs():
    """Each program XLA compiles for the CPU holds a few memory mappings until JAX's caches drop it;
    the whole suite compiles thousands, and a process past the kernel's ``vm.max_map_count`` (65,530
    by default) dies inside the next compilation ("Fatal Python error": a segmentation fault or an
    abort in backend_compile_and_load, at about 45% of the suite). After a test module, when the
    mappings pass a third of the limit, the compiled programs are released (the next module compiles
    what it needs again; the fixtures' arrays stay)."""
    yield
    limit = _map_limit()
    if limit and _count_lines("/proc/self/maps") > limit // 3:
        jax.clear_caches()
        gc.collect()


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> str:
    """The self-contained tiny model directory (``tests/tiny_models.py``), written once per session."""
    from tiny_models import make_tiny_model_dir

    return str(make_tiny_model_dir(tmp_path_factory.mktemp("tiny") / "model"))
