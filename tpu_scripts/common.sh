# shellcheck shell=bash
# Shared helpers for the tpu_scripts/*.sh commands. Sourced by them; not meant to be run.
#
# Common options (every script):  --name NAME  --zone ZONE  [--project PROJECT]  [--dry-run]  [--help]
# Defaults come from the environment: TPU_NAME, TPU_ZONE, GCP_PROJECT.
# --dry-run prints every gcloud command (shell-quoted, one per line) instead of running it.
# Variables set here are used by the scripts that source this file:
# shellcheck disable=SC2034

TPU_NAME="${TPU_NAME:-}"
TPU_ZONE="${TPU_ZONE:-}"
GCP_PROJECT="${GCP_PROJECT:-}"
DRY_RUN=0
# Where the project lives on every TPU worker (relative to the remote $HOME unless absolute).
REMOTE_DIR="${SPGG_REMOTE_DIR:-spgg_jax}"
GCLOUD="${GCLOUD:-gcloud}"
TPU_SCRIPTS_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
COMMON_SHIFT=0

die() {
  echo "$(basename "$0"): error: $*" >&2
  exit 2
}

log() {
  echo "[$(date -u +%Y-%m-%dT%H:%M:%SZ)] $(basename "$0"): $*" >&2
}

# Print a command with shell quoting, so the printed line can be pasted back into a shell:
# plain words as they are, anything else in single quotes (a ' inside becomes '\'').
quote_cmd() {
  local out="" arg q="'"
  for arg in "$@"; do
    if [[ "$arg" =~ ^[A-Za-z0-9_./:=,@%+-]+$ ]]; then
      out+="$arg "
    else
      out+="$q${arg//$q/$q\\$q$q}$q "
    fi
  done
  printf '%s\n' "${out% }"
}

# Run a command, or print it under --dry-run.
run() {
  if ((DRY_RUN)); then
    quote_cmd "$@"
  else
    "$@"
  fi
}

# need_value OPTION [VALUE...]: fail unless OPTION is followed by a non-empty value.
need_value() {
  if [[ $# -lt 2 || -z "$2" || "$2" == --* ]]; then
    die "option $1 needs a value"
  fi
}

# parse_common_arg "$@": consume one common option from the front of the arguments.
# Sets COMMON_SHIFT to the number of arguments consumed (0 when $1 is not a common option).
# The calling script must define usage().
parse_common_arg() {
  COMMON_SHIFT=0
  case "$1" in
    --name) need_value "$@"; TPU_NAME="$2"; COMMON_SHIFT=2 ;;
    --name=*) TPU_NAME="${1#*=}"; COMMON_SHIFT=1 ;;
    --zone) need_value "$@"; TPU_ZONE="$2"; COMMON_SHIFT=2 ;;
    --zone=*) TPU_ZONE="${1#*=}"; COMMON_SHIFT=1 ;;
    --project) need_value "$@"; GCP_PROJECT="$2"; COMMON_SHIFT=2 ;;
    --project=*) GCP_PROJECT="${1#*=}"; COMMON_SHIFT=1 ;;
    --remote-dir) need_value "$@"; REMOTE_DIR="$2"; COMMON_SHIFT=2 ;;
    --remote-dir=*) REMOTE_DIR="${1#*=}"; COMMON_SHIFT=1 ;;
    --dry-run) DRY_RUN=1; COMMON_SHIFT=1 ;;
    -h | --help) usage; exit 0 ;;
    *) COMMON_SHIFT=0 ;;
  esac
}

COMMON_USAGE="Common options:
  --name NAME        TPU VM name (default: \$TPU_NAME)
  --zone ZONE        zone, e.g. us-central2-b (default: \$TPU_ZONE)
  --project PROJECT  GCP project (default: \$GCP_PROJECT, else gcloud's configured project)
  --remote-dir DIR   project directory on the workers (default: ~/spgg_jax)
  --dry-run          print the gcloud commands instead of running them
  -h, --help         show this help"

require_name_zone() {
  [[ -n "$TPU_NAME" ]] || die "--name is required (or set TPU_NAME)"
  [[ -n "$TPU_ZONE" ]] || die "--zone is required (or set TPU_ZONE)"
  [[ "$TPU_NAME" =~ ^[a-z]([-a-z0-9]*[a-z0-9])?$ ]] ||
    die "bad TPU name '$TPU_NAME': lowercase letters, digits and '-', starting with a letter"
}

# The "gcloud compute tpus tpu-vm" prefix, with --project when one is given.
tpu_vm() {
  local -a cmd=("$GCLOUD" compute tpus tpu-vm "$@")
  if [[ -n "$GCP_PROJECT" ]]; then
    cmd+=("--project=$GCP_PROJECT")
  fi
  run "${cmd[@]}"
}

# tpu_ssh WORKER COMMAND: run COMMAND (one string, executed by the remote shell) on WORKER
# ("all" or an index).
tpu_ssh() {
  tpu_vm ssh "$TPU_NAME" "--zone=$TPU_ZONE" "--worker=$1" "--command=$2"
}

# The project directory on the workers, as a shell word for remote commands.
remote_dir_word() {
  if [[ "$REMOTE_DIR" == /* ]]; then
    printf '%q' "$REMOTE_DIR"
  else
    # shellcheck disable=SC2016  # $HOME is expanded by the remote shell
    printf '"$HOME"/%q' "$REMOTE_DIR"
  fi
}

# normalize_accelerator TYPE: print the gcloud accelerator type (v5e-N is an alias of v5litepod-N).
normalize_accelerator() {
  local acc="$1"
  case "$acc" in
    v5e-*) acc="v5litepod-${acc#v5e-}" ;;
  esac
  [[ "$acc" =~ ^(v4|v5litepod|v5p|v6e)-[0-9]+$ ]] ||
    die "unsupported accelerator type '$1': use v4-N, v5litepod-N (or v5e-N), v5p-N or v6e-N"
  printf '%s\n' "$acc"
}

# runtime_version_for TYPE: the TPU software (runtime) version for JAX on that generation.
runtime_version_for() {
  case "$1" in
    v4-*) echo "tpu-ubuntu2204-base" ;;
    v5litepod-*) echo "v2-alpha-tpuv5-lite" ;;
    v5p-*) echo "v2-alpha-tpuv5" ;;
    v6e-*) echo "v2-alpha-tpuv6e" ;;
    *) die "no runtime version known for accelerator '$1'" ;;
  esac
}
