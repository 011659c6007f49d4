# Installs the library, its public headers under include/fabric/<layer>/ and an exported CMake
# package, so an embedding app can `find_package(fabric CONFIG)` and link `fabric::runtime`.
include(CMakePackageConfigHelpers)
install(TARGETS fabric_runtime EXPORT fabricTargets
  LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
  ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
  RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
foreach(layer tensor autograd nn optim precision distributed runtime)
  install(DIRECTORY ${PROJECT_SOURCE_DIR}/${layer}/ DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/fabric/${layer}
          FILES_MATCHING PATTERN "*.h")
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
