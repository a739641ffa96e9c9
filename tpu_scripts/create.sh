#!/usr/bin/env bash
# Create a Cloud TPU VM (single host or pod slice) with the right runtime for its generation.
set -euo pipefail
# shellcheck source=tpu_scripts/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

usage() {
  cat <<USAGE
Usage: $(basename "$0") --name NAME --zone ZONE --accelerator TYPE [--spot | --preemptible]
                 [--version RUNTIME] [--dry-run]

Create a TPU VM. TYPE is v4-N, v5litepod-N (alias v5e-N), v5p-N or v6e-N; the runtime version
defaults to the one for that generation:
  v4 -> tpu-ubuntu2204-base   v5e -> v2-alpha-tpuv5-lite   v5p -> v2-alpha-tpuv5   v6e -> v2-alpha-tpuv6e

Options:
  --accelerator TYPE  accelerator type (default: \$TPU_ACCELERATOR)
  --version RUNTIME   override the TPU software version
  --spot              Spot VM (cheaper, can be preempted at any time)
  --preemptible       legacy preemptible VM (v4 and older)

$COMMON_USAGE
USAGE
}

ACCELERATOR="${TPU_ACCELERATOR:-}"
VERSION=""
CAPACITY=""
while [[ $# -gt 0 ]]; do
  case "$1" in
    --accelerator | --accelerator-type) need_value "$@"; ACCELERATOR="$2"; shift 2 ;;
    --version | --runtime-version) need_value "$@"; VERSION="$2"; shift 2 ;;
    --spot | --preemptible)
      [[ -z "$CAPACITY" || "$CAPACITY" == "$1" ]] || die "--spot and --preemptible are exclusive"
      CAPACITY="$1"; shift ;;
    *)
      parse_common_arg "$@"
      ((COMMON_SHIFT > 0)) || die "unknown argument '$1' (see --help)"
      shift "$COMMON_SHIFT" ;;
  esac
done

require_name_zone
[[ -n "$ACCELERATOR" ]] || die "--accelerator is required (e.g. v4-8, v5e-16, v5p-8, v6e-8)"
ACCELERATOR="$(normalize_accelerator "$ACCELERATOR")"
VERSION="${VERSION:-$(runtime_version_for "$ACCELERATOR")}"

args=(create "$TPU_NAME" "--zone=$TPU_ZONE" "--accelerator-type=$ACCELERATOR" "--version=$VERSION")
if [[ -n "$CAPACITY" ]]; then
  args+=("$CAPACITY")
fi
((DRY_RUN)) || log "creating $TPU_NAME ($ACCELERATOR, $VERSION${CAPACITY:+, ${CAPACITY#--}}) in $TPU_ZONE"
tpu_vm "${args[@]}"
