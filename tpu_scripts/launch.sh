#!/usr/bin/env bash
# Start the same command on every worker of a TPU VM, detached (nohup), logging to the run dir.
set -euo pipefail
# shellcheck source=tpu_scripts/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

usage() {
  cat <<USAGE
Usage: $(basename "$0") --name NAME --zone ZONE [--run-dir DIR] [--env KEY=VALUE]... [--no-distributed]
                 [--dry-run] -- COMMAND [ARGS...]

Run COMMAND (from the project directory, e.g. '.venv/bin/spgg train ...') on ALL workers at once
(a pod slice hangs if any worker is missing). Each worker writes DIR/logs/<hostname>.log and
DIR/logs/<hostname>.pid (a process-group id that stop.sh kills). The job gets SPGG_RUN_DIR=DIR and,
unless --no-distributed, SPGG_DISTRIBUTED=1 so that spgg_jax.parallel.initialize_distributed()
calls jax.distributed.initialize() with JAX's TPU auto-detection (no coordinator flags needed).
Keep run directories on a shared mount (a gcsfuse bucket) so a relaunch on a recreated VM can resume.

Options:
  --run-dir DIR      run directory on the workers, relative to the project dir (default: runs/tpu)
  --env KEY=VALUE    extra environment variable for the job (repeatable)
  --no-distributed   do not set SPGG_DISTRIBUTED=1

$COMMON_USAGE
USAGE
}

RUN_DIR="runs/tpu"
DISTRIBUTED=1
ENVS=()
CMD=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --run-dir) need_value "$@"; RUN_DIR="$2"; shift 2 ;;
    --env)
      need_value "$@"
      [[ "$2" =~ ^[A-Za-z_][A-Za-z0-9_]*= ]] || die "--env needs KEY=VALUE, got '$2'"
      ENVS+=("$2"); shift 2 ;;
    --no-distributed) DISTRIBUTED=0; shift ;;
    --) shift; CMD=("$@"); break ;;
    *)
      parse_common_arg "$@"
      ((COMMON_SHIFT > 0)) || die "unknown argument '$1' (put the command after --)"
      shift "$COMMON_SHIFT" ;;
  esac
done
require_name_zone
((${#CMD[@]} > 0)) || die "no command given: put it after --, e.g. -- .venv/bin/spgg train ..."

DIR="$(remote_dir_word)"
RD="$(printf '%q' "$RUN_DIR")"
JOB_ENV=("SPGG_RUN_DIR=$RUN_DIR")
if ((DISTRIBUTED)); then
  JOB_ENV+=("SPGG_DISTRIBUTED=1")
fi
JOB_ENV+=("${ENVS[@]}")
JOB="env $(quote_cmd "${JOB_ENV[@]}") $(quote_cmd "${CMD[@]}")"

# shellcheck disable=SC2016  # expanded by the remote shell
REMOTE='set -e; cd '"$DIR"'; mkdir -p '"$RD"'/logs; h=$(hostname); pidf='"$RD"'/logs/$h.pid; if [ -f "$pidf" ] && kill -0 "$(cat "$pidf")" 2>/dev/null; then echo "$h: a job is already running (pid $(cat "$pidf")); stop it first" >&2; exit 1; fi; nohup setsid '"$JOB"' > '"$RD"'/logs/$h.log 2>&1 < /dev/null & echo $! > "$pidf"; echo "$h: started pid $(cat "$pidf"), log '"$RD"'/logs/$h.log"'

((DRY_RUN)) || log "launching on all workers of $TPU_NAME: ${CMD[*]}"
tpu_ssh all "$REMOTE"
