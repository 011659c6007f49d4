#!/usr/bin/env bash
# Builds, on this machine, what tools/gpu-check.sh runs on a GPU machine that cannot build fabric
# itself (a machine with nvcc but without Debian's oneDNN, Gloo, yaml-cpp and GoogleTest packages,
# and no registry to fetch them from): the CUDA tests, the op harness and bench_gpu compiled for the GPU
# architectures asked for, libfabric_runtime, and the shared libraries they need that are neither the C
# runtime nor CUDA's (CUDA's own libraries are taken from the GPU machine: its toolkit, driver and
# Python packages). The result is one compressed archive to carry there;
# `FABRIC_GPU_BUNDLE=<archive> bash tools/gpu-check.sh` runs it there.
# The host code is compiled for any x86-64 CPU with AVX2, FMA and F16C (FABRIC_NATIVE=OFF:
# -march=x86-64-v3), not for this machine's CPU: the GPU machine's CPU is another one, and a
# -march=native build made here would stop there with SIGILL at the first instruction it lacks
# (AVX-512 on an older host; AVX-VNNI or VP2INTERSECT from an AMD Zen 5 on an Intel host).
#   usage: bash tools/gpu-bundle.sh [ARCHS]   (CMAKE_CUDA_ARCHITECTURES, default "80;90", the
#          project's default; the bundle runs on those architectures and, through the PTX of the
#          newest, on newer ones)
#   env:   FABRIC_GPU_BUNDLE_BUILD_DIR (default build-gpu-bundle: its own, as the CPU flags differ
#          from tools/build.sh's), FABRIC_JOBS (default nproc), FABRIC_GPU_BUNDLE_OUT (default
#          .gpu-bundle/fabric-gpu.tar.xz; git ignores .gpu-bundle/)
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
archs=${1:-80;90}
if ! [[ $archs =~ ^[0-9]+(;[0-9]+)*$ ]]; then
  echo "gpu-bundle: ARCHS must look like 90 or 80;90, got '$archs'" >&2
  exit 2
fi
build_dir=${FABRIC_GPU_BUNDLE_BUILD_DIR:-build-gpu-bundle}
case $build_dir in /*) ;; *) build_dir=$root/$build_dir ;; esac
out=${FABRIC_GPU_BUNDLE_OUT:-$root/.gpu-bundle/fabric-gpu.tar.xz}
nvcc=/usr/local/cuda/bin/nvcc
[ -x "$nvcc" ] || nvcc=$(command -v nvcc || true)
[ -n "$nvcc" ] || { echo "gpu-bundle: no nvcc (looked at /usr/local/cuda/bin and PATH)" >&2; exit 1; }

cmake -S "$root" -B "$build_dir" -DCMAKE_BUILD_TYPE=Release -DFABRIC_CUDA=ON -DCMAKE_CUDA_COMPILER="$nvcc" \
  -DCMAKE_CUDA_ARCHITECTURES="$archs" -DFABRIC_NATIVE=OFF -DFABRIC_BUILD_TESTS=ON -DFABRIC_BUILD_BENCH=ON >/dev/null
cmake --build "$build_dir" -j"${FABRIC_JOBS:-$(nproc)}" --target fabric_tests_cuda fabric_tests_ops bench_gpu

stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
mkdir -p "$stage/fabric-gpu/bin" "$stage/fabric-gpu/lib/compat"
bins=("$build_dir/tests/fabric_tests_cuda" "$build_dir/tests/fabric_tests_ops" "$build_dir/tools/bench_gpu")
cp "${bins[@]}" "$stage/fabric-gpu/bin/"

# Every library the binaries load, by ldd: CUDA's stay behind (the GPU machine's must match its
# driver); the C runtime and the compiler's runtime libraries go to lib/compat, which gpu-check
# puts on the path only when the machine's own are too old.
cuda_lib='^lib(cuda|cudart|cublas|cublasLt|cudnn[a-z_]*|nccl|nvrtc|nvJitLink)\.so'
c_runtime='^(ld-linux|libc|libm|libdl|libpthread|librt|libresolv|linux-vdso)[.-]'
compat='^(libstdc\+\+|libgcc_s)\.so'
ldd "${bins[@]}" | awk '$2 == "=>" && $3 ~ /^\// {print $1, $3}' | sort -u | while read -r name path; do
  if [[ $name =~ $cuda_lib ]] || [[ $name =~ $c_runtime ]]; then
    continue
  elif [[ $name =~ $compat ]]; then
    cp -L "$path" "$stage/fabric-gpu/lib/compat/$name"
  else
    cp -L "$path" "$stage/fabric-gpu/lib/$name"
  fi
done
missing=$(ldd "${bins[@]}" | grep 'not found' || true)
[ -z "$missing" ] || { echo "gpu-bundle: unresolved libraries here:"$'\n'"$missing" >&2; exit 1; }

{
  echo "archs=$archs"
  # The CPU features -march=x86-64-v3 assumes, as /proc/cpuinfo names them (gpu-check.sh checks
  # them; LZCNT's "abm" is left out: virtual machines that have it do not always list it).
  echo "cpu_flags=avx2 fma f16c bmi1 bmi2 movbe"
  commit=$(git -C "$root" rev-parse HEAD 2>/dev/null || echo unknown)
  git -C "$root" diff --quiet HEAD 2>/dev/null || commit+=+changes  # uncommitted edits built in
  echo "commit=$commit"
  echo "built=$(date -u +%Y-%m-%dT%H:%MZ) on $(uname -n)"
  echo "nvcc=$("$nvcc" --version | tail -n 1)"
  echo "cuda_libs=$(ldd "${bins[@]}" | awk '{print $1}' | grep -E "$cuda_lib" | sort -u | tr '\n' ' ')"
} >"$stage/fabric-gpu/MANIFEST"

mkdir -p "$(dirname "$out")"
tar -C "$stage" -cf - fabric-gpu | xz -T0 -6 >"$out.tmp"
mv "$out.tmp" "$out"
echo "gpu-bundle: $out ($(du -h "$out" | cut -f1)); carry its folder and run"
echo "  FABRIC_GPU_BUNDLE=${out#"$root"/} bash tools/gpu-check.sh"
