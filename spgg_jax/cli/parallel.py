"""``spgg parallel show``: print the devices, the resolved mesh and the logical-axis rules.

Run it through ``tpu_scripts/launch.sh`` on a pod to check that every host joined and that the mesh
and rules are what the run will use. It calls ``initialize_distributed()`` first (a no-op on one
process), so it must run before anything else imports-and-uses JAX in the process.
"""

from __future__ import annotations

import argparse
import json

# Example layouts of the model contract, printed with their resolved specs.
EXAMPLES = {
    "embedding": ("vocab", "embed"),
    "q kernel": ("embed", "heads", "head_dim"),
    "k/v kernel": ("embed", "kv_heads", "head_dim"),
    "o kernel": ("heads", "head_dim", "embed"),
    "gate/up": ("embed", "mlp"),
    "down": ("mlp", "embed"),
    "lm_head": ("embed", "vocab"),
    "hidden": ("batch", "length", "embed"),
    "logits": ("batch", "length", "vocab"),
    "kv cache": ("layers", "batch", "cache_length", "kv_heads", "head_dim"),
}


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("parallel", help="device mesh and sharding rules (multi-host aware)")
    psub = p.add_subparsers(dest="parallel_command", metavar="ACTION")
    psub.required = True
    sp = psub.add_parser(
        "show", help="print devices, the resolved mesh and the sharding rules",
        description="Initialize multi-host JAX if configured (JAX_COORDINATOR_ADDRESS / "
        "SPGG_DISTRIBUTED=1 / cluster env), then print the devices, the mesh and the rules.",
    )
    sp.add_argument("--mesh", default="", help="mesh sizes, e.g. 'fsdp=-1,tensor=2' (default: data=-1)")
    sp.add_argument("--rules", default="", help="rule overrides, e.g. 'kv_heads=none,embed=tensor'")
    sp.add_argument("--json", action="store_true", help="print JSON")
    sp.set_defaults(func=cmd_show)


def cmd_show(args: argparse.Namespace) -> int:
    from spgg_jax.parallel.multihost import initialize_distributed

    initialize_distributed()
    import jax

    from spgg_jax.parallel import ParallelConfig, is_main_process, logical_to_spec, mesh_shape

    cfg = ParallelConfig.from_strings(args.mesh, args.rules)
    mesh = cfg.make_mesh()
    rules = cfg.rules()
    info = {
        "process_index": jax.process_index(),
        "process_count": jax.process_count(),
        "platform": jax.devices()[0].platform,
        "device_kind": jax.devices()[0].device_kind,
        "local_devices": jax.local_device_count(),
        "global_devices": jax.device_count(),
        "mesh": mesh_shape(mesh),
        "rules": [[name, axes] for name, axes in rules],
        "examples": {k: str(logical_to_spec(v, rules)) for k, v in EXAMPLES.items()},
    }
    if not is_main_process():
        return 0
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    print(f"processes: {info['process_count']}  platform: {info['platform']} ({info['device_kind']})  "
          f"devices: {info['local_devices']} local / {info['global_devices']} global")
    print("mesh: " + ", ".join(f"{k}={v}" for k, v in info["mesh"].items()))
    print("rules (first match wins):")
    for name, axes in rules:
        print(f"  {name:<13} -> {axes}")
    print("example layouts:")
    for k, v in info["examples"].items():
        print(f"  {k:<11} {str(EXAMPLES[k]):<58} {v}")
    return 0
