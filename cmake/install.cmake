# Installing the library (`cmake --install build --prefix DIR`; docs/library.md):
#   DIR/include/linformer/*.hpp          the public API (datasets.hpp, bench.hpp and serve.hpp, the tools beside it, excepted)
#   DIR/lib/liblinformer.so.X.Y.Z, .a    shared and static library
#   DIR/lib/cmake/linformer/             find_package(linformer CONFIG) -> linformer::linformer (shared)
#   DIR/lib/pkgconfig/linformer.pc       pkg-config --cflags --libs [--static] linformer
#   DIR/bin/linformer                    the command
include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

# The shared library: the same objects as the static one. Its dependencies are private (the
# public headers need only nlohmann/json_fwd.hpp), so users link it alone.
add_library(linformer_shared SHARED)
foreach(floor IN LISTS LINFORMER_LIBRARY_FLOORS)
  target_sources(linformer_shared PRIVATE $<TARGET_OBJECTS:linformer_${floor}>)
endforeach()
set_target_properties(linformer_shared PROPERTIES OUTPUT_NAME linformer EXPORT_NAME linformer
                      VERSION ${PROJECT_VERSION} SOVERSION ${PROJECT_VERSION_MAJOR}.${PROJECT_VERSION_MINOR})
target_include_directories(linformer_shared PUBLIC $<BUILD_INTERFACE:${PROJECT_SOURCE_DIR}/include>
                                                   $<INSTALL_INTERFACE:${CMAKE_INSTALL_INCLUDEDIR}>)
target_compile_features(linformer_shared PUBLIC cxx_std_20)
target_link_libraries(linformer_shared PUBLIC nlohmann_json::nlohmann_json
                      PRIVATE OpenMP::OpenMP_CXX dnnl_c fmt::fmt PkgConfig::SPM LAPACK::LAPACK)
if(MPI_C_FOUND)
  target_link_libraries(linformer_shared PRIVATE MPI::MPI_C)
endif()

file(GLOB _lf_public_headers ${PROJECT_SOURCE_DIR}/include/linformer/*.hpp)
list(REMOVE_ITEM _lf_public_headers ${PROJECT_SOURCE_DIR}/include/linformer/datasets.hpp)
foreach(h IN LISTS LINFORMER_CLIENT_HEADERS)  # the bench suite's and the server's: their libraries are not installed
  list(REMOVE_ITEM _lf_public_headers ${PROJECT_SOURCE_DIR}/include/linformer/${h})
endforeach()
install(FILES ${_lf_public_headers} DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/linformer)
install(TARGETS linformer_shared EXPORT linformerTargets
        LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR} ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR})
install(TARGETS linformer_lib ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR})
install(TARGETS linformer RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})

set(_lf_cmake_dir ${CMAKE_INSTALL_LIBDIR}/cmake/linformer)
install(EXPORT linformerTargets NAMESPACE linformer:: DESTINATION ${_lf_cmake_dir})
file(WRITE ${CMAKE_BINARY_DIR}/linformerConfig.cmake.in [=[
# The linformer library's CMake package: find_package(linformer CONFIG) gives linformer::linformer.
@PACKAGE_INIT@
include(CMakeFindDependencyMacro)
find_dependency(nlohmann_json)
include("${CMAKE_CURRENT_LIST_DIR}/linformerTargets.cmake")
check_required_components(linformer)
]=])
configure_package_config_file(${CMAKE_BINARY_DIR}/linformerConfig.cmake.in ${CMAKE_BINARY_DIR}/linformerConfig.cmake
                              INSTALL_DESTINATION ${_lf_cmake_dir})
write_basic_package_version_file(${CMAKE_BINARY_DIR}/linformerConfigVersion.cmake VERSION ${PROJECT_VERSION}
                                 COMPATIBILITY SameMinorVersion)
install(FILES ${CMAKE_BINARY_DIR}/linformerConfig.cmake ${CMAKE_BINARY_DIR}/linformerConfigVersion.cmake
        DESTINATION ${_lf_cmake_dir})

# pkg-config: the static library's dependencies go in Libs.private / Requires.private.
set(_lf_mpi_libs "")
if(MPI_C_FOUND)
  foreach(l ${MPI_C_LIBRARIES})
    string(APPEND _lf_mpi_libs " ${l}")
  endforeach()
endif()
file(WRITE ${CMAKE_BINARY_DIR}/linformer.pc.in [=[
prefix=@CMAKE_INSTALL_PREFIX@
libdir=${prefix}/@CMAKE_INSTALL_LIBDIR@
includedir=${prefix}/@CMAKE_INSTALL_INCLUDEDIR@

Name: linformer
Description: Linformer and Transformer encoders on the CPU: training, inference, model files
Version: @PROJECT_VERSION@
Requires: nlohmann_json
Requires.private: sentencepiece fmt lapack
Libs: -L${libdir} -llinformer
Libs.private: @DNNL_LIBRARY@ -fopenmp@_lf_mpi_libs@
Cflags: -I${includedir} -std=c++20
]=])
# CMAKE_INSTALL_PREFIX is read at install time (cmake --install --prefix), so the file is made then.
install(CODE "
  set(CMAKE_INSTALL_PREFIX \"\${CMAKE_INSTALL_PREFIX}\")
  set(CMAKE_INSTALL_LIBDIR \"${CMAKE_INSTALL_LIBDIR}\")
  set(CMAKE_INSTALL_INCLUDEDIR \"${CMAKE_INSTALL_INCLUDEDIR}\")
  set(PROJECT_VERSION \"${PROJECT_VERSION}\")
  set(DNNL_LIBRARY \"${DNNL_LIBRARY}\")
  set(_lf_mpi_libs \"${_lf_mpi_libs}\")
  configure_file(\"${CMAKE_BINARY_DIR}/linformer.pc.in\" \"${CMAKE_BINARY_DIR}/install-pc/linformer.pc\" @ONLY)
  file(INSTALL \"${CMAKE_BINARY_DIR}/install-pc/linformer.pc\" DESTINATION \"\${CMAKE_INSTALL_PREFIX}/${CMAKE_INSTALL_LIBDIR}/pkgconfig\")
")
