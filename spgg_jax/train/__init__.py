"""spgg_jax.train: training runs of LLM teams (config, setup, loop).

    cfg = load_config("experiments/demo.json", ["steps=10"])   # TrainConfig: one owner per field
    setup = build_setup(cfg)                                    # team, game, problems, models, learner
    Trainer(cfg).run()                                          # the loop: run dir, checkpoints, metrics

See docs/training.md and docs/design.md.
"""

from spgg_jax.train.config import TrainConfig, load_config
from spgg_jax.train.loop import RunDirError, Trainer, prepare_run_dir
from spgg_jax.train.resume import config_differences
from spgg_jax.train.setup import Setup, build_setup
from spgg_jax.train.team_spec import resolve_team

__all__ = ["TrainConfig", "config_differences", "load_config", "resolve_team", "RunDirError", "Trainer",
           "prepare_run_dir", "Setup", "build_setup"]
