#!/usr/bin/env bash
# The GPU check of issue #8, for a machine with an NVIDIA GPU: configures and builds fabric
# (Release, this GPU's architecture only, just the CUDA tests and bench_gpu), runs the CUDA test
# label, then prints one compact table (GEMM bf16/fp8 TFLOP/s vs cuBLASLt and the datasheet, D2D
# copy bandwidth, attention fwd+bwd through our fused kernel vs cuDNN's fused attention vs the
# composition, GPT-2 124M bf16-mixed training tokens/s and MFU). Sized for < 8 minutes on a
# 16-core host with one H100/H200.
# On a GPU machine that cannot build fabric (no Debian packages for oneDNN, Gloo, yaml-cpp and
# GoogleTest, nothing to fetch them from), it runs the binaries of a bundle made elsewhere by
# tools/gpu-bundle.sh instead of building: same tests (the binaries behind the cuda label), same
# table; CUDA's libraries are then the GPU machine's own (toolkit, and Python's nvidia-* packages
# for cuDNN and NCCL).
# A bundle's tests run through tools/gtest-resume.sh: a test that crashes the process, hangs or
# breaks the CUDA context is reported as such and the tests after it still run; the first such test
# then runs once more under compute-sanitizer (memcheck) when time allows, its report in the logs.
#   usage: bash tools/gpu-check.sh
#   env:   OUT (when set: summary.txt, ctest.log and bench.log are copied there and every log as
#          gpu-check-logs.tar.gz; with FABRIC_GPU_PROFILE's two, six files, within a lent GPU
#          machine's limit on files sent back), FABRIC_GPU_BUILD_DIR (default build-gpu),
#          FABRIC_GPU_JOBS (default: all cores), FABRIC_GPU_SKIP_BUILD=1 (use an existing build),
#          FABRIC_GPU_BUNDLE=<fabric-gpu.tar.xz> (run that bundle; no build),
#          FABRIC_GPU_PROFILE=1 (after the bench: a GPT-2 step's phases, and every kernel of one
#          step through ncu when installed; profile.log and ncu.csv join $OUT's files),
#          FABRIC_GPU_PROFILE_VARIANTS ("VAR=1 OTHER=2;VAR=3": the phases again under each set of
#          environment variables, for A/B comparisons in one run),
#          FABRIC_GPU_BUDGET_S (default 540: every step's time limit is cut so that the summary
#          prints within this many seconds of the start)
# Exits 1 with a message when there is no GPU, the build fails or a CUDA test fails.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build_dir=${FABRIC_GPU_BUILD_DIR:-build-gpu}
case $build_dir in /*) ;; *) build_dir=$root/$build_dir ;; esac
jobs=${FABRIC_GPU_JOBS:-$(nproc)}
logs=$build_dir/gpu-check-logs
start=$(date +%s)
# The step limits below add up to nearly 14 minutes, past a lent GPU's 10-minute command limit,
# which would kill the script before its summary: each step gets its own limit or what is left of
# the budget, keeping `reserve` seconds for the steps after it, whichever is less. The default
# leaves a minute of that command limit to spare.
budget=${FABRIC_GPU_BUDGET_S:-540}
[[ $budget =~ ^[0-9]+$ ]] || { echo "gpu-check: FABRIC_GPU_BUDGET_S=$budget is not a number of seconds" >&2; exit 1; }
deadline=$((start + budget))
limit_for() {
  local want=$1 reserve=${2:-0} left
  left=$((deadline - $(date +%s) - reserve))
  [ "$left" -ge "$want" ] || want=$left
  [ "$want" -ge 1 ] || want=1
  echo "$want"
}

say() { echo "gpu-check: $*"; }
die() {
  echo "gpu-check: $*" >&2
  exit 1
}
elapsed() { echo "$(($(date +%s) - start))s"; }
# On every exit, the main logs and an archive of all of them go to $OUT (when set).
publish_logs() {
  [ -n "${OUT:-}" ] && [ -d "$logs" ] || return 0
  mkdir -p "$OUT"
  local f
  for f in summary.txt ctest.log bench.log profile.log ncu.csv; do
    [ -f "$logs/$f" ] && head -c 15000000 "$logs/$f" >"$OUT/$f"
  done
  tar -C "$logs" -czf "$OUT/gpu-check-logs.tar.gz" . 2>/dev/null || true
}
trap publish_logs EXIT
# Runs "$@" with its output in $logs/$name.log; on failure prints the log's tail and dies.
run_logged() {
  local name=$1 limit=$2
  shift 2
  if ! timeout "$limit" "$@" >"$logs/$name.log" 2>&1; then
    tail -n 40 "$logs/$name.log" >&2
    die "$name failed or ran past ${limit}s (full log: $logs/$name.log)"
  fi
}

# ---- the GPU -------------------------------------------------------------------------------------
command -v nvidia-smi >/dev/null 2>&1 || die "no nvidia-smi: this script needs a machine with an NVIDIA GPU and its driver"
gpu_line=$(nvidia-smi --query-gpu=name,compute_cap,driver_version,memory.total --format=csv,noheader 2>&1 | head -n 1) ||
  die "nvidia-smi failed: $gpu_line"
[ -n "$gpu_line" ] || die "nvidia-smi lists no GPU"
IFS=',' read -r gpu_name compute_cap driver memory <<<"$gpu_line"
gpu_name=$(echo "$gpu_name" | xargs)
compute_cap=$(echo "$compute_cap" | xargs)
driver=$(echo "$driver" | xargs)
memory=$(echo "$memory" | xargs)
[[ $compute_cap =~ ^[0-9]+\.[0-9]+$ ]] || die "unexpected compute capability '$compute_cap' from nvidia-smi ($gpu_line)"
arch=${compute_cap/./}
say "$gpu_name, compute capability $compute_cap (sm_$arch), driver $driver, $memory"
rm -rf "$logs"
mkdir -p "$logs"
nvidia-smi >"$logs/nvidia-smi.log" 2>&1 || true

bundle=${FABRIC_GPU_BUNDLE:-}
if [ -n "$bundle" ]; then
  case $bundle in /*) ;; *) bundle=$root/$bundle ;; esac
  [ -f "$bundle" ] || die "FABRIC_GPU_BUNDLE=$bundle: no such file (make it with tools/gpu-bundle.sh)"
fi

# The directories holding CUDA's shared libraries on this machine: the toolkit's, then those of
# Python's nvidia-* wheels (cuDNN and NCCL often come only from there), deduplicated.
# cuBLAS(Lt) is opened at run time (dlopen), so ldd cannot vouch for it: its folder must be here.
cuda_library_path() {
  local dirs=() d lib
  for d in /usr/local/cuda/lib64 /usr/local/cuda/lib /usr/local/cuda/targets/x86_64-linux/lib; do
    [ -d "$d" ] && dirs+=("$d")
  done
  while IFS= read -r lib; do dirs+=("$(dirname "$lib")"); done < <(
    find /usr/local /opt /usr/lib -xdev \( -name libcudnn.so.9 -o -name libnccl.so.2 -o \
      -name libcublasLt.so.13 -o -name libcublas.so.13 -o -name libcudart.so.13 \) 2>/dev/null | sort)
  printf '%s\n' "${dirs[@]}" | awk '!seen[$0]++' | paste -sd: -
}

# Unpacks the bundle, checks that it was built for this GPU and that every library resolves; sets
# bundle_dir and LD_LIBRARY_PATH.
use_bundle() {
  bundle_dir=$build_dir/bundle
  rm -rf "$bundle_dir"
  mkdir -p "$bundle_dir"
  tar -C "$bundle_dir" -xJf "$bundle" || die "could not unpack $bundle"
  bundle_dir=$bundle_dir/fabric-gpu
  [ -f "$bundle_dir/MANIFEST" ] || die "$bundle has no fabric-gpu/MANIFEST: not made by tools/gpu-bundle.sh"
  cp "$bundle_dir/MANIFEST" "$logs/bundle-manifest.txt"
  # Runs here if built for this architecture, or (through the newest one's PTX) for an older one.
  local built_for newest
  built_for=$(sed -n 's/^archs=//p' "$bundle_dir/MANIFEST")
  newest=$(tr ';' '\n' <<<"$built_for" | sort -n | tail -n 1)
  [[ ";$built_for;" == *";$arch;"* ]] || [ "$arch" -gt "${newest:-0}" ] ||
    die "$bundle was built for sm $built_for, this GPU is sm_$arch: run tools/gpu-bundle.sh '$built_for;$arch'"
  # Its CPU code stops with SIGILL on a CPU without the features it was compiled for.
  local flag lacking=""
  for flag in $(sed -n 's/^cpu_flags=//p' "$bundle_dir/MANIFEST"); do
    grep -qw "$flag" /proc/cpuinfo || lacking+=" $flag"
  done
  [ -z "$lacking" ] || die "$bundle was compiled for CPUs with$lacking, which this machine's CPU lacks (/proc/cpuinfo)"
  export LD_LIBRARY_PATH=$bundle_dir/lib:$(cuda_library_path)${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
  # This machine's C++ runtime when it is new enough, else the bundle's.
  if ! "$bundle_dir/bin/bench_gpu" --help >/dev/null 2>"$logs/bundle-load.log" &&
    grep -q 'GLIBCXX\|CXXABI\|GCC_' "$logs/bundle-load.log"; then
    export LD_LIBRARY_PATH=$LD_LIBRARY_PATH:$bundle_dir/lib/compat
    say "this machine's libstdc++ is older than the bundle's: using the bundle's"
  fi
  local b missing=""
  for b in "$bundle_dir"/bin/*; do
    missing+=$(ldd "$b" | grep 'not found' || true)
  done
  [ -z "$missing" ] || die "the bundle's binaries miss libraries here (LD_LIBRARY_PATH=$LD_LIBRARY_PATH):"$'\n'"$missing"
  ldd "$bundle_dir/bin/bench_gpu" >"$logs/bundle-ldd.log" 2>&1 || true
  say "bundle $(sed -n 's/^commit=//p' "$bundle_dir/MANIFEST") (sm $built_for) unpacked in $bundle_dir"
}

nvcc=$(command -v nvcc || true)
[ -n "$nvcc" ] || nvcc=/usr/local/cuda/bin/nvcc
[ -n "$bundle" ] || [ -x "$nvcc" ] || die "no nvcc on PATH or at /usr/local/cuda/bin/nvcc: the CUDA toolkit is needed to build"

# ---- build ---------------------------------------------------------------------------------------
if [ -n "$bundle" ]; then
  use_bundle
elif [ "${FABRIC_GPU_SKIP_BUILD:-0}" != 1 ]; then
  generator=()
  command -v ninja >/dev/null 2>&1 && generator=(-G Ninja)
  # A cache made with another generator cannot be reused.
  if [ -f "$build_dir/CMakeCache.txt" ] && [ ${#generator[@]} -gt 0 ] && ! grep -q 'CMAKE_GENERATOR:INTERNAL=Ninja' "$build_dir/CMakeCache.txt"; then
    generator=()
  fi
  launcher=()
  command -v ccache >/dev/null 2>&1 && launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache -DCMAKE_CUDA_COMPILER_LAUNCHER=ccache)
  say "configuring $build_dir (Release, CMAKE_CUDA_ARCHITECTURES=$arch) [$(elapsed)]"
  if ! timeout "$(limit_for 120)" cmake -S "$root" -B "$build_dir" "${generator[@]}" -DCMAKE_BUILD_TYPE=Release -DFABRIC_CUDA=ON \
    -DCMAKE_CUDA_COMPILER="$nvcc" -DCMAKE_CUDA_ARCHITECTURES="$arch" -DFABRIC_BUILD_TESTS=ON -DFABRIC_BUILD_BENCH=ON \
    "${launcher[@]}" >"$logs/configure.log" 2>&1; then
    tail -n 30 "$logs/configure.log" >&2
    die "configure failed (full log: $logs/configure.log). A missing package? tools/install-deps.sh lists fabric's dependencies"
  fi
  say "building fabric_tests_cuda, fabric_tests_ops (its OpHarnessCuda.* tests) and bench_gpu with $jobs jobs [$(elapsed)]"
  run_logged build "$(limit_for 330 120)" cmake --build "$build_dir" -j "$jobs" --target fabric_tests_cuda fabric_tests_ops bench_gpu
fi
if [ -n "$bundle" ]; then
  bench=$bundle_dir/bin/bench_gpu
else
  bench=$build_dir/tools/bench_gpu
fi
[ -x "$bench" ] || die "$bench is missing: build the bench_gpu target"

# ---- CUDA tests ----------------------------------------------------------------------------------
tests_ok=1
tests_timed_out=""
if [ -n "$bundle" ]; then
  # The cuda label's tests, straight from the two binaries that hold them (no ctest files here),
  # each through gtest-resume.sh so that a crash, a hang or a broken CUDA context costs one test.
  say "running the bundle's CUDA tests [$(elapsed)]"
  : >"$logs/ctest.log"
  : >"$logs/tests.results"
  for spec in "fabric_tests_cuda:-CachingAllocatorLogic.*" "fabric_tests_ops:OpHarnessCuda.*"; do
    rc=0
    bash "$root/tools/gtest-resume.sh" "$bundle_dir/bin/${spec%%:*}" "${spec#*:}" "$(limit_for 180 90)" 120 \
      "$logs/${spec%%:*}.log" "$logs/${spec%%:*}.results" || rc=$?
    cat "$logs/${spec%%:*}.log" >>"$logs/ctest.log"
    cat "$logs/${spec%%:*}.results" >>"$logs/tests.results"
    if [ "$rc" != 0 ]; then
      tests_ok=0
      [ "$rc" != 124 ] || tests_timed_out="${spec%%:*} ran past its time limit (budget ${budget}s)"
    fi
  done
  verdicts() { grep -cE "^($1) " "$logs/tests.results" || true; }
  test_summary="$(verdicts OK) passed, $(verdicts 'FAILED|CRASHED|HUNG') failed (gtest, two binaries)"
  skipped=$(verdicts SKIPPED)
  failed=$(grep -E '^(FAILED|CRASHED|HUNG) ' "$logs/tests.results" | cut -c1-240 || true)
  # The first test that crashed or broke the context, once more under memcheck, if time allows.
  culprit=$(grep -m1 -E '^CRASHED |^FAILED [^ ]+ sticky' "$logs/tests.results" | cut -d' ' -f2 || true)
  sanitizer=$(command -v compute-sanitizer || echo /usr/local/cuda/bin/compute-sanitizer)
  sanitizer_limit=$(limit_for 90 200)
  if [ -n "$culprit" ] && [ -x "$sanitizer" ] && [ "$sanitizer_limit" -ge 30 ]; then
    say "running $culprit under compute-sanitizer [$(elapsed)]"
    for b in fabric_tests_cuda fabric_tests_ops; do
      grep -q "^[A-Z]* $culprit " "$logs/$b.results" || continue
      timeout "$sanitizer_limit" "$sanitizer" --tool memcheck --print-limit 20 \
        "$bundle_dir/bin/$b" --gtest_filter="$culprit" >"$logs/sanitizer.log" 2>&1 || true
    done
  fi
else
  say "running ctest -L cuda [$(elapsed)]"
  rc=0
  timeout "$(limit_for 180 90)" ctest --test-dir "$build_dir" -L cuda --output-on-failure --no-tests=error -j 4 \
    --timeout 120 >"$logs/ctest.log" 2>&1 || rc=$?
  if [ "$rc" != 0 ]; then
    tests_ok=0
    [ "$rc" != 124 ] || tests_timed_out="ctest ran past its time limit (budget ${budget}s)"
  fi
  test_summary=$(grep -E 'tests passed|tests failed' "$logs/ctest.log" | tail -n 1 || true)
  skipped=$(grep -c '\*\*\*Skipped' "$logs/ctest.log" || true)
  failed=$(sed -n '/The following tests FAILED/,$p' "$logs/ctest.log" | grep -E '^\s+[0-9]+ - ' || true)
fi

# ---- benchmark -----------------------------------------------------------------------------------
say "running bench_gpu [$(elapsed)]"
bench_ok=1
bench_limit=$(limit_for 200)
# The GPT row trains for about this long after its warm-up; a short limit leaves it less.
gpt_seconds=$((bench_limit / 5 < 40 ? bench_limit / 5 : 40))
[ "$gpt_seconds" -ge 1 ] || gpt_seconds=1
if ! timeout "$bench_limit" "$bench" --gpu-name "$gpu_name" --gpt-seconds "$gpt_seconds" >"$logs/bench.log" 2>&1; then
  bench_ok=0
fi
# nvidia-smi sees a GPU; a bench that does not is a broken setup, not a pass.
if grep -q 'needs a GPU' "$logs/bench.log"; then
  bench_ok=0
fi

# ---- profile (FABRIC_GPU_PROFILE=1) -------------------------------------------------------------
# Where a GPT-2 step's time goes: bench_gpu --profile-gpt times its phases and the host's queueing,
# then ncu (when installed) times every kernel of one step, summed per kernel name.
if [ "${FABRIC_GPU_PROFILE:-0}" = 1 ]; then
  say "profiling a GPT-2 124M step [$(elapsed)]"
  timeout "$(limit_for 90 60)" "$bench" --profile-gpt >"$logs/profile.log" 2>&1 ||
    echo "bench_gpu --profile-gpt failed or ran past its limit" >>"$logs/profile.log"
  # FABRIC_GPU_PROFILE_VARIANTS="A=1 B=2;A=3": the phases again under each set of variables.
  IFS=';' read -r -a variants <<<"${FABRIC_GPU_PROFILE_VARIANTS:-}"
  for variant in "${variants[@]}"; do
    [ -n "$variant" ] || continue
    read -r -a assignments <<<"$variant"
    echo "variant $variant:" >>"$logs/profile.log"
    timeout "$(limit_for 60 60)" env "${assignments[@]}" "$bench" --profile-gpt 2>&1 |
      sed "s|^profile-gpt|profile-gpt [$variant]|" >>"$logs/profile.log" ||
      echo "profile-gpt [$variant] failed or ran past its limit" >>"$logs/profile.log"
  done
  ncu=$(command -v ncu || ls /usr/local/cuda/bin/ncu /opt/nvidia/nsight-compute/*/ncu 2>/dev/null | head -n 1 || true)
  if [ -n "$ncu" ]; then
    timeout "$(limit_for 180)" "$ncu" --profile-from-start off --clock-control none \
      --metrics gpu__time_duration.sum --csv --print-summary per-kernel "$bench" --profile-gpt \
      >"$logs/ncu.csv" 2>&1 || echo "ncu failed or ran past its limit" >>"$logs/ncu.csv"
  fi
