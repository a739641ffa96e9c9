#!/usr/bin/env bash
# Keep a (spot / preemptible) TPU job alive: when the VM is preempted or gone, recreate it, set it
# up again and relaunch the command with --resume. Run it from a small always-on machine.
set -euo pipefail
# shellcheck source=tpu_scripts/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

usage() {
  cat <<USAGE
Usage: $(basename "$0") --name NAME --zone ZONE --accelerator TYPE [--spot | --preemptible]
                 [--run-dir DIR] [--interval SECONDS] [--max-restarts N] [--resume-flag FLAG]
                 [--repo URL [--ref REF]] [--env KEY=VALUE]... [--dry-run] -- COMMAND [ARGS...]

Every SECONDS, read the VM state with 'gcloud compute tpus tpu-vm describe'. READY (or a
transitional state) means wait. PREEMPTED, TERMINATED, STOPPED, FAILED, or a missing VM means:
delete.sh (unless missing), create.sh, setup.sh, launch.sh -- COMMAND FLAG (FLAG defaults to
--resume, so the job continues from its latest checkpoint, which must be on GCS). Gives up after N
recoveries. It does not start the first run: use launch.sh for that (or let a missing VM trigger
a recovery). --dry-run prints one iteration, as if the VM had been preempted.

Options:
  --accelerator TYPE   as for create.sh (required to recreate)
  --spot, --preemptible, --version RUNTIME   as for create.sh
  --repo URL, --ref REF, --no-tpu-jax        as for setup.sh
  --run-dir DIR, --env KEY=VALUE             as for launch.sh
  --interval SECONDS   time between checks (default: 300)
  --max-restarts N     recoveries before giving up (default: 20)
  --resume-flag FLAG   appended to COMMAND on relaunch (default: --resume; '' for none)

$COMMON_USAGE
USAGE
}

INTERVAL=300
MAX_RESTARTS=20
RESUME_FLAG="--resume"
CREATE_ARGS=()
SETUP_ARGS=()
LAUNCH_ARGS=()
CMD=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --accelerator | --version | --runtime-version) need_value "$@"; CREATE_ARGS+=("$1" "$2"); shift 2 ;;
    --spot | --preemptible) CREATE_ARGS+=("$1"); shift ;;
    --repo | --ref) need_value "$@"; SETUP_ARGS+=("$1" "$2"); shift 2 ;;
    --no-tpu-jax) SETUP_ARGS+=("$1"); shift ;;
    --run-dir | --env) need_value "$@"; LAUNCH_ARGS+=("$1" "$2"); shift 2 ;;
    --no-distributed) LAUNCH_ARGS+=("$1"); shift ;;
    --interval) need_value "$@"; INTERVAL="$2"; shift 2 ;;
    --max-restarts) need_value "$@"; MAX_RESTARTS="$2"; shift 2 ;;
    --resume-flag) [[ $# -ge 2 ]] || die "option $1 needs a value"; RESUME_FLAG="$2"; shift 2 ;;
    --) shift; CMD=("$@"); break ;;
    *)
      parse_common_arg "$@"
      ((COMMON_SHIFT > 0)) || die "unknown argument '$1' (put the command after --)"
      shift "$COMMON_SHIFT" ;;
  esac
done
require_name_zone
((${#CMD[@]} > 0)) || die "no command given: put it after --"
[[ " ${CREATE_ARGS[*]} " == *" --accelerator "* ]] || die "--accelerator is required to recreate the VM"
[[ "$INTERVAL" =~ ^[0-9]+$ ]] || die "--interval must be a number of seconds, got '$INTERVAL'"
[[ "$MAX_RESTARTS" =~ ^[0-9]+$ ]] || die "--max-restarts must be a number, got '$MAX_RESTARTS'"

COMMON=(--name "$TPU_NAME" --zone "$TPU_ZONE" --remote-dir "$REMOTE_DIR")
if [[ -n "$GCP_PROJECT" ]]; then
  COMMON+=(--project "$GCP_PROJECT")
fi
if ((DRY_RUN)); then
  COMMON+=(--dry-run)
fi
RELAUNCH=("${CMD[@]}")
if [[ -n "$RESUME_FLAG" ]]; then
  RELAUNCH+=("$RESUME_FLAG")
fi

# Print the VM state (READY, PREEMPTED, ...) or MISSING when describe fails.
tpu_state() {
  local -a cmd=("$GCLOUD" compute tpus tpu-vm describe "$TPU_NAME" "--zone=$TPU_ZONE" "--format=value(state)")
  if [[ -n "$GCP_PROJECT" ]]; then
    cmd+=("--project=$GCP_PROJECT")
  fi
  if ((DRY_RUN)); then
    quote_cmd "${cmd[@]}"
    return
  fi
  "${cmd[@]}" 2>/dev/null || echo "MISSING"
}

# Delete (best effort), recreate, set up and relaunch; returns 1 at the first failing step.
# (Explicit "|| return 1": set -e does not apply inside a function called from an if.)
recover() {
  local state="$1"
  if [[ "$state" != MISSING ]]; then
    "$TPU_SCRIPTS_DIR/delete.sh" "${COMMON[@]}" || log "delete failed (continuing)"
  fi
  "$TPU_SCRIPTS_DIR/create.sh" "${COMMON[@]}" "${CREATE_ARGS[@]}" || return 1
  "$TPU_SCRIPTS_DIR/setup.sh" "${COMMON[@]}" "${SETUP_ARGS[@]}" || return 1
  "$TPU_SCRIPTS_DIR/launch.sh" "${COMMON[@]}" "${LAUNCH_ARGS[@]}" -- "${RELAUNCH[@]}" || return 1
}

restarts=0
while true; do
  if ((DRY_RUN)); then
    tpu_state
    state="PREEMPTED"
  else
    state="$(tpu_state)"
    state="${state:-MISSING}"
  fi
  case "$state" in
    READY | CREATING | STARTING | RESTARTING | REPAIRING | PROVISIONING | UPDATING)
      log "$TPU_NAME is $state" ;;
    *)
      if ((restarts >= MAX_RESTARTS)); then
        die "$TPU_NAME is $state and $MAX_RESTARTS recoveries are used up; giving up"
      fi
      restarts=$((restarts + 1))
      if ((DRY_RUN)); then
        echo "# dry-run: assuming state $state; recovery $restarts of $MAX_RESTARTS:"
      else
        log "$TPU_NAME is $state: recovery $restarts of $MAX_RESTARTS"
      fi
      if ! recover "$state"; then
        log "recovery $restarts failed; retrying after ${INTERVAL}s"
      fi ;;
  esac
  if ((DRY_RUN)); then
    echo "sleep $INTERVAL"
    break
  fi
  sleep "$INTERVAL"
done
