# FABRIC_NATIVE_FLAGS: what compiles the library, tests and tools for a CPU, plus a workaround
# where the compiler is known to get that wrong. FABRIC_NATIVE=ON (the default) compiles for the
# build machine's CPU (-march=native); OFF for any x86-64 CPU with AVX2, FMA and F16C
# (-march=x86-64-v3: the least the CPU kernels need, the AVX-512 ones then run emulated, see
# kernels/cpu/x86_simd.h), for binaries carried to another machine (tools/gpu-bundle.sh): a
# -march=native build from an AVX-512 CPU stops with SIGILL on one without it, and one from a CPU
# with AVX-VNNI or VP2INTERSECT can on a CPU of another vendor.
#
# GCC 12.2 (Debian 12's compiler) with AVX-512 enabled materialises some vector constants that
# its basic-block (SLP) vectorizer builds as a broadcast of their first element: a
# `std::vector<double> want = {1.0, 1.0, 0.0, 0.0}` held across calls in a loop reads back
# 1, 1, 1, 1. A test of ours hit it. cmake/native_constant_check.cpp reproduces it; when it fails
# with -O3 and the chosen -march and passes with -fno-tree-slp-vectorize added, that flag joins
# (loop vectorization, which the kernels rely on, is a different pass and stays). If even that
# does not help, the portable -march=x86-64-v3 is taken with a warning: slower, but right.
set(FABRIC_NATIVE_FLAGS)
if(FABRIC_NATIVE)
  set(fabric_march -march=native)
else()
  set(fabric_march -march=x86-64-v3)
endif()
set(FABRIC_NATIVE_FLAGS ${fabric_march})
if(CMAKE_CXX_COMPILER_ID STREQUAL "GNU")
  set(check_src ${PROJECT_SOURCE_DIR}/cmake/native_constant_check.cpp)
  try_run(FABRIC_NATIVE_CONSTANT_RUN FABRIC_NATIVE_CONSTANT_COMPILE
          ${CMAKE_BINARY_DIR}/native_constant_check ${check_src}
          COMPILE_DEFINITIONS -O3 ${fabric_march})
  if(NOT FABRIC_NATIVE_CONSTANT_COMPILE OR NOT FABRIC_NATIVE_CONSTANT_RUN EQUAL 0)
    try_run(FABRIC_NATIVE_CONSTANT_RUN_NO_SLP FABRIC_NATIVE_CONSTANT_COMPILE_NO_SLP
            ${CMAKE_BINARY_DIR}/native_constant_check_no_slp ${check_src}
            COMPILE_DEFINITIONS -O3 ${fabric_march} -fno-tree-slp-vectorize)
    if(FABRIC_NATIVE_CONSTANT_COMPILE_NO_SLP AND FABRIC_NATIVE_CONSTANT_RUN_NO_SLP EQUAL 0)
      list(APPEND FABRIC_NATIVE_FLAGS -fno-tree-slp-vectorize)
      message(STATUS "fabric: ${CMAKE_CXX_COMPILER_ID} ${CMAKE_CXX_COMPILER_VERSION} miscompiles "
                     "vector constants with ${fabric_march}; adding -fno-tree-slp-vectorize")
    else()
      set(FABRIC_NATIVE_FLAGS -march=x86-64-v3)
      message(WARNING "fabric: ${CMAKE_CXX_COMPILER_ID} ${CMAKE_CXX_COMPILER_VERSION} miscompiles "
                      "cmake/native_constant_check.cpp with ${fabric_march}; building for "
                      "-march=x86-64-v3 instead")
    endif()
  endif()
  # On a CPU without AVX-512 the kernels' 16-lane vectors are emulated (kernels/cpu/x86_simd.h)
  # and GCC notes at every inlined function taking one that its ABI would differ from an
  # AVX-512 build's: nothing crosses a library boundary in them, so the note is noise.
  list(APPEND FABRIC_NATIVE_FLAGS -Wno-psabi)
  # There, a kernel lambda GCC keeps out of line takes and returns its 64-byte vectors through
  # the stack; GCC writes them in 16-byte pieces and the callee reads 32 bytes at a time, so every
  # call waits for a failed store forward (exp ran at a quarter of its inlined speed, 2026-12-04).
  # Moves and stores of up to 256 bits make the two sides match. Only how bytes are copied
  # changes, never a result.
  include(CheckCXXSourceCompiles)
  string(MAKE_C_IDENTIFIER "${fabric_march}" march_id)
  set(CMAKE_REQUIRED_FLAGS "${fabric_march}")
  check_cxx_source_compiles("#ifndef __AVX512F__\n#error emulated\n#endif\nint main() { return 0; }"
                            FABRIC_HAS_AVX512${march_id})
  unset(CMAKE_REQUIRED_FLAGS)
  if(NOT FABRIC_HAS_AVX512${march_id})
    list(APPEND FABRIC_NATIVE_FLAGS -mmove-max=256 -mstore-max=256)
  endif()
endif()
