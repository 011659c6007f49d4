# Finds every dependency from Debian's packages (tools/install-deps.sh installs them) and, when
# nvcc exists, the CUDA toolkit with cuDNN and NCCL wrapped as imported targets.
find_package(Threads REQUIRED)
find_package(OpenMP REQUIRED)
find_package(dnnl REQUIRED)              # DNNL::dnnl; its config needs OpenCL headers (ocl-icd-opencl-dev)
find_package(Eigen3 3.4 REQUIRED NO_MODULE)
find_package(Gloo REQUIRED)              # imported target `gloo`
find_package(yaml-cpp REQUIRED)
find_package(nlohmann_json REQUIRED)
find_package(CLI11 QUIET)
find_package(ZLIB REQUIRED)              # gzip IDX files (runtime/idx_dataset.cpp), the Austen extractor
if(FABRIC_BUILD_TESTS)
  find_package(GTest REQUIRED)
endif()
if(FABRIC_BUILD_BENCH)
  find_package(benchmark QUIET)
endif()

if(FABRIC_HAVE_CUDA)
  # Debian 12's CMake 3.25.1 FindCUDAToolkit sets a property on CUDA::nvToolsExt without checking
  # it exists when the project requires >= 3.25, and CUDA 13 ships no libnvToolsExt: configure
  # fails on a stock Debian 12. The faulty branch is skipped for projects requiring < 3.25.
  set(fabric_min_cmake ${CMAKE_MINIMUM_REQUIRED_VERSION})
  set(CMAKE_MINIMUM_REQUIRED_VERSION 3.24)
  find_package(CUDAToolkit REQUIRED)
  set(CMAKE_MINIMUM_REQUIRED_VERSION ${fabric_min_cmake})
  # cuDNN and NCCL ship no CMake config here: find them beside the toolkit. Never link libcuda:
  # binaries must start on machines without a driver.
  find_path(CUDNN_INCLUDE_DIR cudnn.h HINTS ${CUDAToolkit_INCLUDE_DIRS})
  find_library(CUDNN_LIBRARY cudnn HINTS ${CUDAToolkit_LIBRARY_DIR})
  find_path(NCCL_INCLUDE_DIR nccl.h HINTS ${CUDAToolkit_INCLUDE_DIRS})
  find_library(NCCL_LIBRARY nccl HINTS ${CUDAToolkit_LIBRARY_DIR})
  if(NOT CUDNN_LIBRARY OR NOT NCCL_LIBRARY)
    message(FATAL_ERROR "CUDA found but cuDNN (${CUDNN_LIBRARY}) or NCCL (${NCCL_LIBRARY}) is missing")
  endif()
  add_library(fabric_cudnn INTERFACE)
  target_include_directories(fabric_cudnn INTERFACE ${CUDNN_INCLUDE_DIR})
  target_link_libraries(fabric_cudnn INTERFACE ${CUDNN_LIBRARY})
  add_library(fabric_nccl INTERFACE)
  target_include_directories(fabric_nccl INTERFACE ${NCCL_INCLUDE_DIR})
  target_link_libraries(fabric_nccl INTERFACE ${NCCL_LIBRARY})
endif()
