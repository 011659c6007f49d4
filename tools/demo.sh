#!/usr/bin/env bash
# Installs, builds and runs the demo: a small character-level language model trained on Jane
# Austen (data/austen.txt), through fabric-train when it exists, else the demo-train example.
#   usage: tools/demo.sh [args for the training program...]
#   env: as tools/build.sh (FABRIC_BUILD_DIR, FABRIC_CUDA, ...)
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build_dir=${FABRIC_BUILD_DIR:-build}
case $build_dir in /*) ;; *) build_dir=$root/$build_dir ;; esac

"$root/tools/install-deps.sh"
"$root/tools/build.sh"
if [ ! -s "$root/data/austen.txt" ]; then
  echo "demo.sh: data/austen.txt is missing (tools/install-deps.sh could not fetch r-cran-janeaustenr)" >&2
  exit 1
fi

cd "$root"  # the programs find data/, runs/ and checkpoints/ relative to the repository root
for exe in "$build_dir/fabric-train" "$build_dir/tools/fabric-train" "$build_dir/tools/demo-train"; do
  if [ -x "$exe" ]; then
    echo "demo.sh: running ${exe#"$root"/} $*" >&2
    exec "$exe" "$@"
  fi
done
echo "demo.sh: neither fabric-train nor demo-train was built in $build_dir" >&2
exit 1
