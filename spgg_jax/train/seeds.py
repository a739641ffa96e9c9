"""``spgg train --seeds 0,1,2``: one configuration trained and evaluated once per seed.

Each seed runs into ``RUN_DIR/seed<S>`` (a normal run directory: its own config, metrics,
checkpoints, ``eval.json``), the models loaded once and shared. Afterwards ``RUN_DIR/seeds.json``
holds the per-seed and across-seed figures (``spgg_jax.eval.seeds.aggregate``) and the table is
printed. A seed changes the policy's initialisation, the sampling keys and the problems drawn.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable, Mapping

from spgg_jax.train.config import TrainConfig


def parse_seeds(text: str) -> list[int]:
    """``"0,1,2"`` -> ``[0, 1, 2]`` (distinct integers, in the order given)."""
    items = [x.strip() for x in str(text).split(",") if x.strip()]
    try:
        seeds = [int(x) for x in items]
    except ValueError:
        raise ValueError(f"--seeds must be comma-separated integers like 0,1,2, got {text!r}") from None
    if not seeds:
        raise ValueError(f"--seeds must name at least one seed, like 0,1,2, got {text!r}")
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"--seeds lists a seed twice: {text!r}")
    return seeds


def seed_run_dir(run_dir: str | Path, seed: int) -> Path:
    return Path(run_dir) / f"seed{seed}"


def run_seeds(cfg: TrainConfig, seeds: list[int], *, resume: bool = False, overwrite: bool = False,
              resume_from: str | None = None, evaluate: bool = True, bundles: Mapping[str, Any] | None = None,
              log: Callable[..., None] = print) -> dict[str, Any]:
    """Train (and evaluate) ``cfg`` once per seed; write ``RUN_DIR/seeds.json``; return its content."""
    from spgg_jax.eval.seeds import aggregate, format_seeds
    from spgg_jax.eval.trained import format_eval_table
    from spgg_jax.parallel import is_main_process
    from spgg_jax.train.loop import Trainer

    base = Path(cfg.run_dir)
    runs, results = {}, {}
    for seed in seeds:
        one = cfg.replace(seed=seed, run_dir=str(seed_run_dir(base, seed)))
        log(f"\n=== seed {seed}: {one.run_dir}")
        trainer = Trainer(one, resume=resume, overwrite=overwrite, resume_from=resume_from, bundles=bundles, log=log)
        bundles = trainer.setup.bundles  # each model is loaded once for all seeds
        out = trainer.run(evaluate=evaluate)
        runs[str(seed)] = {"run_dir": one.run_dir, "steps": out["steps"]}
        if "eval" in out:
            results[seed] = out["eval"]
            log(format_eval_table(out["eval"]))
    summary: dict[str, Any] = {"seeds": seeds, "runs": runs,
                               "config": {k: v for k, v in cfg.to_dict().items() if k not in ("seed", "run_dir")},
                               "aggregate": aggregate(results) if results else None}
    if is_main_process():
        base.mkdir(parents=True, exist_ok=True)
        from spgg_jax.tidy import tidy

        (base / "seeds.json").write_text(json.dumps(tidy(summary), indent=1))
    if summary["aggregate"] is not None:
        log("\n" + format_seeds(summary["aggregate"]))
    else:
        log("no seed was evaluated (eval_size=0 or --no-eval): seeds.json lists the runs only")
    log(f"written: {base / 'seeds.json'}")
    return summary
