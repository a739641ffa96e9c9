"""spgg_jax.parallel: device mesh, logical-axis sharding rules, multi-host helpers.

Model code names logical axes (``"batch"``, ``"embed"``, ``"heads"``, ...); this package alone maps
them to the ``("data", "fsdp", "tensor")`` mesh. See ``docs/scaling.md``.

Import note: importing this package imports JAX but does not initialize any backend, so
``initialize_distributed()`` can still be called first.
"""

from spgg_jax.parallel.loading import load_sharded
from spgg_jax.parallel.mesh import MESH_AXES, MeshConfig, make_mesh, mesh_shape
from spgg_jax.parallel.multihost import (
    MainProcessFilter,
    any_process,
    broadcast_from_main,
    get_main_logger,
    host_local_batch_to_global,
    initialize_distributed,
    is_main_process,
    log_main,
    process_batch_rows,
    sync_global_devices,
    to_host,
)
from spgg_jax.parallel.rules import (
    DEFAULT_RULES,
    LOGICAL_AXES,
    ParallelConfig,
    active_rules,
    batch_sharding,
    batch_spec,
    describe_shardings,
    logical_to_spec,
    mesh_context,
    override_rules,
    parse_rules_overrides,
    replicated_sharding,
    shard_pytree,
    sharding_context,
    tree_shardings,
    validate_rules,
    with_logical_constraint,
)

__all__ = [
    "MESH_AXES", "MeshConfig", "make_mesh", "mesh_shape",
    "MainProcessFilter", "any_process", "broadcast_from_main", "get_main_logger", "host_local_batch_to_global", "initialize_distributed",
    "is_main_process", "log_main", "process_batch_rows", "sync_global_devices", "to_host",
    "DEFAULT_RULES", "LOGICAL_AXES", "ParallelConfig", "active_rules", "batch_sharding", "batch_spec",
    "describe_shardings", "logical_to_spec", "mesh_context", "override_rules", "parse_rules_overrides",
    "replicated_sharding", "shard_pytree", "sharding_context", "tree_shardings", "validate_rules",
    "with_logical_constraint", "load_sharded",
]
