#!/usr/bin/env bash
# The one command that checks a checkout: installs the dependencies, builds, and runs every test.
#   usage: tools/test.sh [extra ctest args...]   (e.g. -L tensor, -R Gemm, --repeat until-fail:3)
#   env: as tools/build.sh (FABRIC_BUILD_DIR, FABRIC_CUDA, ...); FABRIC_TEST_JOBS (default 2)
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build_dir=${FABRIC_BUILD_DIR:-build}
case $build_dir in /*) ;; *) build_dir=$root/$build_dir ;; esac

"$root/tools/install-deps.sh"
"$root/tools/build.sh"
# --no-tests=error: a build that registers no tests is a broken build, not a pass.
ctest --test-dir "$build_dir" --output-on-failure --no-tests=error -j"${FABRIC_TEST_JOBS:-2}" "$@"
