#!/usr/bin/env bash
# Show (and follow) a worker's log of the current run.
set -euo pipefail
# shellcheck source=tpu_scripts/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

usage() {
  cat <<USAGE
Usage: $(basename "$0") --name NAME --zone ZONE [--run-dir DIR] [--worker N|all] [--lines N]
                 [--no-follow] [--dry-run]

Print the last lines of DIR/logs/*.log on a worker (default worker 0, the one that logs) and
follow them until interrupted.

Options:
  --run-dir DIR   run directory given to launch.sh (default: runs/tpu)
  --worker N      worker index or 'all' (default: 0)
  --lines N       lines of history (default: 100)
  --no-follow     print and exit

$COMMON_USAGE
USAGE
}

RUN_DIR="runs/tpu"
WORKER=0
LINES=100
FOLLOW=1
while [[ $# -gt 0 ]]; do
  case "$1" in
    --run-dir) need_value "$@"; RUN_DIR="$2"; shift 2 ;;
    --worker) need_value "$@"; WORKER="$2"; shift 2 ;;
    --lines) need_value "$@"; LINES="$2"; shift 2 ;;
    --no-follow) FOLLOW=0; shift ;;
    *)
      parse_common_arg "$@"
      ((COMMON_SHIFT > 0)) || die "unknown argument '$1' (see --help)"
      shift "$COMMON_SHIFT" ;;
  esac
done
require_name_zone
[[ "$WORKER" == all || "$WORKER" =~ ^[0-9]+$ ]] || die "--worker must be an index or 'all', got '$WORKER'"
[[ "$LINES" =~ ^[0-9]+$ ]] || die "--lines must be a number, got '$LINES'"

FLAG="-n $LINES"
if ((FOLLOW)); then
  FLAG+=" -F"
fi
tpu_ssh "$WORKER" "cd $(remote_dir_word) && tail $FLAG $(printf '%q' "$RUN_DIR")/logs/*.log"
