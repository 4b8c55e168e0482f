# linformer_floor(NAME DIRS <src folders> [HEADERS <public headers>] [BELOW <floors>])
#
# Declares one floor of the library: an OBJECT library `linformer_NAME` built from the .cpp files
# under src/<DIRS>, whose include path is a view made of links to exactly what it may see: its own
# and every lower floor's src folders and public headers (include/linformer/<HEADERS>). An include
# of anything else, e.g. "train/run_dir.hpp" from src/nn or "linformer/trainer.hpp" from src/io,
# is "No such file" at compile time. Floors must be declared bottom up.
set(LINFORMER_FLOORS "")
set(LINFORMER_FLOOR_VIEWS_DIR ${CMAKE_BINARY_DIR}/floors)
file(REMOVE_RECURSE ${LINFORMER_FLOOR_VIEWS_DIR})  # a header moved to another floor leaves no stale link

function(linformer_floor name)
  cmake_parse_arguments(F "" "" "DIRS;HEADERS;BELOW" ${ARGN})
  # What this floor sees: its own folders and headers, then everything its lower floors see.
  set(dirs ${F_DIRS})
  set(headers ${F_HEADERS})
  foreach(below ${F_BELOW})
    if(NOT below IN_LIST LINFORMER_FLOORS)
      message(FATAL_ERROR "floor ${name}: floor '${below}' below it is not declared (declare floors bottom up)")
    endif()
    list(APPEND dirs ${LINFORMER_FLOOR_${below}_SEES_DIRS})
    list(APPEND headers ${LINFORMER_FLOOR_${below}_SEES_HEADERS})
  endforeach()
  list(REMOVE_DUPLICATES dirs)
  list(REMOVE_DUPLICATES headers)
  set(LINFORMER_FLOOR_${name}_SEES_DIRS ${dirs} PARENT_SCOPE)
  set(LINFORMER_FLOOR_${name}_SEES_HEADERS ${headers} PARENT_SCOPE)
  foreach(h ${F_HEADERS})
    set_property(GLOBAL APPEND PROPERTY LINFORMER_FLOORED_HEADERS ${h})
  endforeach()

  set(view ${LINFORMER_FLOOR_VIEWS_DIR}/${name})
  file(MAKE_DIRECTORY ${view}/linformer)
  foreach(d ${dirs})
    file(CREATE_LINK ${PROJECT_SOURCE_DIR}/src/${d} ${view}/${d} SYMBOLIC)
  endforeach()
  foreach(h ${headers})
    if(NOT EXISTS ${PROJECT_SOURCE_DIR}/include/linformer/${h})
      message(FATAL_ERROR "floor ${name}: include/linformer/${h} does not exist")
    endif()
    file(CREATE_LINK ${PROJECT_SOURCE_DIR}/include/linformer/${h} ${view}/linformer/${h} SYMBOLIC)
  endforeach()

  set(sources "")
  foreach(d ${F_DIRS})
    file(GLOB_RECURSE found CONFIGURE_DEPENDS ${PROJECT_SOURCE_DIR}/src/${d}/*.cpp)
    list(APPEND sources ${found})
  endforeach()
  add_library(linformer_${name} OBJECT ${sources})
  target_include_directories(linformer_${name} PRIVATE ${view})
  # Third-party headers every floor may use; floor-specific ones are added by the caller.
  target_link_libraries(linformer_${name} PRIVATE OpenMP::OpenMP_CXX nlohmann_json::nlohmann_json fmt::fmt)
  # -fno-trapping-math: we never read floating-point exception flags, and without it GCC will not
  # if-convert (so not vectorize) loops with selects, such as GELU's (src/kernels/kernels.cpp).
  # Results are unchanged: it only lets the compiler evaluate both sides of a select.
  target_compile_options(linformer_${name} PRIVATE -Wall -Wextra -fno-trapping-math)
  set_target_properties(linformer_${name} PROPERTIES POSITION_INDEPENDENT_CODE ON)
  set(LINFORMER_FLOORS ${LINFORMER_FLOORS} ${name} PARENT_SCOPE)
endfunction()

# Every public header belongs to exactly one floor (else the floors' views would silently miss it).
function(linformer_check_every_header_has_a_floor)
  get_property(floored GLOBAL PROPERTY LINFORMER_FLOORED_HEADERS)
  file(GLOB all RELATIVE ${PROJECT_SOURCE_DIR}/include/linformer ${PROJECT_SOURCE_DIR}/include/linformer/*.hpp)
  foreach(h ${all})
    list(FIND floored ${h} at)
    if(at EQUAL -1 AND NOT h IN_LIST LINFORMER_CLIENT_HEADERS)
      message(FATAL_ERROR "include/linformer/${h} belongs to no floor: add it to one linformer_floor(... HEADERS ...) in CMakeLists.txt")
    endif()
  endforeach()
  list(LENGTH floored n)
  set(unique ${floored})
  list(REMOVE_DUPLICATES unique)
  list(LENGTH unique u)
  if(NOT n EQUAL u)
    message(FATAL_ERROR "a public header is listed on two floors: ${floored}")
  endif()
endfunction()
