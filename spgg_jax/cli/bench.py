"""``spgg bench NAME``: benchmarks that report speed as ratios against a reference run.

Each benchmark is a module in ``spgg_jax.bench`` with ``add_arguments(parser)`` and ``run(args)``;
register a new one by adding it to ``BENCHMARKS``.
"""

from __future__ import annotations

import argparse
import importlib

BENCHMARKS = {
    "sample": ("spgg_jax.bench.sample", "KV-cached sampler new tokens/s vs transformers generate"),
    "iteration": ("spgg_jax.bench.iteration",
                  "one training iteration of a config split into prefill, policy, decode, scoring, update "
                  "and compilation, vs the same phases in PyTorch"),
    "train": ("spgg_jax.bench.train", "the token-level update step (LoRA on the top layers, from the captured "
                                      "trunk and with its forward) vs the same step in PyTorch"),
    "rewards": ("spgg_jax.bench.rewards", "jitted reward evaluation and SPNE solver vs a numpy loop"),
    "forward": ("spgg_jax.bench.forward", "jitted Flax LLM forward tokens/s vs PyTorch transformers"),
    "sweep": ("spgg_jax.bench.sweep", "policy-gradient learning runs (seeds x params) in one vmapped call vs a loop"),
}


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("bench", help="speed benchmarks (ratios against a reference in the same run)")
    bsub = p.add_subparsers(dest="bench", metavar="BENCHMARK")
    bsub.required = True
    for name, (module, help_text) in BENCHMARKS.items():
        bp = bsub.add_parser(name, help=help_text, description=help_text)
        mod = importlib.import_module(module)
        mod.add_arguments(bp)
        bp.set_defaults(func=mod.run)
