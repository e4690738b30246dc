# Stand-ins for the Slicer / CTK macros the extension calls (see SlicerConfig.cmake).
include(CMakeParseArguments)

macro(ctkMacroCompilePythonScript)
  cmake_parse_arguments(MY "NO_INSTALL_SUBDIR" "TARGET_NAME;SOURCE_DIR;DESTINATION_DIR;INSTALL_DIR" "SCRIPTS;RESOURCES" ${ARGN})
  if(NOT MY_SOURCE_DIR)
    set(MY_SOURCE_DIR ${CMAKE_CURRENT_SOURCE_DIR})
  endif()
  foreach(_file ${MY_SCRIPTS} ${MY_RESOURCES})
    if(NOT EXISTS ${MY_SOURCE_DIR}/${_file})
      message(FATAL_ERROR "${MY_TARGET_NAME}: missing ${MY_SOURCE_DIR}/${_file}")
    endif()
    get_filename_component(_subdir ${_file} DIRECTORY)
    file(COPY ${MY_SOURCE_DIR}/${_file} DESTINATION ${MY_DESTINATION_DIR}/${_subdir})
    install(FILES ${MY_SOURCE_DIR}/${_file} DESTINATION ${MY_INSTALL_DIR}/${_subdir})
  endforeach()
endmacro()

macro(slicerMacroBuildScriptedModule)
  cmake_parse_arguments(MY_SLICER "WITH_GENERIC_TESTS;WITH_SUBDIR;VERBOSE" "NAME" "SCRIPTS;RESOURCES" ${ARGN})
  ctkMacroCompilePythonScript(
    TARGET_NAME ${MY_SLICER_NAME}
    SCRIPTS "${MY_SLICER_SCRIPTS}"
    RESOURCES "${MY_SLICER_RESOURCES}"
    DESTINATION_DIR ${CMAKE_BINARY_DIR}/${Slicer_QTSCRIPTEDMODULES_LIB_DIR}
    INSTALL_DIR ${Slicer_INSTALL_QTSCRIPTEDMODULES_LIB_DIR}
    NO_INSTALL_SUBDIR
    )
endmacro()

macro(slicer_add_python_unittest)
endmacro()
