# quern_add_plugin(NAME SOURCES...): builds an executor plugin as a MODULE
# library named libquern_<NAME>.so (target quern_<NAME>), with hidden
# visibility so that only the entry symbol quern_executor_entry_v1 (marked
# QUERN_EXPORT) is exported.
#
# One implementation for both users: the in-tree build (included by
# sdk/CMakeLists.txt, where Quern::SDK is an ALIAS of quern_sdk) and third
# parties (included by the installed QuernSDKConfig.cmake, where Quern::SDK is
# the imported target). Keeping a single copy means an installed plugin is
# built exactly like the shipped ones.
#
# Variables read at call time:
#   QUERN_PLUGIN_OUTPUT_DIR   where the .so is written (default: the current
#                             binary dir). The in-tree build sets build/plugins.
#   QUERN_PLUGIN_INSTALL_DIR  install destination (default lib/quern/plugins,
#                             the directory `quern` looks in next to bin/).
include_guard(GLOBAL)

function(quern_add_plugin name)
  if(NOT ARGN)
    message(FATAL_ERROR "quern_add_plugin(${name}): no source files given")
  endif()
  if(NOT TARGET Quern::SDK)
    message(FATAL_ERROR "quern_add_plugin(${name}): target Quern::SDK is missing "
                        "(call find_package(QuernSDK 1 CONFIG REQUIRED) first)")
  endif()
  add_library(quern_${name} MODULE ${ARGN})
  target_link_libraries(quern_${name} PRIVATE Quern::SDK)
  # The C++ wrapper (executor.hpp, process.hpp) needs C++17. A minimum, not a
  # pin: a project that builds with a newer standard (the in-tree C++20) keeps it.
  # Only when C++ is enabled, so that a C-only project can use the helper too.
  get_property(_quern_languages GLOBAL PROPERTY ENABLED_LANGUAGES)
  if("CXX" IN_LIST _quern_languages)
    target_compile_features(quern_${name} PRIVATE cxx_std_17)
  endif()
  set_target_properties(quern_${name} PROPERTIES
    PREFIX "lib"
    CXX_VISIBILITY_PRESET hidden
    C_VISIBILITY_PRESET hidden
    VISIBILITY_INLINES_HIDDEN ON)
  if(DEFINED QUERN_PLUGIN_OUTPUT_DIR)
    set_target_properties(quern_${name} PROPERTIES LIBRARY_OUTPUT_DIRECTORY ${QUERN_PLUGIN_OUTPUT_DIR})
  endif()
  if(DEFINED QUERN_PLUGIN_INSTALL_DIR)
    set(_quern_destination ${QUERN_PLUGIN_INSTALL_DIR})
  else()
    set(_quern_destination lib/quern/plugins)
  endif()
  install(TARGETS quern_${name} LIBRARY DESTINATION ${_quern_destination})
endfunction()
