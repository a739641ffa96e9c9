#!/usr/bin/env bash
# Stop the job started by launch.sh on every worker (signals its process group).
set -euo pipefail
# shellcheck source=tpu_scripts/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

usage() {
  cat <<USAGE
Usage: $(basename "$0") --name NAME --zone ZONE [--run-dir DIR] [--signal SIG] [--dry-run]

Send SIG to the process group recorded in DIR/logs/<hostname>.pid on every worker and remove the
pid file.

Options:
  --run-dir DIR   run directory given to launch.sh (default: runs/tpu)
  --signal SIG    signal name (default: TERM; use KILL if the job ignores TERM)

$COMMON_USAGE
USAGE
}

RUN_DIR="runs/tpu"
SIG="TERM"
while [[ $# -gt 0 ]]; do
  case "$1" in
    --run-dir) need_value "$@"; RUN_DIR="$2"; shift 2 ;;
    --signal) need_value "$@"; SIG="$2"; shift 2 ;;
    *)
      parse_common_arg "$@"
      ((COMMON_SHIFT > 0)) || die "unknown argument '$1' (see --help)"
      shift "$COMMON_SHIFT" ;;
  esac
done
require_name_zone
[[ "$SIG" =~ ^[A-Z0-9]+$ ]] || die "--signal must be a signal name like TERM or KILL, got '$SIG'"

RD="$(printf '%q' "$RUN_DIR")"
# shellcheck disable=SC2016  # expanded by the remote shell
REMOTE='cd '"$(remote_dir_word)"' || exit 0; h=$(hostname); pidf='"$RD"'/logs/$h.pid; if [ -f "$pidf" ]; then pid=$(cat "$pidf"); if kill -'"$SIG"' -- "-$pid" 2>/dev/null; then echo "$h: sent '"$SIG"' to $pid"; else echo "$h: $pid not running"; fi; rm -f "$pidf"; else echo "$h: no job"; fi'

((DRY_RUN)) || log "stopping the job in $RUN_DIR on all workers of $TPU_NAME"
tpu_ssh all "$REMOTE"
