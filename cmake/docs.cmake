# The API reference: Doxygen (Debian's `doxygen`) over the public headers,
# HTML in build/docs/html and man pages in build/docs/man (installed under
# share/man/man3: `man cio_create_task`). Part of the default build when
# doxygen is installed; it fails on an undocumented public name.
find_package(Doxygen QUIET)
set(_cio_docs_default OFF)
if(DOXYGEN_FOUND AND CIO_TOP_LEVEL)
  set(_cio_docs_default ON)
endif()
option(CIO_BUILD_DOCS "Build the API reference and man pages (needs doxygen)" ${_cio_docs_default})
if(CIO_BUILD_DOCS)
  if(NOT DOXYGEN_FOUND)
    message(FATAL_ERROR "cio: CIO_BUILD_DOCS needs doxygen (Debian: apt-get install doxygen)")
  endif()
  configure_file(${PROJECT_SOURCE_DIR}/docs/Doxyfile.in ${PROJECT_BINARY_DIR}/Doxyfile @ONLY)
  file(GLOB _cio_doc_inputs CONFIGURE_DEPENDS
       ${PROJECT_SOURCE_DIR}/include/cio.h ${PROJECT_SOURCE_DIR}/include/cio/*.h
       ${PROJECT_SOURCE_DIR}/docs/*.md)
  set(_cio_docs_stamp ${PROJECT_BINARY_DIR}/docs/stamp)
  add_custom_command(
    OUTPUT ${_cio_docs_stamp}
    COMMAND ${CMAKE_COMMAND} -E remove_directory ${PROJECT_BINARY_DIR}/docs/man
    COMMAND Doxygen::doxygen ${PROJECT_BINARY_DIR}/Doxyfile
    COMMAND ${CMAKE_COMMAND} -E touch ${_cio_docs_stamp}
    DEPENDS ${_cio_doc_inputs} ${PROJECT_BINARY_DIR}/include/cio/version.h
            ${PROJECT_SOURCE_DIR}/tools/doxygen-filter.awk ${PROJECT_BINARY_DIR}/Doxyfile
    WORKING_DIRECTORY ${PROJECT_SOURCE_DIR}
    COMMENT "cio: API reference (build/docs/html/index.html) and man pages"
    VERBATIM)
  add_custom_target(docs ALL DEPENDS ${_cio_docs_stamp})
  if(CIO_INSTALL)
    install(DIRECTORY ${PROJECT_BINARY_DIR}/docs/man/man3 DESTINATION ${CMAKE_INSTALL_MANDIR})
  endif()
endif()
