#!/usr/bin/env bash
# Prepares Debian's OpenMP OpenBLAS, unpacked (not installed), so that PyTorch's float32 matmul in
# the benchmarks runs on a real BLAS instead of the netlib reference, and prints the environment.
# Usage: eval "$(tools/bench/torch_env.sh)"   (idempotent; FABRIC_OPENBLAS_DIR overrides the place)
set -u
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
dir="${FABRIC_OPENBLAS_DIR:-$root/build/openblas}"
lib="$dir/usr/lib/x86_64-linux-gnu/openblas-openmp"

if [ ! -e "$lib/libblas.so.3" ]; then
  tmp="$(mktemp -d)"
  chmod 755 "$tmp"  # apt's _apt user must be able to write the download there
  if (cd "$tmp" && apt-get download -q libopenblas0-openmp >/dev/null 2>&1) &&
     mkdir -p "$dir" && dpkg-deb -x "$tmp"/libopenblas0-openmp_*.deb "$dir"; then
    echo "torch_env: unpacked libopenblas0-openmp into $dir" >&2
  else
    echo "torch_env: could not fetch libopenblas0-openmp (apt-get download failed);" \
         "torch will use the system libblas" >&2
  fi
  rm -rf "$tmp"
fi

if [ -e "$lib/libblas.so.3" ]; then
  echo "export LD_LIBRARY_PATH=\"$lib\${LD_LIBRARY_PATH:+:\$LD_LIBRARY_PATH}\""
  # OpenBLAS 0.3.21 does not recognise the newer AMD CPUs this project has run on and would pick a
  # generic kernel set, so the set is named from the CPU's flags: COOPERLAKE (AVX-512 + BF16),
  # SKYLAKEX (AVX-512), HASWELL (AVX2 + FMA: the set OpenBLAS itself uses on AMD Zen). Set over any
  # inherited value (a sandbox may export Haswell for other tools); FABRIC_OPENBLAS_CORETYPE picks
  # another, e.g. HASWELL to compare on an AVX2 footing on an AVX-512 machine.
  flags=$(grep -m1 '^flags' /proc/cpuinfo 2>/dev/null)
  core=HASWELL
  case " $flags " in *" avx512f "*) core=SKYLAKEX ;; esac
  case " $flags " in *" avx512_bf16 "*) core=COOPERLAKE ;; esac
  echo "export OPENBLAS_CORETYPE=\"${FABRIC_OPENBLAS_CORETYPE:-$core}\""
fi
exit 0
