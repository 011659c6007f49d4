#!/usr/bin/env bash
# Runs tools/gpu-check.sh on this machine against fakes of nvidia-smi, nvcc, ctest and bench_gpu
# (FABRIC_GPU_SKIP_BUILD=1, so nothing is built), one case per row of the table below, and checks
# what a GPU session depends on: the summary prints within FABRIC_GPU_BUDGET_S even when the tests
# or the bench hang, a bench killed midway still shows the rows it had measured, a bundle from
# tools/gpu-bundle.sh runs in place of a build, and one compiled for CPU features this machine
# lacks is refused with their names instead of dying of SIGILL, a bundle test that crashes its
# process is reported by name while the tests after it still run, and $OUT gets the logs as at most
# four files.
# Usage: check_gpu_check.sh SOURCE_ROOT
set -euo pipefail
root=$(cd "$1" && pwd)
work=$(mktemp -d /tmp/fabric-gpu-check-check.XXXXXX)
trap 'rm -rf "$work"' EXIT

# ---- the fakes -----------------------------------------------------------------------------------
mkdir -p "$work/bin" "$work/build/tools"
cat >"$work/bin/nvidia-smi" <<'EOF'
#!/usr/bin/env bash
echo "NVIDIA H200, 9.0, 570.86, 143771 MiB"
EOF
printf '#!/usr/bin/env bash\nexit 0\n' >"$work/bin/nvcc"
# ctest: passes at once, or hangs past any budget (FAKE_CTEST=hang).
cat >"$work/bin/ctest" <<'EOF'
#!/usr/bin/env bash
[ "${FAKE_CTEST:-pass}" = pass ] || exec sleep 1000
echo "100% tests passed, 0 tests failed out of 3"
EOF
# bench_gpu: one row measured, then the rest of the table, or a hang after the first row.
cat >"$work/build/tools/bench_gpu" <<'EOF'
#!/usr/bin/env bash
echo "measured: GEMM bf16 4096^3 (TFLOP/s): 700.0 (cuBLASLt/CUDA 710.0, datasheet 989)"
[ "${FAKE_BENCH:-pass}" = pass ] || exec sleep 1000
echo "metric fabric"
echo "GEMM bf16 4096^3 (TFLOP/s) 700.0"
EOF
chmod +x "$work/bin/"* "$work/build/tools/bench_gpu"

