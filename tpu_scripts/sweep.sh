#!/usr/bin/env bash
# Launch a parameter sweep (reward parameters, seeds, models) described by a JSON sweep file.
set -euo pipefail
# shellcheck source=tpu_scripts/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

usage() {
  cat <<USAGE
Usage: $(basename "$0") --sweep FILE [--mode jobs|vmap] [--placement sequential|slices]
                 [--run-root DIR] [--log-dir DIR] [--config FILE] [--resume] [--local]
                 [--create TYPE [--spot]] [--env KEY=VALUE]... [--spgg CMD] [--plugin FILE]...
                 [--check-files] [--dry-run]
                 --name NAME --zone ZONE

Expand a sweep file (JSON: {"base": {...}, "grid": {"KEY": [values], ...}} or {"base": {...},
"list": [{...}, ...]}, keys are 'spgg train' config keys such as reward_params.gamma, seed, model;
see spgg_jax.train.sweeps.py) and launch it through launch.sh.

Modes:
  --mode jobs   (default) one 'spgg train KEY=VALUE... --run-dir RUN_ROOT/<point>' per point:
                --placement sequential (default): all points one after another in ONE job on the
                  slice NAME (logs in LOG_DIR/logs/<host>.log);
                --placement slices: point i runs on its own slice NAME-i (LOG_DIR/<point>/logs);
                  with --create TYPE each slice is created (create.sh) and set up (setup.sh) first.
  --mode vmap   a game-level grid (n_agents, reward_params.*) solved by ONE 'spgg game sweep'
                call (vmapped over the grid), written to RUN_ROOT/game_sweep.

Options:
  --sweep FILE        the sweep file (required)
  --run-root DIR      parent of the per-point run dirs; a shared mount (gcsfuse bucket) for preemptible slices
                      (default: runs/sweeps/<sweep name>)
  --log-dir DIR       launch.sh run dir for logs/pids on the workers (default: runs/sweeps/<name>)
  --config FILE       a training config JSON (on the workers) given to every job as --config
  --resume            pass --resume to every training job (re-running a sweep continues it)
  --local             run the commands here, one after another, instead of on TPU VMs
  --create TYPE       with --placement slices: create + set up each slice (e.g. v5e-8)
  --spot              with --create: Spot VMs
  --env KEY=VALUE     extra environment for the jobs (repeatable; passed to launch.sh)
  --spgg CMD          the spgg command on the workers, split into words like a shell would
                      (default: .venv/bin/spgg)
  --plugin FILE       a plugin (reward variants, scorers; a file path relative to the project root, or a
                      module): loaded by the planner and passed to every job (repeatable; SPGG_PLUGINS
                      here is passed on the same way)
  --check-files       also check model paths and read task data here (default: the planner checks every
                      point's reward, parameters, scorer, team and task names, as 'spgg train --dry-run')

$COMMON_USAGE
USAGE
}

SWEEP=""
MODE="jobs"
PLACEMENT="sequential"
RUN_ROOT=""
LOG_DIR=""
CONFIG=""
RESUME=0
LOCAL=0
CREATE=""
SPOT=0
SPGG=".venv/bin/spgg"
ENVS=()
PLUGINS=()
CHECK_FILES=0
while [[ $# -gt 0 ]]; do
  case "$1" in
    --sweep) need_value "$@"; SWEEP="$2"; shift 2 ;;
    --mode) need_value "$@"; MODE="$2"; shift 2 ;;
    --placement) need_value "$@"; PLACEMENT="$2"; shift 2 ;;
    --run-root) need_value "$@"; RUN_ROOT="$2"; shift 2 ;;
    --log-dir) need_value "$@"; LOG_DIR="$2"; shift 2 ;;
    --config) need_value "$@"; CONFIG="$2"; shift 2 ;;
    --resume) RESUME=1; shift ;;
    --local) LOCAL=1; shift ;;
    --create) need_value "$@"; CREATE="$2"; shift 2 ;;
    --spot) SPOT=1; shift ;;
    --spgg) need_value "$@"; SPGG="$2"; shift 2 ;;
    --plugin) need_value "$@"; PLUGINS+=(--plugin "$2"); shift 2 ;;
    --check-files) CHECK_FILES=1; shift ;;
    --env)
      need_value "$@"
      [[ "$2" =~ ^[A-Za-z_][A-Za-z0-9_]*= ]] || die "--env needs KEY=VALUE, got '$2'"
      ENVS+=(--env "$2"); shift 2 ;;
    *)
      parse_common_arg "$@"
      ((COMMON_SHIFT > 0)) || die "unknown argument '$1' (see --help)"
      shift "$COMMON_SHIFT" ;;
  esac
