#!/usr/bin/env bash
# Delete a TPU VM (no confirmation prompt).
set -euo pipefail
# shellcheck source=tpu_scripts/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

usage() {
  cat <<USAGE
Usage: $(basename "$0") --name NAME --zone ZONE [--async] [--dry-run]

Delete the TPU VM NAME without asking for confirmation.

Options:
  --async   return before the deletion finishes

$COMMON_USAGE
USAGE
}

ASYNC=0
while [[ $# -gt 0 ]]; do
  case "$1" in
    --async) ASYNC=1; shift ;;
    *)
      parse_common_arg "$@"
      ((COMMON_SHIFT > 0)) || die "unknown argument '$1' (see --help)"
      shift "$COMMON_SHIFT" ;;
  esac
done

require_name_zone
args=(delete "$TPU_NAME" "--zone=$TPU_ZONE" --quiet)
if ((ASYNC)); then
  args+=(--async)
fi
((DRY_RUN)) || log "deleting $TPU_NAME in $TPU_ZONE"
tpu_vm "${args[@]}"
