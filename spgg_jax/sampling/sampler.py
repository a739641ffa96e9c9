"""KV-cached batched generation with per-row traced sampling parameters.

``sample_loop`` (jitted) prefills a left-padded prompt batch into a KV cache, then decodes under
``lax.while_loop`` until every row has met a stop token or its own ``max_new_tokens``. The same two
halves run as programs of their own (``Sampler.prefill`` then ``Sampler.decode``) when the sampling
parameters are chosen from the prompt's hidden states, so the prompt still runs once. The cache is
donated and handed back, so the :class:`Sampler` reuses one buffer per shape. Prompt lengths are
bucketed (``prompt_bucket``) and generation lengths too (powers of two) so the number of
compilations stays small, and sampling parameter *values* never cause one.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct
from jax import lax

from spgg_jax.models.config import ModelConfig
from spgg_jax.models.decoder import (CACHE_AXES, KVCache, forward, forward_capturing, init_cache, logits_from_hidden,
                                     positions_from_mask, split_layers)
from spgg_jax.parallel.mesh import mesh_shape
from spgg_jax.parallel.rules import batch_sharding, batch_spec, mesh_context, tree_shardings
from spgg_jax.parallel.xla_options import dense_jit
from spgg_jax.sampling.params import SamplingParams
from spgg_jax.sampling.processors import choose_tokens

FINISH_LENGTH = 0  # reached the row's max_new_tokens
FINISH_STOP = 1  # emitted one of the row's stop tokens (kept in the output)
FINISH_REASONS = {FINISH_LENGTH: "length", FINISH_STOP: "stop"}


@struct.dataclass
class SampleOutput:
    """Generated continuations, right-padded to the generation bucket ``T``."""

    tokens: jax.Array  # i32[B,T], pad_id after the end
    mask: jax.Array  # bool[B,T], True at generated tokens (the stop token included)
    logprobs: jax.Array  # f32[B,T] log-prob under the sampling distribution (0 for greedy rows, 0 at pads)
    model_logprobs: jax.Array  # f32[B,T] log-prob under the raw model (0 at pads)
    lengths: jax.Array  # i32[B]
    finish_reason: jax.Array  # i32[B], FINISH_LENGTH or FINISH_STOP
    # [B,T,D] with ``capture=L``: the residual stream entering layer L at each generated token (the
    # forward that produced the next token's logits); the last token of a row, never run, holds 0
    trunk: jax.Array | None = None


def _mark(seen, tokens, valid):
    v = seen.shape[-1]
    rows = jnp.arange(seen.shape[0])[:, None]
    idx = jnp.where(valid, tokens, v).reshape(seen.shape[0], -1)
    return seen.at[rows, idx].set(True, mode="drop")


@struct.dataclass
class DecodeStart:
    """Where decoding starts after the prompt (beside the KV cache; device arrays, batch-major)."""

    last_hidden: jax.Array  # f32[B,1,D] final hidden state at the last prompt position
    next_position: jax.Array  # i32[B] position of the first generated token
    seen: jax.Array  # bool[B,V] tokens of the prompt (repetition penalty)
    trunk: jax.Array | None = None  # [B,P,D] with capture=L: the residual stream entering layer L


def mean_pool(hidden: jax.Array, mask: jax.Array) -> jax.Array:
    """f32[B,D]: ``hidden`` [B,T,D] averaged over the positions where ``mask`` [B,T] is True."""
    w = mask.astype(jnp.float32)[..., None]
    return jnp.sum(hidden.astype(jnp.float32) * w, axis=1) / jnp.maximum(jnp.sum(w, axis=1), 1.0)


def _forward(params, cfg, tokens, positions, mask, cache, capture, split=None):
    """(hidden, cache, residual stream entering layer ``capture`` or None)."""
    if capture is None:
        return (*forward(params, cfg, tokens, positions, mask, cache), None)
    return forward_capturing(params, cfg, tokens, positions, mask, cache, capture, split)


def _prefill(params: Any, cfg: ModelConfig, cache: KVCache, prompt_tokens: jax.Array,
             prompt_mask: jax.Array, capture: int | None = None) -> tuple[KVCache, DecodeStart, jax.Array]:
    """Run the prompt into ``cache``: (cache, DecodeStart, pooled f32[B,D] prompt features).

    ``capture=L`` keeps the residual stream entering layer L (``DecodeStart.trunk``)."""
    b = prompt_tokens.shape[0]
    prompt_mask = prompt_mask.astype(bool)
    cache = cache.replace(mask=jnp.zeros_like(cache.mask), index=jnp.zeros_like(cache.index))
    positions = positions_from_mask(prompt_mask)
    hidden, cache, trunk = _forward(params, cfg, prompt_tokens, positions, prompt_mask, cache, capture)
    seen = _mark(jnp.zeros((b, cfg.vocab_size), bool), prompt_tokens, prompt_mask)
    start = DecodeStart(last_hidden=hidden[:, -1:], next_position=positions[:, -1] + 1, seen=seen, trunk=trunk)
    return cache, start, mean_pool(hidden, prompt_mask)


def _decode(params: Any, cfg: ModelConfig, cache: KVCache, start: DecodeStart, sp: SamplingParams,
            stop_tokens: jax.Array, key: jax.Array, max_new: int, pad_id: int,
            capture: int | None = None) -> tuple[SampleOutput, KVCache]:
    """Decode from a prefilled ``cache`` until every row stopped or reached its max_new_tokens.

    ``capture=L`` keeps the residual stream entering layer L at each generated token (``SampleOutput.trunk``)."""
    b = start.seen.shape[0]
    seen_gen = jnp.zeros((b, cfg.vocab_size), bool)

    def pick(i, h, seen, seen_gen, done, finish):
        logits = logits_from_hidden(params, cfg, h)[:, -1]
        tok, slp, mlp = choose_tokens(jax.random.fold_in(key, i), logits, sp, seen, seen_gen)
        valid = ~done
        tok = jnp.where(valid, tok, pad_id)
        stop_hit = jnp.any(tok[:, None] == stop_tokens, axis=-1) & valid
        reached = (i + 1 >= sp.max_new_tokens) & valid
        finish = jnp.where(stop_hit, FINISH_STOP, finish)
        return (
            tok,
            jnp.where(valid, slp, 0.0),
            jnp.where(valid, mlp, 0.0),
            valid,
            _mark(seen, tok, valid),
            _mark(seen_gen, tok, valid),
            done | stop_hit | reached,
            finish,
        )

    out_tok = jnp.full((b, max_new), pad_id, jnp.int32)
    out_mask = jnp.zeros((b, max_new), bool)
    out_lp = jnp.zeros((b, max_new), jnp.float32)
    out_mlp = jnp.zeros((b, max_new), jnp.float32)
    # the captured stream of generated token i is written when token i runs (the step that picks i + 1)
    out_trunk = None if capture is None else jnp.zeros((b, max_new, cfg.d_model), cfg.jnp_dtype)
    split = None if capture is None else split_layers(params, capture)  # sliced once, outside the loop

    def write(outs, i, tok, slp, mlp, valid):
        o_t, o_m, o_l, o_ml, o_tr = outs
        return (
            lax.dynamic_update_slice(o_t, tok[:, None], (0, i)),
            lax.dynamic_update_slice(o_m, valid[:, None], (0, i)),
            lax.dynamic_update_slice(o_l, slp[:, None], (0, i)),
            lax.dynamic_update_slice(o_ml, mlp[:, None], (0, i)),
            o_tr,
        )

    done0 = jnp.zeros((b,), bool)
    finish0 = jnp.full((b,), FINISH_LENGTH, jnp.int32)
    tok, slp, mlp, valid, seen, seen_gen, done, finish = pick(0, start.last_hidden, start.seen, seen_gen, done0,
                                                             finish0)
    outs = write((out_tok, out_mask, out_lp, out_mlp, out_trunk), 0, tok, slp, mlp, valid)

    def cond(carry):
        i, *_, done, _ = carry
        return (i < max_new) & ~jnp.all(done)

    def body(carry):
        i, tok, pos, cache, outs, seen, seen_gen, done, finish = carry
        h, cache, trunk = _forward(params, cfg, tok[:, None], pos[:, None], (~done)[:, None], cache, capture, split)
        if trunk is not None:
            outs = (*outs[:4], lax.dynamic_update_slice(outs[4], trunk.astype(outs[4].dtype), (0, i - 1, 0)))
        tok, slp, mlp, valid, seen, seen_gen, done, finish = pick(i, h, seen, seen_gen, done, finish)
        outs = write(outs, i, tok, slp, mlp, valid)
        return i + 1, tok, pos + 1, cache, outs, seen, seen_gen, done, finish

    carry = (jnp.asarray(1, jnp.int32), tok, start.next_position, cache, outs, seen, seen_gen, done, finish)
    _, _, _, cache, outs, _, _, _, finish = lax.while_loop(cond, body, carry)
    o_t, o_m, o_l, o_ml, o_tr = outs
    out = SampleOutput(o_t, o_m, o_l, o_ml, jnp.sum(o_m, axis=-1).astype(jnp.int32), finish, o_tr)
    return out, cache


@functools.partial(jax.jit, static_argnames=("cfg", "max_new", "pad_id", "capture"), donate_argnames=("cache",))
def sample_loop(
    params: Any,
    cfg: ModelConfig,
    cache: KVCache,
    prompt_tokens: jax.Array,
    prompt_mask: jax.Array,
    sp: SamplingParams,
    stop_tokens: jax.Array,
    key: jax.Array,
    max_new: int,
    pad_id: int = 0,
    capture: int | None = None,
) -> tuple[SampleOutput, KVCache]:
    """Generate up to ``max_new`` tokens per row. Returns the output and the (reusable) cache.

    ``prompt_tokens`` i32[B,P] left-padded with ``prompt_mask`` bool[B,P]; ``stop_tokens`` i32[B,S]
    padded with -1; ``cache`` must hold P + max_new slots (its contents are ignored). The prefill
    and the decode loop in one program, for callers that know the sampling parameters upfront.
    ``capture=L`` also returns the residual stream entering layer L at each generated token
    (``SampleOutput.trunk``; the prompt's is the prefill's, :meth:`Sampler.prefill`).
    """
    cache, start, _ = _prefill(params, cfg, cache, prompt_tokens, prompt_mask, capture)
    return _decode(params, cfg, cache, start, sp, stop_tokens, key, max_new, pad_id, capture)


# The two halves as programs of their own, for callers whose sampling parameters depend on the
# prompt's hidden states (a policy over generation parameters): the prompt is run once.
# The prefill's dots have many rows (every prompt token): compiled with the dense options on CPU.
prefill_prompts = dense_jit(_prefill, static_argnames=("cfg", "capture"), donate_argnames=("cache",))
decode_tokens = jax.jit(_decode, static_argnames=("cfg", "max_new", "pad_id", "capture"), donate_argnames=("cache",))


@jax.jit
def _take_prefilled(cache: KVCache, start: DecodeStart, pooled: jax.Array, index: jax.Array):
    """The prefill of rows ``index`` of a batch: every row-wise array gathered on its batch axis."""
    take = functools.partial(jnp.take, indices=index, axis=0)
    cache = cache.replace(k=jnp.take(cache.k, index, axis=1), v=jnp.take(cache.v, index, axis=1),
                          mask=take(cache.mask))
    return cache, jax.tree_util.tree_map(take, start), take(pooled)


def distinct_rows(prompts: Sequence[Sequence[int]]) -> tuple[list[list[int]], np.ndarray]:
    """(the distinct prompts in first-seen order, i32[B]: each row's index among them)."""
    first: dict[tuple[int, ...], int] = {}
    index = np.asarray([first.setdefault(tuple(int(t) for t in p), len(first)) for p in prompts], np.int32)
    return [list(p) for p in first], index


def bucket(n: int, minimum: int = 16) -> int:
    """The smallest power of two >= max(n, minimum): bounds recompiles over lengths."""
    n = max(int(n), minimum)
    return 1 << (n - 1).bit_length()


def prompt_bucket(n: int, minimum: int = 16) -> int:
    """The padded prompt length for ``n`` tokens: powers of two up to 128, then quarter octaves.

    16, 32, 64, 128, 160, 192, 224, 256, 320, 384, 448, 512, 640, ...: at most 4 compiled programs
    per doubling of the prompt, and at most 25% padding above 128 tokens (a power-of-two bucket
    pads a 139-token prompt to 256 and nearly doubles the prefill).
    """
    n = max(int(n), minimum)
    if n <= 128:
        return bucket(n, minimum)
    step = 1 << ((n - 1).bit_length() - 3)  # a quarter of the octave n lies in
    return -(-n // step) * step


def left_pad(sequences: Sequence[Sequence[int]], length: int, pad_id: int) -> tuple[np.ndarray, np.ndarray]:
    """Left-pad token lists to ``length``: (ids i32[B,length], mask bool[B,length])."""
    ids = np.full((len(sequences), length), pad_id, np.int32)
    mask = np.zeros((len(sequences), length), bool)
    for r, seq in enumerate(sequences):
        if len(seq) == 0:
            raise ValueError(f"prompt {r} is empty; every row needs at least one token")
        if len(seq) > length:
            raise ValueError(f"prompt {r} has {len(seq)} tokens, more than the length {length}")
        ids[r, length - len(seq):] = seq
        mask[r, length - len(seq):] = True
    return ids, mask


class Sampler:
    """The Python edge of the sampler: padding, bucketing, stop tokens, cache reuse, sharding.

    >>> sampler = Sampler(params, cfg, pad_id=tokenizer.pad_token_id)
    >>> out = sampler.generate([[1, 2, 3], [4, 5]], SamplingParams.create(2, temperature=0.7), key=key)

    With ``mesh``, batch inputs are placed with the batch axis sharded over the mesh's data axes
    and the KV cache by its logical axes (``CACHE_AXES``) under ``rules`` (default
    ``spgg_jax.parallel.DEFAULT_RULES``); params should already be placed, e.g. with
    ``spgg_jax.parallel.shard_pytree`` or ``spgg_jax.parallel.load_sharded``.
    """

    def __init__(self, params: Any, cfg: ModelConfig, pad_id: int = 0, eos_ids: Sequence[int] | None = None,
                 min_bucket: int = 16, mesh: Any = None, max_len: int | None = None,
                 rules: Sequence[tuple[str, Any]] | None = None, min_gen_bucket: int = 0):
        self.params = params
        self.cfg = cfg
        self.pad_id = int(pad_id)
        self.eos_ids = tuple(int(e) for e in (cfg.eos_token_ids if eos_ids is None else eos_ids))
        self.min_bucket = int(min_bucket)
        # generation buffers are at least this long: callers whose per-row max_new_tokens vary (a
        # policy choosing them) pin one bucket, since the loop stops early when every row is done
        self.min_gen_bucket = int(min_gen_bucket)
        self.mesh = mesh
        self.rules = None if rules is None else tuple(rules)
        self.max_len = int(max_len or cfg.max_position_embeddings)
        self._caches: dict[tuple[int, int], KVCache] = {}

    def _place(self, x):
        if self.mesh is None:
            return jnp.asarray(x)
        return jax.device_put(x, batch_sharding(self.mesh, self.rules))

    def context(self):
        """The mesh and rules as the active sharding context (activation constraints); a no-op without a mesh."""
        return mesh_context(self.mesh, self.rules)

    def place_rows(self, x):
        """``x`` with its leading (batch) dim split over the mesh when it divides evenly, else as is."""
        if self.mesh is None or np.shape(x)[0] % self.batch_multiple():
            return jnp.asarray(x)
        return self._place(x)

    def batch_multiple(self) -> int:
        """Rows are padded to a multiple of this: the number of batch shards of the mesh (1 without one)."""
        if self.mesh is None:
            return 1
        axes = batch_spec(self.rules)[0]
        names = () if axes is None else (axes,) if isinstance(axes, str) else tuple(axes)
        sizes = mesh_shape(self.mesh)
        return int(np.prod([sizes.get(a, 1) for a in names]))

    def stop_matrix(self, batch: int, stop_tokens: Sequence[Sequence[int]] | None) -> np.ndarray:
        rows = [list(self.eos_ids) for _ in range(batch)] if stop_tokens is None else [list(s) for s in stop_tokens]
        if len(rows) != batch:
            raise ValueError(f"stop_tokens has {len(rows)} rows for a batch of {batch}")
        width = bucket(max([len(r) for r in rows] + [1]), minimum=4)
        mat = np.full((batch, width), -1, np.int32)
        for r, s in enumerate(rows):
            mat[r, : len(s)] = s
        return mat

    def lengths(self, prompt_len: int, max_new: int) -> tuple[int, int]:
        """(prompt length, generation length) of the padded buffers for these request sizes.

        Buckets keep compilations few: ``prompt_bucket`` for the prompt, a power of two for the
        generation (at least ``min_bucket``; at least ``min_gen_bucket``); when the buckets would not fit the model's positions but the request
        does (a 20-token prompt plus 16 new tokens on a 37-position model), they shrink to fit:
        the generation to what the positions leave (never below ``max_new``), then the prompt.
        Only a request that cannot fit at all is refused.
        """
        if prompt_len + max_new > self.max_len:
            raise ValueError(
                f"a {prompt_len}-token prompt plus {max_new} new tokens exceed the model's {self.max_len} "
                "positions; shorten the prompts or max_new_tokens")
        p_len = prompt_bucket(prompt_len, self.min_bucket)
        t_len = bucket(max(max_new, self.min_gen_bucket), self.min_bucket)
        if p_len + t_len > self.max_len:
            t_len = max(max_new, min(t_len, self.max_len - prompt_len))
            p_len = min(p_len, self.max_len - t_len)
        return p_len, t_len

    def _batch(self, prompts: Sequence[Sequence[int]], max_new: int):
        """Pad the rows to the mesh's batch shards and the lengths to their buckets; fetch a cache."""
        b = len(prompts)
        p_len, t_len = self.lengths(max(len(p) for p in prompts), max_new)
        # On a mesh the rows are split over the batch shards: pad with copies of row 0, drop them after.
        extra = -b % self.batch_multiple()
        prompts = list(prompts) + [prompts[0]] * extra
        ids, mask = left_pad(prompts, p_len, self.pad_id)
        shape = (b + extra, p_len + t_len)
        cache = self._caches.pop(shape, None)
        if cache is None:
            cache = self._place_cache(init_cache(self.cfg, b + extra, p_len + t_len))
        return _Rows(b=b, extra=extra, t_len=t_len, shape=shape), ids, mask, cache

    def _place_cache(self, cache: KVCache) -> KVCache:
        """``cache`` laid out on the mesh by its logical axes (as is without a mesh)."""
        if self.mesh is None:
            return cache
        # shapes=cache (arrays, which have .shape) turns on the divisibility fallback, e.g.
        # 2 KV heads on tensor=4 stay replicated instead of failing in device_put.
        shard = tree_shardings(KVCache(CACHE_AXES, CACHE_AXES, ("batch", "cache_length"), ()), self.mesh,
                               self.rules, shapes=cache)
        return jax.device_put(cache, shard)

    def _row_inputs(self, rows: "_Rows", sampling: SamplingParams, stop_tokens, key):
        """Sampling parameters, stop matrix and key for the padded rows, placed on the mesh."""
        if sampling.batch != rows.b:
            raise ValueError(f"sampling params are for {sampling.batch} rows, got {rows.b} prompts")
        max_new = int(np.max(np.asarray(sampling.max_new_tokens)))
        if max_new > rows.t_len:
            raise ValueError(f"max_new_tokens {max_new} exceeds the {rows.t_len} generation slots the prompt "
                             "was prefilled for; prefill with the largest max_new_tokens a row may ask for")
        stops = self.stop_matrix(rows.b, stop_tokens)
        if rows.extra:
            sampling = jax.tree_util.tree_map(
                lambda x: jnp.concatenate([x, jnp.repeat(jnp.asarray(x)[:1], rows.extra, 0)]), sampling)
            stops = np.concatenate([stops, np.repeat(stops[:1], rows.extra, 0)])
        key = jax.random.key(0) if key is None else key
        return jax.tree_util.tree_map(self._place, sampling), self._place(stops), key

    def _finish(self, rows: "_Rows", out: SampleOutput, cache: KVCache) -> SampleOutput:
        self._caches[rows.shape] = cache
        return jax.tree_util.tree_map(lambda x: x[: rows.b], out) if rows.extra else out

    def generate(
        self,
        prompts: Sequence[Sequence[int]],
        sampling: SamplingParams,
        key: jax.Array | None = None,
        stop_tokens: Sequence[Sequence[int]] | None = None,
        params: Any = None,
        capture: int | None = None,
    ) -> SampleOutput:
        """Generate for token-id prompts; ``stop_tokens`` default to the model's EOS ids per row.

        ``params`` overrides the sampler's weights for this call (e.g. an agent's fine-tuned
        weights on a shared base model); same shapes, so no recompilation. ``capture=L`` fills
        ``SampleOutput.trunk`` (the generated tokens' residual stream entering layer L).
        """
        if sampling.batch != len(prompts):
            raise ValueError(f"sampling params are for {sampling.batch} rows, got {len(prompts)} prompts")
        rows, ids, mask, cache = self._batch(prompts, int(np.max(np.asarray(sampling.max_new_tokens))))
        sp, stops, key = self._row_inputs(rows, sampling, stop_tokens, key)
        with self.context():
            out, cache = sample_loop(self.params if params is None else params, self.cfg, cache, self._place(ids),
                                     self._place(mask), sp, stops, key, rows.t_len, self.pad_id,
                                     self._capture(capture))
        return self._finish(rows, out, cache)

    def _capture(self, capture: int | None) -> int | None:
        if capture is None:
            return None
        if isinstance(capture, bool) or not isinstance(capture, int) or not 0 <= capture <= self.cfg.n_layers:
            raise ValueError(f"capture must be a layer index in [0, {self.cfg.n_layers}], got {capture!r}")
        return capture

    def prefill(self, prompts: Sequence[Sequence[int]], max_new: int, params: Any = None,
                capture: int | None = None) -> "PrefilledBatch":
        """Run the prompts once, for a caller that picks sampling parameters from their hidden states.

        ``max_new`` is the most tokens any row may later ask for (it sizes the cache). The result's
        ``features`` (f32[B,D], the prompt's final hidden states mean-pooled over real tokens) feed
        the choice; :meth:`decode` then generates from the same cache without running the prompt again.
        ``capture=L`` keeps the residual stream entering layer L, of the prompt
        (:meth:`PrefilledBatch.prompt_trunk`) and, in :meth:`decode`, of the generated tokens.

        Identical prompts (a group of rollouts of one problem) run once: the distinct prompts are
        prefilled and each row takes its prompt's cache, features and stream.
        """
        capture = self._capture(capture)
        weights = self.params if params is None else params
        distinct, index = distinct_rows(prompts)
        once, ids, mask, cache = self._batch(distinct, max_new)
        with self.context():
            cache, start, pooled = prefill_prompts(weights, self.cfg, cache, self._place(ids), self._place(mask),
                                                   capture)
        if len(distinct) == len(prompts):
            return PrefilledBatch(rows=once, cache=cache, start=start, pooled=pooled, params=weights, capture=capture)
        b = len(prompts)
        extra = -b % self.batch_multiple()
        rows = _Rows(b=b, extra=extra, t_len=once.t_len, shape=(b + extra, once.shape[1]))
        index = np.concatenate([index, np.repeat(index[:1], extra)])  # the mesh's filler rows copy row 0
        with self.context():
            full, start, pooled = _take_prefilled(cache, start, pooled, jnp.asarray(index))
        self._caches[once.shape] = cache  # the distinct rows' buffer goes back for the next prefill
        if self.mesh is not None:
            full = self._place_cache(full)
            start, pooled = jax.tree_util.tree_map(self._place, (start, pooled))
        return PrefilledBatch(rows=rows, cache=full, start=start, pooled=pooled, params=weights, capture=capture)

    def decode(self, pre: "PrefilledBatch", sampling: SamplingParams, key: jax.Array | None = None,
               stop_tokens: Sequence[Sequence[int]] | None = None) -> SampleOutput:
        """Generate from a :meth:`prefill` (which it consumes) with per-row ``sampling`` parameters."""
        if pre.cache is None:
            raise ValueError("this prefilled batch was already decoded (its cache is reused); prefill again")
        sp, stops, key = self._row_inputs(pre.rows, sampling, stop_tokens, key)
        cache, pre.cache = pre.cache, None
        with self.context():
            out, cache = decode_tokens(pre.params, self.cfg, cache, pre.start, sp, stops, key, pre.rows.t_len,
                                       self.pad_id, pre.capture)
        return self._finish(pre.rows, out, cache)


@dataclasses.dataclass(frozen=True)
class _Rows:
    b: int  # the caller's rows
    extra: int  # copies of row 0 appended to fill the mesh's batch shards
    t_len: int  # generation slots
    shape: tuple[int, int]  # the cache's (rows, slots)


@dataclasses.dataclass
class PrefilledBatch:
    """A batch whose prompts ran through the model (:meth:`Sampler.prefill`), ready to decode once."""

    rows: _Rows
    cache: KVCache | None  # None once decoded (the buffer went back to the sampler)
    start: DecodeStart
    pooled: jax.Array
    params: Any
    capture: int | None = None  # the layer whose entering residual stream is kept (None: none)

    @property
    def features(self) -> jax.Array:
        """f32[B,D]: the prompt's final hidden states, mean-pooled over its real tokens."""
        return self.pooled[: self.rows.b] if self.rows.extra else self.pooled

    @property
    def prompt_trunk(self) -> jax.Array | None:
        """[B,P,D] with ``capture``: the residual stream entering that layer over the left-padded
        prompt (P = the prompt bucket); None without."""
        trunk = self.start.trunk
        if trunk is None:
            return None
        return trunk[: self.rows.b] if self.rows.extra else trunk
