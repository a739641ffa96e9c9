"""The PPO core shared by every learner with small per-agent networks.

``ppo_update`` runs epochs of (optionally shuffled) minibatch gradient steps for n agents at once:
parameters, optimizer states and the batch carry a leading agent axis and every step is vmapped
over it, so each agent optimises its own loss with its own optimizer state (gradient clipping does
not couple agents). It is used by the game-level learners (``spgg_jax.rl.game_learners``) and by the
generation-parameter learner of LLM teams (``spgg_jax.rl.learners.gen_params``); they differ only in
the loss they pass and in the options below.

Pure and jittable; the hyperparameters live in the closures the callers build.
"""

from __future__ import annotations

from typing import Any, Callable, Optional

import jax
import jax.numpy as jnp
import optax

LossFn = Callable[[Any, Any], tuple[jax.Array, dict[str, jax.Array]]]


def make_optimizer(lr: float, grad_clip: float) -> optax.GradientTransformation:
    """Global-norm gradient clipping, then Adam: the optimizer of every learner."""
    return optax.chain(optax.clip_by_global_norm(grad_clip), optax.adam(lr))


def ppo_update(loss_fn: LossFn, tx: optax.GradientTransformation, params: Any, opt_state: Any, batch: Any,
               key: jax.Array, *, epochs: int, minibatch: Optional[int] = None, shuffle: bool = False,
               target_kl: Optional[float] = None, epoch_metrics: bool = False):
    """Epochs of minibatch steps on every agent's ``loss_fn(params_i, batch_i) -> (loss, metrics)``.

    Args:
      params, opt_state: per-agent pytrees stacked on a leading agent axis.
      batch: pytree of arrays ``[n_agents, B, ...]``.
      key: shuffles the rows (``shuffle=True``: a fresh permutation per epoch; rows beyond
        ``(B // minibatch) * minibatch`` are dropped for that epoch).
      minibatch: rows per gradient step (None: the whole batch, one step per epoch).
      target_kl: early stop: once an epoch ends with the mean (over agents) of the loss metric
        ``approx_kl`` on the whole batch above ``1.5 * target_kl``, later epochs change nothing.
      epoch_metrics: also evaluate ``loss_fn`` on the whole batch after every epoch (always done
        when ``target_kl`` is set).

    Returns ``(params, opt_state, out)`` where ``out["grad"]`` holds the metrics of every gradient
    step ``[epochs, steps_per_epoch, n_agents]``, ``out["epoch"]`` (when evaluated) the whole-batch
    metrics after each epoch ``[epochs, n_agents]`` and ``out["epochs_run"]`` how many epochs
    updated the parameters.
    """
    b = jax.tree_util.tree_leaves(batch)[0].shape[1]
    mb = b if minibatch is None else min(minibatch, b)
    n_mb = b // mb
    evaluate = epoch_metrics or target_kl is not None
    grad_fn = jax.vmap(jax.grad(loss_fn, has_aux=True))

    def epoch(carry, ekey):
        params, opt_state, stopped = carry
        if shuffle:
            idx = jax.random.permutation(ekey, b)[: n_mb * mb].reshape(n_mb, mb)
        else:
            idx = jnp.arange(n_mb * mb).reshape(n_mb, mb)

        def step(c, rows):
            params, opt_state = c
            d = batch if (n_mb == 1 and not shuffle) else jax.tree_util.tree_map(lambda x: x[:, rows], batch)
            grads, aux = grad_fn(params, d)
            updates, new_opt = jax.vmap(tx.update)(grads, opt_state, params)
            new_params = optax.apply_updates(params, updates)
            if target_kl is not None:  # after an early stop the updates are computed but not applied
                keep = lambda new, old: jax.tree_util.tree_map(lambda a, o: jnp.where(stopped, o, a), new, old)  # noqa: E731
                new_params, new_opt = keep(new_params, params), keep(new_opt, opt_state)
            return (new_params, new_opt), aux

        (params, opt_state), grad_aux = jax.lax.scan(step, (params, opt_state), idx)
        ran = ~stopped
        out = {"grad": grad_aux}
        if evaluate:
            _, m = jax.vmap(loss_fn)(params, batch)
            out["epoch"] = m
            if target_kl is not None:
                stopped = stopped | (jnp.mean(m["approx_kl"]) > 1.5 * target_kl)
        return (params, opt_state, stopped), (out, ran)

    (params, opt_state, _), (out, ran) = jax.lax.scan(epoch, (params, opt_state, jnp.array(False)),
                                                      jax.random.split(key, epochs))
    return params, opt_state, {**out, "epochs_run": jnp.sum(ran)}
