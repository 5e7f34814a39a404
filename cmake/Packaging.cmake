# The Debian packages, built with CPack from the normal build:
#   cmake --build build --target package     (or: cd build && cpack)
# quern      the daemon and CLI (/usr/bin), quern-slot, the plugins
#            (/usr/lib/quern/plugins, found next to the binary), the config
#            (/etc/quern/quern.xml, a conffile), the systemd units, the docs;
#            a `quern` system user made at install (postinst).
# quern-dev  the SDK: headers, CMake package, pkg-config file, example plugins.
# Depends: computed by dpkg-shlibdeps from the binaries, plus the programs
# Quern runs (bubblewrap); PostgreSQL (the embedded default) and python3
# (the python plugin) are recommended. Checked by lintian in tests/deploy.
include(GNUInstallDirs)

set(QUERN_DEBIAN_DIR ${PROJECT_SOURCE_DIR}/deploy/debian)
set(QUERN_DOC_DIR ${CMAKE_INSTALL_DATADIR}/doc/quern)

install(FILES ${QUERN_DEBIAN_DIR}/quern.xml DESTINATION /etc/quern COMPONENT Unspecified)
install(FILES ${PROJECT_SOURCE_DIR}/deploy/systemd/quern-server.service
              ${PROJECT_SOURCE_DIR}/deploy/systemd/quern-worker@.service
              ${PROJECT_SOURCE_DIR}/deploy/systemd/quern-up.service
        DESTINATION /lib/systemd/system COMPONENT Unspecified)
install(DIRECTORY ${PROJECT_SOURCE_DIR}/docs/ DESTINATION ${QUERN_DOC_DIR} COMPONENT Unspecified
        FILES_MATCHING PATTERN "*.md" PATTERN "*.yaml")
install(DIRECTORY ${PROJECT_SOURCE_DIR}/examples/ DESTINATION ${QUERN_DOC_DIR}/examples COMPONENT Unspecified
        FILES_MATCHING PATTERN "*.sh" PATTERN "plugins" EXCLUDE)

# Debian wants a copyright file and a compressed changelog (changelog.gz: a
# native package) in every package's doc directory.
set(QUERN_PACKAGE_GEN ${CMAKE_BINARY_DIR}/debian)
file(MAKE_DIRECTORY ${QUERN_PACKAGE_GEN})
string(TIMESTAMP QUERN_CHANGELOG_DATE "%a, %d %b %Y %H:%M:%S +0000" UTC)
file(WRITE ${QUERN_PACKAGE_GEN}/changelog
     "quern (${PROJECT_VERSION}) unstable; urgency=medium\n\n"
     "  * Built from the Quern sources with CPack.\n\n"
     " -- Quern maintainers <maintainers@quern.invalid>  ${QUERN_CHANGELOG_DATE}\n")
execute_process(COMMAND gzip -9nf ${QUERN_PACKAGE_GEN}/changelog)
foreach(component Unspecified sdk)
  if(component STREQUAL "sdk")
    set(doc ${CMAKE_INSTALL_DATADIR}/doc/quern-dev)
  else()
    set(doc ${QUERN_DOC_DIR})
  endif()
  install(FILES ${QUERN_DEBIAN_DIR}/copyright ${QUERN_PACKAGE_GEN}/changelog.gz DESTINATION ${doc}
          COMPONENT ${component})
endforeach()
file(WRITE ${QUERN_PACKAGE_GEN}/conffiles "/etc/quern/quern.xml\n")
# The one lintian override, with its reason in the file.
install(FILES ${QUERN_DEBIAN_DIR}/quern-dev.lintian-overrides DESTINATION ${CMAKE_INSTALL_DATADIR}/lintian/overrides
        RENAME quern-dev COMPONENT sdk)

set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME quern)
set(CPACK_PACKAGE_VENDOR "Quern")
set(CPACK_PACKAGE_CONTACT "Quern maintainers <maintainers@quern.invalid>")
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_STRIP_FILES ON)
set(CPACK_DEB_COMPONENT_INSTALL ON)
set(CPACK_COMPONENTS_ALL Unspecified sdk)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_SECTION admin)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_PACKAGE_GENERATE_SHLIBS OFF)

set(CPACK_DEBIAN_UNSPECIFIED_PACKAGE_NAME quern)
set(CPACK_DEBIAN_UNSPECIFIED_PACKAGE_DEPENDS "bubblewrap, adduser")
set(CPACK_DEBIAN_UNSPECIFIED_PACKAGE_RECOMMENDS "postgresql, python3")
string(CONCAT CPACK_COMPONENT_UNSPECIFIED_DESCRIPTION
       "job orchestrator on PostgreSQL\n"
       "Quern runs scripts and jobs (bash, Python, SQL, HTTP calls, GPU work) from a\n"
       "PostgreSQL queue: a server with an HTTP API, workers that claim jobs and run\n"
       "each in a bubblewrap sandbox with a cgroup of its own, and agents that reach\n"
       "the server over HTTP only. quern up runs everything on one machine.")
set(CPACK_DEBIAN_UNSPECIFIED_PACKAGE_CONTROL_EXTRA ${QUERN_DEBIAN_DIR}/postinst ${QUERN_PACKAGE_GEN}/conffiles)

set(CPACK_DEBIAN_SDK_PACKAGE_NAME quern-dev)
set(CPACK_DEBIAN_SDK_PACKAGE_SECTION libdevel)
set(CPACK_DEBIAN_SDK_PACKAGE_ARCHITECTURE all)
set(CPACK_DEBIAN_SDK_PACKAGE_SHLIBDEPS OFF)
string(CONCAT CPACK_COMPONENT_SDK_DESCRIPTION
       "SDK for Quern executor plugins\n"
       "Headers of Quern's stable C plugin ABI with its header-only C++ wrapper, the\n"
       "CMake package (QuernSDK) and pkg-config file to build third-party executor\n"
       "plugins, and example plugins.")

include(CPack)