# ---- a bundle (FABRIC_GPU_BUNDLE): the fake bench and two fake test binaries, and a MANIFEST whose
# cpu_flags this machine has (avx2: fabric needs it to build at all) or lacks.
make_bundle() {  # make_bundle FILE CPU_FLAGS
  local stage=$work/stage
  rm -rf "$stage"
  mkdir -p "$stage/fabric-gpu/bin" "$stage/fabric-gpu/lib"
  cp "$work/build/tools/bench_gpu" "$stage/fabric-gpu/bin/"
  # Fake gtest binaries: three tests, the tests named in the filter's negative part left out;
  # Fake.Crash kills the process when FAKE_TESTS=crash.
  for b in fabric_tests_cuda fabric_tests_ops; do
    cat >"$stage/fabric-gpu/bin/$b" <<'EOF'
#!/usr/bin/env bash
filter=${1#--gtest_filter=}
negative=
[[ $filter == *-* ]] && negative=:${filter#*-}:
for t in Fake.One Fake.Crash Fake.Two; do
  [[ $negative == *:$t:* ]] && continue
  echo "[ RUN      ] $t"
  [ "$t" = Fake.Crash ] && [ "${FAKE_TESTS:-pass}" = crash ] && kill -SEGV $$
  echo "[       OK ] $t (0 ms)"
done
EOF
    chmod +x "$stage/fabric-gpu/bin/$b"
  done
  printf 'archs=80;90\ncpu_flags=%s\ncommit=fake\n' "$2" >"$stage/fabric-gpu/MANIFEST"
  tar -C "$stage" -cJf "$1" fabric-gpu
}
make_bundle "$work/good.tar.xz" "avx2"
make_bundle "$work/foreign-cpu.tar.xz" "avx2 fabric_no_such_cpu_flag"

# ---- the cases: name | FAKE_CTEST (or FAKE_TESTS for a bundle) | FAKE_BENCH | bundle | budget (s)
# | exit status | lines the output holds. A bundle's tests get what the budget leaves after 90 s
# kept for the steps after them (at least 1 s): the bundle cases' budgets give them a minute, since
# 1 s for a test binary's run is the likely cause of one failure under a loaded ctest.
cases=(
  "all pass|pass|pass||60|0|CUDA tests: 100% tests passed, 0 tests failed out of 3;GEMM bf16 4096^3 (TFLOP/s) 700.0"
  "ctest hangs|hang|pass||12|1|note: ctest ran past its time limit;GEMM bf16 4096^3 (TFLOP/s) 700.0"
  "bench hangs|pass|hang||12|1|bench_gpu failed or ran past its;measured: GEMM bf16 4096^3 (TFLOP/s): 700.0"
  "both hang|hang|hang||12|1|note: ctest ran past its time limit;measured: GEMM bf16 4096^3 (TFLOP/s): 700.0"
  "bundle|pass|pass|good.tar.xz|150|0|CUDA tests: 6 passed, 0 failed (gtest, two binaries);GEMM bf16 4096^3 (TFLOP/s) 700.0"
  "bundle, a test crashes|crash|pass|good.tar.xz|120|1|CUDA tests: 4 passed, 2 failed (gtest, two binaries);CRASHED Fake.Crash process ended;GEMM bf16 4096^3 (TFLOP/s) 700.0"
  "bundle for another CPU|pass|pass|foreign-cpu.tar.xz|60|1|compiled for CPUs with fabric_no_such_cpu_flag, which this machine's CPU lacks"
)
failures=0
for row in "${cases[@]}"; do
  IFS='|' read -r name ctest_mode bench_mode bundle budget want_rc want_lines <<<"$row"
  rm -rf "$work/logs"
  rc=0
  start=$(date +%s)
  # The outer limit only guards this check: a script that overruns its budget by 20 s has failed.
  PATH="$work/bin:$PATH" FAKE_CTEST=$ctest_mode FAKE_TESTS=$ctest_mode FAKE_BENCH=$bench_mode FABRIC_GPU_SKIP_BUILD=1 \
    FABRIC_GPU_BUNDLE=${bundle:+$work/$bundle} FABRIC_GPU_BUILD_DIR="$work/build" \
    FABRIC_GPU_BUDGET_S=$budget OUT="$work/logs" \
    timeout $((budget + 20)) bash "$root/tools/gpu-check.sh" >"$work/out.txt" 2>&1 || rc=$?
  took=$(($(date +%s) - start))
  problems=()
  [ "$rc" = "$want_rc" ] || problems+=("exit status $rc, expected $want_rc")
  [ "$took" -le $((budget + 5)) ] || problems+=("took ${took}s with a ${budget}s budget")
  # A run that got as far as the tests leaves its summary; one refused before them does not.
  [ "$want_rc" != 0 ] && [ -n "$bundle" ] || [ -f "$work/logs/summary.txt" ] ||
    problems+=("no summary.txt in \$OUT")
  # What a lent GPU machine sends back: at most 8 plain files, none in a folder.
  sent=$(find "$work/logs" -mindepth 1 2>/dev/null | wc -l)
  [ "$sent" -le 4 ] || problems+=("\$OUT holds $sent entries, expected at most 4 files")
  IFS=';' read -r -a lines <<<"$want_lines"
  for line in "${lines[@]}"; do
    grep -qF -- "$line" "$work/out.txt" || problems+=("output lacks '$line'")
  done
  if [ ${#problems[@]} -gt 0 ]; then
    failures=$((failures + 1))
    echo "FAIL: $name: $(printf '%s; ' "${problems[@]}")"
    sed 's/^/    /' "$work/out.txt"
  else
    echo "ok: $name (${took}s)"
  fi
done
[ "$failures" = 0 ] || exit 1
echo "gpu-check.sh against fakes: OK"
