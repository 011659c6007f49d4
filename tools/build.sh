#!/usr/bin/env bash
# Configures and builds fabric (Release) and, once extract-austen is built, turns the unpacked
# r-cran-janeaustenr package into data/austen.txt if that is missing. Called by test.sh and demo.sh.
#   usage: tools/build.sh [extra cmake configure args...]
#   env: FABRIC_BUILD_DIR (default build/), FABRIC_CUDA=AUTO|ON|OFF (default AUTO: CUDA is built
#        where /usr/local/cuda/bin/nvcc exists), FABRIC_BUILD_TYPE (default Release),
#        FABRIC_JOBS (default nproc)
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build_dir=${FABRIC_BUILD_DIR:-build}
case $build_dir in /*) ;; *) build_dir=$root/$build_dir ;; esac

cmake -S "$root" -B "$build_dir" -DCMAKE_BUILD_TYPE="${FABRIC_BUILD_TYPE:-Release}" \
  -DFABRIC_CUDA="${FABRIC_CUDA:-AUTO}" "$@"
cmake --build "$build_dir" -j"${FABRIC_JOBS:-$(nproc)}"

corpus=$root/data/austen.txt
if [ ! -s "$corpus" ] && [ -d "$root/data/janeaustenr" ]; then
  extract=""
  for exe in "$build_dir/tools/extract-austen" "$build_dir/extract-austen"; do
    [ -x "$exe" ] && { extract=$exe; break; }
  done
  if [ -z "$extract" ]; then
    echo "build.sh: extract-austen was not built; cannot make $corpus" >&2
    exit 1
  fi
  "$extract" "$root/data/janeaustenr" "$corpus"
  # The size r-cran-janeaustenr 1.0.0-1 (Debian 12) gives; another package version may differ.
  size=$(wc -c <"$corpus")
  [ "$size" = 4025029 ] || echo "build.sh: note: $corpus has $size bytes, not the 4025029 expected" >&2
  md5sum "$corpus"
fi
