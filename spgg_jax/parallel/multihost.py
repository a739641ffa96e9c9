"""Multi-host (multi-process) helpers: initialization, process-0 logging, global batches, barriers.

A multi-host job runs the *same* program on every host (TPU pod worker / GPU node). Each process
sees its local devices; ``jax.devices()`` lists the global ones, so the mesh from ``make_mesh``
spans all hosts. ``initialize_distributed`` must run before any other JAX call.
"""

from __future__ import annotations

import logging
import os
from typing import Any, Sequence

import jax
import numpy as np
from jax.sharding import NamedSharding

logger = logging.getLogger(__name__)

ENV_COORDINATOR = "JAX_COORDINATOR_ADDRESS"
ENV_NUM_PROCESSES = "JAX_NUM_PROCESSES"
ENV_PROCESS_ID = "JAX_PROCESS_ID"
#: Set to 1 to call ``jax.distributed.initialize()`` with no arguments (JAX's own cluster
#: auto-detection: TPU pods, SLURM, Open MPI, ...) even when no cluster env var is recognized.
ENV_FORCE_AUTO = "SPGG_DISTRIBUTED"

# Environment variables that mean "this process is one of several, and JAX can auto-detect them".
_AUTO_DETECT_ENV = (
    "MEGASCALE_COORDINATOR_ADDRESS",  # multi-slice TPU
    "SLURM_JOB_ID",
    "OMPI_COMM_WORLD_SIZE",
)


def _env_int(name: str) -> int | None:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return None
    try:
        return int(raw)
    except ValueError:
        raise ValueError(f"environment variable {name}={raw!r} is not an integer") from None


def _tpu_pod_detected() -> bool:
    """True on a multi-host TPU slice (the worker list names more than one host)."""
    hosts = os.environ.get("TPU_WORKER_HOSTNAMES", "")
    return len([h for h in hosts.split(",") if h.strip()]) > 1


def _cluster_detected() -> bool:
    if os.environ.get(ENV_FORCE_AUTO, "").strip() in ("1", "true", "yes"):
        return True
    if _tpu_pod_detected():
        return True
    if os.environ.get("SLURM_JOB_ID") and (_env_int("SLURM_NTASKS") or 1) > 1:
        return True
    if (_env_int("OMPI_COMM_WORLD_SIZE") or 1) > 1:
        return True
    return bool(os.environ.get("MEGASCALE_COORDINATOR_ADDRESS"))


def initialize_distributed(
    coordinator_address: str | None = None,
    num_processes: int | None = None,
    process_id: int | None = None,
    local_device_ids: int | Sequence[int] | None = None,
    *,
    initialization_timeout: int = 300,
) -> bool:
    """Initialize JAX's multi-process runtime once; returns whether it is now multi-process.

    Call it first, before any other JAX call (creating arrays, ``jax.devices()``, ...).

    Resolution order for each argument: the explicit argument, else the environment
    (``JAX_COORDINATOR_ADDRESS`` "host:port", ``JAX_NUM_PROCESSES``, ``JAX_PROCESS_ID``).

    - With a coordinator address: ``jax.distributed.initialize(addr, n, id, local_device_ids)``.
    - Without one, on a detected cluster (multi-host TPU slice via ``TPU_WORKER_HOSTNAMES``,
      SLURM with > 1 task, Open MPI with > 1 rank, multi-slice, or ``SPGG_DISTRIBUTED=1``):
      ``jax.distributed.initialize()`` with no arguments, letting JAX auto-detect everything.
    - Otherwise: a single-process run; nothing is called and ``False`` is returned.

    Idempotent: a second call (or a call after ``jax.distributed.initialize``) does nothing.

    Raises:
      ValueError: inconsistent settings (e.g. a process id without a process count, or a process
        id outside ``[0, num_processes)``).
      RuntimeError: JAX was already used in this process before the call.
    """
    if jax.distributed.is_initialized():
        return jax.process_count() > 1
    addr = coordinator_address or os.environ.get(ENV_COORDINATOR) or None
    n = num_processes if num_processes is not None else _env_int(ENV_NUM_PROCESSES)
    pid = process_id if process_id is not None else _env_int(ENV_PROCESS_ID)
    if n is not None and n < 1:
        raise ValueError(f"num_processes must be >= 1, got {n}")
    if pid is not None and n is not None and not 0 <= pid < n:
        raise ValueError(f"process_id {pid} is outside [0, num_processes={n})")
    if addr is None and (n is not None or pid is not None) and not _cluster_detected():
        raise ValueError(
            f"num_processes={n} / process_id={pid} given without a coordinator address; set "
            f"{ENV_COORDINATOR}=host:port (or pass coordinator_address)"
        )
    if addr is None and not _cluster_detected():
        logger.info("initialize_distributed: single-process run (no coordinator, no cluster env)")
        return False
    if addr is not None and (n is None or pid is None) and not _cluster_detected():
        raise ValueError(
            f"coordinator {addr!r} given but num_processes={n} / process_id={pid} are not; set "
            f"{ENV_NUM_PROCESSES} and {ENV_PROCESS_ID} (or pass them)"
        )
    try:
        jax.distributed.initialize(
            coordinator_address=addr,
            num_processes=n,
            process_id=pid,
            local_device_ids=local_device_ids,
            initialization_timeout=initialization_timeout,
        )
    except RuntimeError as err:
        if "before any JAX" in str(err) or "must be called before" in str(err):
            raise RuntimeError(
                "initialize_distributed() must be the first JAX call of the program (JAX "
                f"backends were already initialized): {err}"
            ) from err
        raise
    logger.info(
        "initialize_distributed: process %d of %d, %d local / %d global devices",
        jax.process_index(), jax.process_count(), jax.local_device_count(), jax.device_count(),
    )
    return jax.process_count() > 1


