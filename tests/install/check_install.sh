#!/usr/bin/env bash
# Installs the build into a temporary prefix and uses it the way README says an embedding app and
# a user do: `find_package(fabric CONFIG)` + `fabric::runtime` in a fresh CMake project that trains
# a tiny model, and the installed fabric-train started from the prefix with no LD_LIBRARY_PATH.
# Usage: check_install.sh BUILD_DIR CONSUMER_SOURCE_DIR
set -euo pipefail
build=$1
consumer=$2
prefix=$(mktemp -d /tmp/fabric-install-check.XXXXXX)
trap 'rm -rf "$prefix"' EXIT
unset LD_LIBRARY_PATH

cmake --install "$build" --prefix "$prefix" >"$prefix/install.log"
"$prefix/bin/fabric-train" --help >/dev/null || {
  echo "FAIL: the installed fabric-train does not start from $prefix/bin"; ldd "$prefix/bin/fabric-train" | grep -i "not found"; exit 1; }

# The bundled configs, and the default run's corpus when the build extracted it, sit where the
# installed fabric-train looks for them (<prefix>/share/fabric).
source_root=$(cd "$consumer/../../.." && pwd)
[ -f "$prefix/share/fabric/configs/gpt-austen.yaml" ] || { echo "FAIL: no share/fabric/configs in $prefix"; exit 1; }
if [ -s "$source_root/data/austen.txt" ] && ! cmp -s "$source_root/data/austen.txt" "$prefix/share/fabric/data/austen.txt"; then
  echo "FAIL: data/austen.txt was not installed as share/fabric/data/austen.txt"; exit 1
fi

cmake -S "$consumer" -B "$prefix/consumer-build" -DCMAKE_PREFIX_PATH="$prefix" -DCMAKE_BUILD_TYPE=Release \
  >"$prefix/configure.log" 2>&1 || { cat "$prefix/configure.log"; echo "FAIL: find_package(fabric) / fabric::runtime"; exit 1; }
cmake --build "$prefix/consumer-build" -j2 >"$prefix/build.log" 2>&1 || { tail -40 "$prefix/build.log"; echo "FAIL: building against the installed headers"; exit 1; }
"$prefix/consumer-build/consumer"
echo "installed package: OK"
