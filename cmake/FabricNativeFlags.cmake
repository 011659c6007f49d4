# FABRIC_NATIVE_FLAGS: what compiles the library, tests and tools for this machine's CPU
# (-march=native), plus a workaround where the compiler is known to get that wrong.
#
# GCC 12.2 (Debian 12's compiler) with AVX-512 enabled materialises some vector constants that
# its basic-block (SLP) vectorizer builds as a broadcast of their first element: a
# `std::vector<double> want = {1.0, 1.0, 0.0, 0.0}` held across calls in a loop reads back
# 1, 1, 1, 1. A test of ours hit it. cmake/native_constant_check.cpp reproduces it; when it fails
# with -O3 -march=native and passes with -fno-tree-slp-vectorize added, that flag joins (loop
# vectorization, which the kernels rely on, is a different pass and stays). If even that does not
# help, -march=native is dropped with a warning: slower, but right.
set(FABRIC_NATIVE_FLAGS)
if(FABRIC_NATIVE)
  set(FABRIC_NATIVE_FLAGS -march=native)
  if(CMAKE_CXX_COMPILER_ID STREQUAL "GNU")
    set(check_src ${PROJECT_SOURCE_DIR}/cmake/native_constant_check.cpp)
    try_run(FABRIC_NATIVE_CONSTANT_RUN FABRIC_NATIVE_CONSTANT_COMPILE
            ${CMAKE_BINARY_DIR}/native_constant_check ${check_src}
            COMPILE_DEFINITIONS -O3 -march=native)
    if(NOT FABRIC_NATIVE_CONSTANT_COMPILE OR NOT FABRIC_NATIVE_CONSTANT_RUN EQUAL 0)
      try_run(FABRIC_NATIVE_CONSTANT_RUN_NO_SLP FABRIC_NATIVE_CONSTANT_COMPILE_NO_SLP
              ${CMAKE_BINARY_DIR}/native_constant_check_no_slp ${check_src}
              COMPILE_DEFINITIONS -O3 -march=native -fno-tree-slp-vectorize)
      if(FABRIC_NATIVE_CONSTANT_COMPILE_NO_SLP AND FABRIC_NATIVE_CONSTANT_RUN_NO_SLP EQUAL 0)
        list(APPEND FABRIC_NATIVE_FLAGS -fno-tree-slp-vectorize)
        message(STATUS "fabric: ${CMAKE_CXX_COMPILER_ID} ${CMAKE_CXX_COMPILER_VERSION} miscompiles "
                       "vector constants with -march=native; adding -fno-tree-slp-vectorize")
      else()
        set(FABRIC_NATIVE_FLAGS)
        message(WARNING "fabric: ${CMAKE_CXX_COMPILER_ID} ${CMAKE_CXX_COMPILER_VERSION} miscompiles "
                        "cmake/native_constant_check.cpp with -march=native; building without it")
      endif()
    endif()
    # On a CPU without AVX-512 the kernels' 16-lane vectors are emulated (kernels/cpu/x86_simd.h)
    # and GCC notes at every inlined function taking one that its ABI would differ from an
    # AVX-512 build's: nothing crosses a library boundary in them, so the note is noise.
    list(APPEND FABRIC_NATIVE_FLAGS -Wno-psabi)
  endif()
endif()
