#!/usr/bin/env bash
# Put the project on every worker of a TPU VM and install it there (make install + JAX for TPU).
set -euo pipefail
# shellcheck source=tpu_scripts/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

usage() {
  cat <<USAGE
Usage: $(basename "$0") --name NAME --zone ZONE [--repo URL [--ref REF]] [--no-tpu-jax] [--dry-run]

Copy this checkout (default) or clone a git repository onto every worker (--worker=all), then run
'make install' there and install JAX's TPU backend into the project's venv.

Options:
  --repo URL     clone URL on the workers instead of copying the local checkout
  --ref REF      branch, tag or commit to check out with --repo (default: main)
  --no-tpu-jax   skip 'pip install jax[tpu]' (e.g. for a CPU-only smoke test)

$COMMON_USAGE
USAGE
}

REPO=""
REF="main"
TPU_JAX=1
while [[ $# -gt 0 ]]; do
  case "$1" in
    --repo) need_value "$@"; REPO="$2"; shift 2 ;;
    --ref) need_value "$@"; REF="$2"; shift 2 ;;
    --no-tpu-jax) TPU_JAX=0; shift ;;
    *)
      parse_common_arg "$@"
      ((COMMON_SHIFT > 0)) || die "unknown argument '$1' (see --help)"
      shift "$COMMON_SHIFT" ;;
  esac
done
require_name_zone

DIR="$(remote_dir_word)"
PROJECT_ROOT="$(cd "$TPU_SCRIPTS_DIR/.." && pwd)"
REMOTE_TARBALL="spgg_jax-src.tgz"

# Prerequisites missing on some TPU images: make and python3-venv.
# shellcheck disable=SC2016  # expanded by the remote shell
PREREQS='pkgs=""; command -v make >/dev/null || pkgs="$pkgs make"; python3 -c "import ensurepip" 2>/dev/null || pkgs="$pkgs python3-venv"; if [ -n "$pkgs" ]; then sudo apt-get update -qq && sudo apt-get install -y -qq $pkgs; fi'

if [[ -n "$REPO" ]]; then
  FETCH="if [ -d $DIR/.git ]; then git -C $DIR fetch --all --tags; else git clone $(printf '%q' "$REPO") $DIR; fi && git -C $DIR checkout $(printf '%q' "$REF") && (git -C $DIR pull --ff-only || true)"
else
  TARBALL="${TMPDIR:-/tmp}/spgg_jax-src-$TPU_NAME.tgz"
  ((DRY_RUN)) || log "packing $PROJECT_ROOT into $TARBALL"
  run tar -czf "$TARBALL" --exclude=.git --exclude=.venv --exclude=runs --exclude=__pycache__ \
    --exclude=.pytest_cache --exclude='*.egg-info' -C "$PROJECT_ROOT" .
  tpu_vm scp "$TARBALL" "$TPU_NAME:$REMOTE_TARBALL" "--zone=$TPU_ZONE" --worker=all
  FETCH="mkdir -p $DIR && tar -xzf $REMOTE_TARBALL -C $DIR && rm -f $REMOTE_TARBALL"
fi

INSTALL="cd $DIR && make install PYTHON=python3"
if ((TPU_JAX)); then
  INSTALL+=" && .venv/bin/python -m pip install --quiet -c requirements/constraints.txt 'jax[tpu]'"
fi
INSTALL+=" && .venv/bin/python -c 'import spgg_jax, jax; print(\"spgg_jax ok on\", jax.devices()[0].platform)'"

((DRY_RUN)) || log "installing on all workers of $TPU_NAME"
tpu_ssh all "set -e; $PREREQS; $FETCH; $INSTALL"