def is_main_process() -> bool:
    """True on process 0 (the one that writes logs, metrics and summaries)."""
    return jax.process_index() == 0


class MainProcessFilter(logging.Filter):
    """A logging filter that drops records on every process but process 0."""

    def filter(self, record: logging.LogRecord) -> bool:  # noqa: A003
        return is_main_process()


def get_main_logger(name: str) -> logging.Logger:
    """``logging.getLogger(name)`` with a ``MainProcessFilter`` attached (added once)."""
    log = logging.getLogger(name)
    if not any(isinstance(f, MainProcessFilter) for f in log.filters):
        log.addFilter(MainProcessFilter())
    return log


def log_main(msg: str, *args: Any, level: int = logging.INFO, logger_: logging.Logger | None = None) -> None:
    """Log ``msg % args`` only on process 0."""
    if is_main_process():
        (logger_ or logger).log(level, msg, *args)


def process_batch_rows(sharding: NamedSharding, global_batch_size: int) -> slice:
    """The rows ``[start, stop)`` of a global batch that this process must load.

    Derived from the devices of ``sharding`` that this process owns, so it is right for any mesh
    device order. Raises if this process's rows are not one contiguous block (a layout that
    ``host_local_batch_to_global`` cannot assemble from a single local slice).
    """
    idx_map = sharding.addressable_devices_indices_map((global_batch_size,))
    ranges = set()
    for index in idx_map.values():
        sl = index[0] if index else slice(None)
        start, stop, _ = sl.indices(global_batch_size)
        ranges.add((start, stop))
    starts, stops = sorted(r[0] for r in ranges), sorted(r[1] for r in ranges)
    lo, hi = starts[0], stops[-1]
    covered = np.zeros(global_batch_size, bool)
    for a, b in ranges:
        covered[a:b] = True
    if not covered[lo:hi].all():
        raise ValueError(
            f"process {jax.process_index()} owns non-contiguous batch rows {sorted(ranges)}; "
            "use a mesh whose batch axes are ordered by process"
        )
    return slice(lo, hi)


def host_local_batch_to_global(
    local_batch: Any,
    sharding: NamedSharding | Any,
    global_batch_size: int | None = None,
) -> Any:
    """Assemble each process's slice of the batch into global ``jax.Array`` s.

    Args:
      local_batch: pytree of host arrays; leading dim = this process's rows (on one process, the
        whole batch). Load rows ``process_batch_rows(sharding, global_batch_size)``.
      sharding: a ``NamedSharding`` for every leaf (e.g. ``batch_sharding(mesh)``), or a matching
        pytree of them.
      global_batch_size: the global leading dim; default: local rows x process count.
    """

    def one(x: Any, s: NamedSharding) -> jax.Array:
        x = np.asarray(x)
        if x.ndim == 0:
            raise ValueError("host_local_batch_to_global: scalar leaves have no batch dimension")
        gb = global_batch_size if global_batch_size is not None else x.shape[0] * jax.process_count()
        return jax.make_array_from_process_local_data(s, x, (gb,) + x.shape[1:])

    if isinstance(sharding, jax.sharding.Sharding):
        return jax.tree_util.tree_map(lambda x: one(x, sharding), local_batch)
    return jax.tree_util.tree_map(one, local_batch, sharding)


def sync_global_devices(name: str) -> None:
    """Barrier across all processes (no-op on one process); ``name`` must match on every host."""
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils

        multihost_utils.sync_global_devices(name)


def to_host(tree: Any) -> Any:
    """Fetch a pytree of (possibly multi-host sharded) arrays as full numpy arrays on every process."""
    if jax.process_count() == 1:
        return jax.tree_util.tree_map(np.asarray, jax.device_get(tree))
    from jax.experimental import multihost_utils

    return jax.tree_util.tree_map(
        np.asarray, multihost_utils.process_allgather(tree, tiled=True)
    )


def broadcast_from_main(tree: Any) -> Any:
    """Process 0's value of a pytree of host arrays, on every process (identity on one process).

    For host-side results that must be bit-identical everywhere before they become global arrays
    (e.g. rewards from a sandbox whose timeouts could differ between hosts).
    """
    if jax.process_count() == 1:
        return tree
    from jax.experimental import multihost_utils

    return jax.tree_util.tree_map(np.asarray, multihost_utils.broadcast_one_to_all(tree))


def any_process(flag: bool) -> bool:
    """True when ``flag`` is true on any process (a collective: every process must call it)."""
    if jax.process_count() == 1:
        return bool(flag)
    from jax.experimental import multihost_utils

    return bool(np.any(multihost_utils.process_allgather(np.asarray([bool(flag)], np.int32))))