done

[[ -n "$SWEEP" ]] || die "--sweep FILE is required"
[[ -f "$SWEEP" ]] || die "sweep file not found: $SWEEP"
[[ "$MODE" == jobs || "$MODE" == vmap ]] || die "--mode must be jobs or vmap, got '$MODE'"
[[ "$PLACEMENT" == sequential || "$PLACEMENT" == slices ]] ||
  die "--placement must be sequential or slices, got '$PLACEMENT'"
if [[ -n "$CREATE" && "$PLACEMENT" != slices ]]; then
  die "--create needs --placement slices (use create.sh/setup.sh for a single slice)"
fi
if ((SPOT)) && [[ -z "$CREATE" ]]; then
  die "--spot needs --create TYPE"
fi
if [[ "$MODE" == vmap && "$PLACEMENT" == slices ]]; then
  die "--mode vmap is one job; --placement slices applies to --mode jobs"
fi
if ((LOCAL)); then
  [[ -z "$CREATE" && "$PLACEMENT" == sequential ]] || die "--local runs here: no --create or --placement slices"
else
  require_name_zone
fi

PROJECT_ROOT="$(cd "$TPU_SCRIPTS_DIR/.." && pwd)"
PYTHON="${SPGG_PYTHON:-}"
if [[ -z "$PYTHON" ]]; then
  if [[ -x "$PROJECT_ROOT/.venv/bin/python" ]]; then
    PYTHON="$PROJECT_ROOT/.venv/bin/python"
  else
    PYTHON="python3"
  fi
fi

