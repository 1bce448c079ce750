# Third-party dependencies. Normally from the system (Debian packages installed by
# scripts/bootstrap). With AISP_DEPS_DIR set (a folder made by scripts/stage-deps), the header-only
# libraries come from there and GoogleTest is built from its sources: that is how a GPU machine with
# no package registry builds aisp.
set(AISP_DEPS_DIR "" CACHE PATH "Folder of staged dependencies (scripts/stage-deps); empty: use the system's")

if(AISP_DEPS_DIR)
  message(STATUS "aisp: dependencies from ${AISP_DEPS_DIR}")
  add_library(aisp_dep_json INTERFACE)
  target_include_directories(aisp_dep_json SYSTEM INTERFACE ${AISP_DEPS_DIR}/include)
  add_library(nlohmann_json::nlohmann_json ALIAS aisp_dep_json)
  add_library(aisp_dep_cli11 INTERFACE)
  target_include_directories(aisp_dep_cli11 SYSTEM INTERFACE ${AISP_DEPS_DIR}/include)
  add_library(CLI11::CLI11 ALIAS aisp_dep_cli11)
  add_library(aisp_dep_fmt INTERFACE)
  target_include_directories(aisp_dep_fmt SYSTEM INTERFACE ${AISP_DEPS_DIR}/include)
  target_compile_definitions(aisp_dep_fmt INTERFACE FMT_HEADER_ONLY=1)
  add_library(fmt::fmt ALIAS aisp_dep_fmt)
  set(AISP_GTEST_FROM_SOURCE ${AISP_DEPS_DIR}/googletest)
else()
  find_package(nlohmann_json 3 REQUIRED)
  find_package(fmt REQUIRED)
  find_package(CLI11 REQUIRED)
endif()
find_package(Threads REQUIRED)

# CUTLASS/CuTe headers, pinned (nvidia-cutlass 4.2.0.0) and unpacked by scripts/bootstrap.
set(AISP_CUTLASS_DIR "${PROJECT_SOURCE_DIR}/third_party/cutlass/include" CACHE PATH "CUTLASS include folder")
if(EXISTS ${AISP_CUTLASS_DIR}/cutlass/cutlass.h)
  add_library(aisp_cutlass INTERFACE)
  target_include_directories(aisp_cutlass SYSTEM INTERFACE ${AISP_CUTLASS_DIR})
  set(AISP_HAVE_CUTLASS ON)
  message(STATUS "aisp: CUTLASS headers at ${AISP_CUTLASS_DIR}")
else()
  set(AISP_HAVE_CUTLASS OFF)
  message(STATUS "aisp: no CUTLASS headers (run scripts/bootstrap); CUTLASS variants are not built")
endif()
