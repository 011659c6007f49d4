#!/usr/bin/env bash
# Installs the build into a temporary prefix, moves the prefix elsewhere, and uses it the way README
# says an embedding app and a user do: `find_package(fabric CONFIG)` + `fabric::runtime` in a fresh
# CMake project (the training consumer, the embedding checks, each header README's examples include
# compiled on its own, warnings as errors; with clang++ where one is installed, every installed
# header on its own), and the installed fabric-train started from the prefix, from another
# directory, with no LD_LIBRARY_PATH. Usage: check_install.sh BUILD_DIR CONSUMER_SOURCE_DIR
set -euo pipefail
build=$1
consumer=$2
work=$(mktemp -d /tmp/fabric-install-check.XXXXXX)
trap 'rm -rf "$work"' EXIT
unset LD_LIBRARY_PATH FABRIC_HOME
source_root=$(cd "$consumer/../../.." && pwd)
fail() { echo "FAIL: $*"; exit 1; }

# Installed in one place, used from another: the package, the tools and their RPATH must not
# depend on where the prefix was installed.
cmake --install "$build" --prefix "$work/installed" >"$work/install.log"
mkdir "$work/moved"
mv "$work/installed" "$work/moved/prefix"
prefix=$work/moved/prefix

"$prefix/bin/fabric-train" --help >/dev/null || {
  ldd "$prefix/bin/fabric-train" | grep -i "not found" || true; fail "the installed fabric-train does not start from $prefix/bin"; }

# The installed library searches the directories the build tree's did (the CUDA toolkit's, when the
# loader's config does not list it) beside its own: both RUNPATHs, minus $ORIGIN and empty entries.
runpath() { readelf -d "$1" | sed -n 's/.*(RUNPATH).*\[\(.*\)\]/\1/p' | tr ':' '\n' | grep -v -e '^$' -e '^\$ORIGIN' | sort -u; }
missing=$(comm -23 <(runpath "$build/libfabric_runtime.so.0") <(runpath "$prefix/lib/libfabric_runtime.so.0"))
[ -z "$missing" ] || fail "the installed libfabric_runtime's RUNPATH lacks the build tree's $missing"

# No installed header includes a library the package does not find for its users.
leaks=$(grep -rlE '^\s*#\s*include\s*[<"](dnnl|oneapi/|Eigen/|unsupported/Eigen|gloo/|yaml-cpp/|nlohmann/|cuda[_a-z]*\.h|cublas|cudnn|nccl|curand|cusparse|cub/|thrust/)' \
        "$prefix/include" || true)
[ -z "$leaks" ] || fail "installed headers include third-party headers the package does not provide: ${leaks//$prefix\/include\//}"

# The bundled configs, and the default run's corpus when the build extracted it, sit where the
# installed fabric-train looks for them (<prefix>/share/fabric).
[ -f "$prefix/share/fabric/configs/gpt-austen.yaml" ] || fail "no share/fabric/configs in $prefix"
if [ -s "$source_root/data/austen.txt" ] && ! cmp -s "$source_root/data/austen.txt" "$prefix/share/fabric/data/austen.txt"; then
  fail "data/austen.txt was not installed as share/fabric/data/austen.txt"
fi
# A bundled config by its installed path, run from an unrelated directory.
mkdir "$work/elsewhere"
(cd "$work/elsewhere" && "$prefix/bin/fabric-train" fit "$prefix/share/fabric/configs/mlp-tensors.yaml" \
   --set trainer.max_steps=2 trainer.run_dir="$work/run-mlp" >"$work/fit.log" 2>&1) ||
  { tail -20 "$work/fit.log"; fail "the installed fabric-train cannot fit its bundled mlp-tensors.yaml from another directory"; }
# The default run where the source tree it was built from is gone (hidden in a private mount
# namespace): it must read <prefix>/share/fabric. Skipped where unprivileged namespaces are off.
if [ -s "$prefix/share/fabric/data/austen.txt" ] && unshare -rm --propagation private true 2>/dev/null; then
  (cd "$work/elsewhere" && unshare -rm --propagation private sh -c \
     'mount -t tmpfs none "$1" && shift && exec "$@"' sh "$source_root" \
     "$prefix/bin/fabric-train" --set trainer.max_steps=1 trainer.run_dir="$work/run-default" >"$work/default.log" 2>&1) ||
    { tail -20 "$work/default.log"; fail "the installed fabric-train's default run does not find <prefix>/share/fabric without the source tree"; }