# The plan: NUL-separated fields: the sweep's name, then per job NAME, RUN_DIR, ARGC, ARGV...
# (spgg_jax.train.sweeps.py).
plan_args=(--mode "$MODE" --spgg "$SPGG" --format nul)
[[ -z "$RUN_ROOT" ]] || plan_args+=(--run-root "$RUN_ROOT")
[[ -z "$CONFIG" ]] || plan_args+=(--config "$CONFIG")
((RESUME == 0)) || plan_args+=(--resume)
((CHECK_FILES == 0)) || plan_args+=(--check-files)
((${#PLUGINS[@]} == 0)) || plan_args+=("${PLUGINS[@]}")
PLAN_FILE="$(mktemp)"
trap 'rm -f "$PLAN_FILE"' EXIT
PYTHONPATH="$PROJECT_ROOT${PYTHONPATH:+:$PYTHONPATH}" \
  "$PYTHON" -m spgg_jax.train.sweeps "${plan_args[@]}" "$SWEEP" > "$PLAN_FILE" ||
  exit 2
mapfile -d '' -t PLAN < "$PLAN_FILE"
((${#PLAN[@]} > 0)) || die "the sweep planner printed nothing"
LOG_DIR="${LOG_DIR:-runs/sweeps/${PLAN[0]}}"

# Split the plan into parallel arrays; JOB_ARGV_<i> is not possible in bash, so keep offsets.
JOB_NAMES=()
JOB_DIRS=()
JOB_START=()
JOB_LEN=()
i=1
while ((i < ${#PLAN[@]})); do
  JOB_NAMES+=("${PLAN[i]}")
  JOB_DIRS+=("${PLAN[i + 1]}")
  JOB_LEN+=("${PLAN[i + 2]}")
  JOB_START+=($((i + 3)))
  i=$((i + 3 + PLAN[i + 2]))
done
N_JOBS=${#JOB_NAMES[@]}
((N_JOBS > 0)) || die "the sweep has no points"

job_argv() { # job_argv INDEX: set ARGV to that job's command
  ARGV=("${PLAN[@]:${JOB_START[$1]}:${JOB_LEN[$1]}}")
}

common_tpu_args() { # common_tpu_args SLICE: --name/--zone/--project/--remote-dir for a script
  COMMON_ARGS=(--name "$1" --zone "$TPU_ZONE")
  [[ -z "$GCP_PROJECT" ]] || COMMON_ARGS+=(--project "$GCP_PROJECT")
  COMMON_ARGS+=(--remote-dir "$REMOTE_DIR")
}

header() {
  if ((DRY_RUN)); then
    echo "# $*"
  else
    log "$*"
  fi
}

header "sweep $SWEEP: mode $MODE, $N_JOBS job(s)"

if ((LOCAL)); then
  rc=0
  for ((j = 0; j < N_JOBS; j++)); do
    job_argv "$j"
    header "${JOB_NAMES[j]} -> ${JOB_DIRS[j]}"
    run "${ARGV[@]}" || rc=1
  done
  exit "$rc"
fi

LAUNCH_EXTRA=()
if [[ "$MODE" == vmap ]]; then
  LAUNCH_EXTRA+=(--no-distributed) # a single-host program: every worker solves the same grid
fi

if [[ "$PLACEMENT" == slices ]]; then
  for ((j = 0; j < N_JOBS; j++)); do
    job_argv "$j"
    slice="$TPU_NAME-$j"
    common_tpu_args "$slice"
    header "${JOB_NAMES[j]} on $slice -> ${JOB_DIRS[j]}"
    if [[ -n "$CREATE" ]]; then
      create_args=(--accelerator "$CREATE")
      ((SPOT == 0)) || create_args+=(--spot)
      run "$TPU_SCRIPTS_DIR/create.sh" "${COMMON_ARGS[@]}" "${create_args[@]}"
      run "$TPU_SCRIPTS_DIR/setup.sh" "${COMMON_ARGS[@]}"
    fi
    run "$TPU_SCRIPTS_DIR/launch.sh" "${COMMON_ARGS[@]}" --run-dir "$LOG_DIR/${JOB_NAMES[j]}" \
      "${ENVS[@]}" "${LAUNCH_EXTRA[@]}" -- "${ARGV[@]}"
  done
  exit 0
fi

# Sequential on one slice: one launch whose command runs every point in turn (a failed point is
# reported and the next one starts; the job's exit status is 1 if any failed).
common_tpu_args "$TPU_NAME"
if ((N_JOBS == 1)); then
  job_argv 0
  header "${JOB_NAMES[0]} on $TPU_NAME -> ${JOB_DIRS[0]}"
  run "$TPU_SCRIPTS_DIR/launch.sh" "${COMMON_ARGS[@]}" --run-dir "$LOG_DIR" "${ENVS[@]}" \
    "${LAUNCH_EXTRA[@]}" -- "${ARGV[@]}"
  exit 0
fi
SCRIPT="rc=0"
for ((j = 0; j < N_JOBS; j++)); do
  job_argv "$j"
  header "${JOB_NAMES[j]} on $TPU_NAME (sequential) -> ${JOB_DIRS[j]}"
  SCRIPT+="; echo $(quote_cmd "== sweep point $((j + 1))/$N_JOBS: ${JOB_NAMES[j]}"); $(quote_cmd "${ARGV[@]}") || rc=1"
done
# shellcheck disable=SC2016  # $rc is expanded by the job's shell
SCRIPT+='; exit $rc'
run "$TPU_SCRIPTS_DIR/launch.sh" "${COMMON_ARGS[@]}" --run-dir "$LOG_DIR" "${ENVS[@]}" \
  "${LAUNCH_EXTRA[@]}" -- bash -c "$SCRIPT"
