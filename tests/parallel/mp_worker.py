"""Worker for the two-process test (run as a script, not collected by pytest).

One process of a tiny data+fsdp+tensor parallel regression with optax Adam on a global batch:

    python mp_worker.py --devices 4 --process-id I --num-processes 2 --port P --ckpt DIR \
        --phase {train,resume} --steps K --out OUT.json

``--num-processes 1 --devices 8`` is the single-process reference (``--phase full`` runs 2K steps
without a checkpoint). ``train`` runs K steps from the seed and saves an orbax checkpoint at step K;
``resume`` restores it and runs K more. Process 0 writes the losses and final parameters to OUT.
"""

from __future__ import annotations

import argparse
import json
import os
import sys


def parse() -> argparse.Namespace:
    p = argparse.ArgumentParser()
    p.add_argument("--devices", type=int, required=True)
    p.add_argument("--process-id", type=int, default=0)
    p.add_argument("--num-processes", type=int, default=1)
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--ckpt", default="")
    p.add_argument("--phase", choices=["train", "resume", "full"], required=True)
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--out", default="")
    return p.parse_args()


ARGS = parse()
# Before importing JAX: this process's fake CPU devices.
os.environ["JAX_PLATFORMS"] = "cpu"
os.environ["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={ARGS.devices}"
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", ".."))

import jax  # noqa: E402

jax.config.update("jax_cpu_collectives_implementation", "gloo")
jax.config.update("jax_num_cpu_devices", ARGS.devices)

from spgg_jax import parallel as P  # noqa: E402

if ARGS.num_processes > 1:
    assert P.initialize_distributed(
        f"localhost:{ARGS.port}", ARGS.num_processes, ARGS.process_id, initialization_timeout=60
    )
    # Idempotent: a second call is a no-op.
    assert P.initialize_distributed()

import numpy as np  # noqa: E402
import optax  # noqa: E402
import orbax.checkpoint as ocp  # noqa: E402

D_IN, D_HID, D_OUT, GLOBAL_BATCH = 8, 16, 4, 16
AXES = {"w1": ("embed", "mlp"), "b1": ("mlp",), "w2": ("mlp", "vocab"), "b2": ("vocab",)}


def init_params() -> dict:
    rng = np.random.default_rng(0)
    return {
        "w1": rng.normal(size=(D_IN, D_HID)).astype(np.float32) / np.sqrt(D_IN),
        "b1": np.zeros((D_HID,), np.float32),
        "w2": rng.normal(size=(D_HID, D_OUT)).astype(np.float32) / np.sqrt(D_HID),
        "b2": np.zeros((D_OUT,), np.float32),
    }


def global_batch(step: int) -> dict:
    rng = np.random.default_rng(1000 + step)
    x = rng.normal(size=(GLOBAL_BATCH, D_IN)).astype(np.float32)
    teacher = np.random.default_rng(7).normal(size=(D_IN, D_OUT)).astype(np.float32)
    return {"x": x, "y": np.sin(x @ teacher)}


def loss_fn(params: dict, batch: dict) -> jax.Array:
    h = jax.numpy.tanh(batch["x"] @ params["w1"] + params["b1"])
    h = P.with_logical_constraint(h, ("batch", "mlp"))
    pred = h @ params["w2"] + params["b2"]
    return jax.numpy.mean((pred - batch["y"]) ** 2)


def main() -> None:
    assert jax.process_count() == ARGS.num_processes, jax.process_count()
    assert jax.device_count() == ARGS.devices * ARGS.num_processes
    mesh = P.make_mesh(P.MeshConfig(data=2, fsdp=2, tensor=2))
    opt = optax.adam(3e-2)
    shapes = jax.tree_util.tree_map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype), init_params())
    pshard = P.tree_shardings(AXES, mesh, shapes=shapes)
    bshard = P.batch_sharding(mesh)
    rows = P.process_batch_rows(bshard, GLOBAL_BATCH)

    with P.sharding_context(mesh):
        @jax.jit
        def train_step(state, batch):
            loss, grads = jax.value_and_grad(loss_fn)(state["params"], batch)
            updates, opt_state = opt.update(grads, state["opt_state"], state["params"])
            params = optax.apply_updates(state["params"], updates)
            return {"params": params, "opt_state": opt_state, "step": state["step"] + 1}, loss

        def fresh_state() -> dict:
            params = P.shard_pytree(init_params(), pshard)
            return {"params": params, "opt_state": jax.jit(opt.init)(params),
                    "step": P.shard_pytree(np.int32(0), P.replicated_sharding(mesh))}

        state = fresh_state()
        mngr = ocp.CheckpointManager(os.path.abspath(ARGS.ckpt)) if ARGS.ckpt else None
        if ARGS.phase == "resume":
            abstract = jax.tree_util.tree_map(
                lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=a.sharding), state
            )
            step0 = mngr.latest_step()
            assert step0 == ARGS.steps, (step0, ARGS.steps)
            state = mngr.restore(step0, args=ocp.args.StandardRestore(abstract))
            for leaf, ref in zip(jax.tree_util.tree_leaves(state), jax.tree_util.tree_leaves(abstract)):
                assert leaf.sharding.is_equivalent_to(ref.sharding, leaf.ndim), (leaf.sharding, ref.sharding)
        n_steps = 2 * ARGS.steps if ARGS.phase == "full" else ARGS.steps
        losses = []
        for _ in range(n_steps):
            step = int(P.to_host(state["step"]))
            gb = global_batch(step)
            local = {k: v[rows] for k, v in gb.items()}
            batch = P.host_local_batch_to_global(local, bshard, GLOBAL_BATCH)
            state, loss = train_step(state, batch)
            losses.append(float(P.to_host(loss)))
        if ARGS.phase == "train":
            mngr.save(int(P.to_host(state["step"])), args=ocp.args.StandardSave(state))
            mngr.wait_until_finished()
        if mngr is not None:
            mngr.close()
        P.sync_global_devices("worker-done")
        final = P.to_host(state["params"])
        if P.is_main_process() and ARGS.out:
            with open(ARGS.out, "w") as f:
                json.dump({"losses": losses, "rows": [rows.start, rows.stop],
                           "process_count": jax.process_count(),
                           "params": {k: v.tolist() for k, v in final.items()}}, f)
        # Every process checks the rows it fed and reports them on stdout for the test.
        print(f"WORKER_OK process={jax.process_index()} rows={rows.start}:{rows.stop}", flush=True)


if __name__ == "__main__":
    main()
