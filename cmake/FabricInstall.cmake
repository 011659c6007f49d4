# Installs the library, its public headers under include/fabric/<layer>/ and an exported CMake
# package, so an embedding app can `find_package(fabric CONFIG)` and link `fabric::runtime`.
include(CMakePackageConfigHelpers)
# The public headers need C++20 (designated initializers, std::bit_cast, concepts): a consumer that
# sets no standard (g++ 12 defaults to gnu++17) gets it from the package instead of a page of errors.
target_compile_features(fabric_runtime PUBLIC cxx_std_20)
# The installed library keeps the build tree's search path for its dependencies outside the system
# directories (the CUDA toolkit's cudart, cuDNN, NCCL): without it the installed tools and apps start
# only where the loader's config happens to list the toolkit, while build/ ran everywhere.
set_target_properties(fabric_runtime PROPERTIES INSTALL_RPATH_USE_LINK_PATH ON)
install(TARGETS fabric_runtime EXPORT fabricTargets
  LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
  ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
  RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
# Not installed: the implementation headers that include a third-party library's headers (Gloo,
# NCCL and the CUDA runtime, nlohmann/json, yaml-cpp). The package does not find those libraries
# for its users, no public header includes these, and DESIGN.md keeps public headers free of them;
# tests/install/check_install.sh fails on any installed header that includes one. Nor the C API's
# implementation header (runtime/c_api_detail.h: the handles' C++ contents); apps use runtime/c_api.h.
# Nor LBFGS's line search (optim/strong_wolfe.h, optim/lbfgs_numbers.h): internals of optim/lbfgs.cpp
# whose rounding depends on the library's own floating-point contraction settings.
set(FABRIC_PRIVATE_HEADERS distributed/gloo_group.h distributed/nccl_comm.h runtime/checkpoint_detail.h
                           runtime/sharded_checkpoint_reader.h runtime/train_config_fields.h
                           runtime/c_api_detail.h optim/strong_wolfe.h optim/lbfgs_numbers.h
                           precision/pyyaml_compat.h)
foreach(layer tensor autograd nn optim precision distributed runtime)
  set(excludes)
  foreach(header IN LISTS FABRIC_PRIVATE_HEADERS)
    if(header MATCHES "^${layer}/(.*)$")
      list(APPEND excludes PATTERN ${CMAKE_MATCH_1} EXCLUDE)
    endif()
  endforeach()
  install(DIRECTORY ${PROJECT_SOURCE_DIR}/${layer}/ DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/fabric/${layer}
          FILES_MATCHING PATTERN "*.h" ${excludes})
endforeach()
install(FILES ${PROJECT_SOURCE_DIR}/cmake/fabric.h DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/fabric)
install(EXPORT fabricTargets NAMESPACE fabric:: FILE fabricTargets.cmake
        DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/fabric)
configure_package_config_file(${PROJECT_SOURCE_DIR}/cmake/fabricConfig.cmake.in
  ${PROJECT_BINARY_DIR}/fabricConfig.cmake INSTALL_DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/fabric)
write_basic_package_version_file(${PROJECT_BINARY_DIR}/fabricConfigVersion.cmake
  VERSION ${PROJECT_VERSION} COMPATIBILITY SameMinorVersion)
install(FILES ${PROJECT_BINARY_DIR}/fabricConfig.cmake ${PROJECT_BINARY_DIR}/fabricConfigVersion.cmake
        DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/fabric)
# The same for builds without CMake: lib/pkgconfig/fabric.pc (the target's include directories,
# C++20 and public definitions as flags; the prefix relative to the file's own folder).
file(RELATIVE_PATH FABRIC_PC_PREFIX_FROM_PCDIR ${CMAKE_INSTALL_FULL_LIBDIR}/pkgconfig ${CMAKE_INSTALL_PREFIX})
string(REGEX REPLACE "/$" "" FABRIC_PC_PREFIX_FROM_PCDIR "${FABRIC_PC_PREFIX_FROM_PCDIR}")
set(FABRIC_PC_DEFINES "")
if(FABRIC_HAVE_CUDA)
  set(FABRIC_PC_DEFINES " -DFABRIC_WITH_CUDA=1")
endif()
configure_file(${PROJECT_SOURCE_DIR}/cmake/fabric.pc.in ${PROJECT_BINARY_DIR}/fabric.pc @ONLY)
install(FILES ${PROJECT_BINARY_DIR}/fabric.pc DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig)
# The C API (runtime/c_api.h) reports the package's version (fabric_version). fabric_home()
# (runtime/fabric_home.h: fabric-train's and the C API's) finds the bundled configs and data in the
# source tree the library was built from, before the installed <prefix>/share/fabric, which it finds
# from the installed library's folder (lib, or a multiarch lib/<triplet>). Set on those files only,
# so that a version bump rebuilds one file instead of the library.
set_source_files_properties(${PROJECT_SOURCE_DIR}/runtime/c_api_errors.cpp PROPERTIES
  COMPILE_DEFINITIONS "FABRIC_PACKAGE_VERSION=\"${PROJECT_VERSION}\"")
file(RELATIVE_PATH fabric_home_from_libdir ${CMAKE_INSTALL_FULL_LIBDIR}
     ${CMAKE_INSTALL_FULL_DATADIR}/fabric)
set_source_files_properties(${PROJECT_SOURCE_DIR}/runtime/fabric_home.cpp PROPERTIES
  COMPILE_DEFINITIONS
  "FABRIC_SOURCE_DIR=\"${PROJECT_SOURCE_DIR}\";FABRIC_HOME_FROM_LIBDIR=\"${fabric_home_from_libdir}\"")