else
  echo "skipped: the default run without the source tree (no corpus installed, or no unshare)"
fi

# Every header README names is installed; those its examples #include compile on their own (all
# of them alone would take minutes on 2 cores).
named=$(grep -oE '\b(tensor|autograd|nn|optim|precision|distributed|runtime)/[a-z_0-9]+\.h' "$source_root/README.md" | sort -u)
for h in $named; do [ -f "$prefix/include/fabric/$h" ] || fail "README names $h, which is not installed"; done
# fabric's own: <fabric/...> or a layer's "runtime/..." (the C example's <stdio.h> is none of them).
headers=$(grep -oE '^\s*#include [<"](fabric/[a-z_/0-9]+|(tensor|autograd|nn|optim|precision|distributed|runtime)/[a-z_/0-9]+)\.h[>"]' \
          "$source_root/README.md" | sed -E 's/.*[<"](fabric\/)?([^>"]+)[>"]/\2/' | sort -u)
cmake -S "$consumer" -B "$work/consumer-build" -DCMAKE_PREFIX_PATH="$prefix" -DCMAKE_BUILD_TYPE=Release \
  -DFABRIC_DOCUMENTED_HEADERS="$(echo $headers | tr ' ' ';')" >"$work/configure.log" 2>&1 ||
  { cat "$work/configure.log"; fail "find_package(fabric) / fabric::runtime"; }
cmake --build "$work/consumer-build" -j"$(nproc)" >"$work/build.log" 2>&1 ||
  { grep -E -A5 'error|Error' "$work/build.log" | head -60; fail "building against the installed headers"; }
"$work/consumer-build/consumer"
"$work/consumer-build/embedding_checks"
# The C API from C, training the installed bundled config from another directory.
(cd "$work/elsewhere" && "$work/consumer-build/c_consumer" "$prefix/share/fabric/configs/mlp-tensors.yaml" \
   "$work/run-c" >"$work/c_consumer.log" 2>&1) || { tail -20 "$work/c_consumer.log"; fail "the C consumer (README \"C API\")"; }
tail -1 "$work/c_consumer.log"
# Without CMake: pkg-config's flags build the same app (README's example program).
if command -v pkg-config >/dev/null; then
  flags=$(PKG_CONFIG_PATH="$prefix/lib/pkgconfig" pkg-config --cflags --libs fabric) ||
    fail "pkg-config finds no fabric in $prefix/lib/pkgconfig"
  g++ -O1 -Wno-missing-field-initializers "$consumer/main.cpp" $flags -o "$work/pkg-config-consumer" \
    >"$work/pkg-config.log" 2>&1 || { head -30 "$work/pkg-config.log"; fail "g++ with pkg-config --cflags --libs fabric"; }
  "$work/pkg-config-consumer" >/dev/null || fail "the app built with pkg-config's flags does not run"
  echo "pkg-config consumer: OK"
else
  echo "skipped: the pkg-config consumer (no pkg-config)"
fi

# An embedding app built with clang includes any installed header: each alone in a translation
# unit of the same consumer project configured with clang++ (the oldest we check is 14: the
# package's include directories, definitions and warnings as errors). Skipped without clang++.
clangxx=$(command -v clang++-14 || command -v clang++ || true)
if [ -n "$clangxx" ]; then
  all_headers=$(cd "$prefix/include/fabric" && find . -name '*.h' | sed 's|^\./||' | sort)
  cmake -S "$consumer" -B "$work/clang-build" -DCMAKE_PREFIX_PATH="$prefix" -DCMAKE_BUILD_TYPE=Release \
    -DCMAKE_CXX_COMPILER="$clangxx" -DFABRIC_DOCUMENTED_HEADERS="$(echo $all_headers | tr ' ' ';')" \
    >"$work/clang-configure.log" 2>&1 || { cat "$work/clang-configure.log"; fail "configuring the consumer with $clangxx"; }
  cmake --build "$work/clang-build" -j"$(nproc)" --target standalone_headers >"$work/clang-build.log" 2>&1 ||
    { grep -E -A5 'error' "$work/clang-build.log" | head -60; fail "the installed headers with $clangxx ($("$clangxx" --version | head -1))"; }
  echo "installed headers with $("$clangxx" --version | head -1): OK ($(echo $all_headers | wc -w) compile alone)"
else
  echo "skipped: the installed headers with clang++ (none found)"
fi
echo "installed package: OK (the $(echo $headers | wc -w) headers README's examples include compile alone)"