fi

# ---- summary -------------------------------------------------------------------------------------
{
  echo
  echo "==== gpu-check: $gpu_name (sm_$arch), $(date -u +%Y-%m-%dT%H:%MZ), $(elapsed) ===="
  echo "CUDA tests: ${test_summary:-no ctest summary (see $logs/ctest.log)}; skipped: $skipped"
  [ -z "$tests_timed_out" ] || echo "note: $tests_timed_out; the tests it had not run are missing"
  if [ -n "$failed" ]; then
    echo "failed tests:"
    echo "$failed"
  fi
  if [ -s "$logs/sanitizer.log" ]; then
    echo "compute-sanitizer on ${culprit:-?} (first errors; all in sanitizer.log):"
    grep -E '^========= (Invalid|Program hit|Error|  +at |    by )' "$logs/sanitizer.log" | head -n 12 || true
  fi
  if [ "$skipped" != 0 ] && [ "$tests_ok" = 1 ]; then
    echo "note: tests reported as skipped on a machine with a GPU (see $logs/ctest.log for why)"
  fi
  [ ! -f "$logs/profile.log" ] || grep -E '^profile-gpt|failed' "$logs/profile.log" || true
  if [ "$bench_ok" = 1 ]; then
    cat "$logs/bench.log"
  else
    echo "bench_gpu failed or ran past its ${bench_limit}s limit; its output (each row as it was measured):"
    tail -n 30 "$logs/bench.log"
  fi
  echo "full logs: $logs"
} | tee "$logs/summary.txt"

[ "$tests_ok" = 1 ] || die "CUDA tests failed"
[ "$bench_ok" = 1 ] || die "bench_gpu failed"
exit 0
