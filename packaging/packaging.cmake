# The Debian package of mssgate, built by CPack:
#   cmake -S . -B build/release -DCMAKE_BUILD_TYPE=RelWithDebInfo -DMSSGATE_BUILD_TESTS=OFF
#   cmake --build build/release
#   (cd build/release && cpack -G DEB)          -> build/release/package/mssgate_<version>_<arch>.deb
#
# Two kinds of install() rules:
# - the programs (daemon/CMakeLists.txt), the man pages and the documentation are installed by
#   a plain `cmake --install` too, under CMAKE_INSTALL_PREFIX;
# - the system files (the default configuration in /etc, the systemd unit, sysusers.d and
#   tmpfiles.d) belong to the package only: they are in the component "deb", which
#   `cmake --install` leaves out (EXCLUDE_FROM_ALL), so that installing from source never
#   overwrites an edited /etc/mssgate/mssgate.toml. They name /usr/sbin/mssgate, so the
#   package is always built with the prefix /usr.
include_guard(GLOBAL)

set(MSSGATE_PACKAGING_DIR ${PROJECT_SOURCE_DIR}/packaging)

# --- Man pages, compressed at build time (gzip -9n: no name, no time stamp: reproducible) ---
set(_mssgate_man_pages mssgate.8 mssgatectl.8 mssgate.toml.5)
set(_mssgate_man_outputs "")
foreach(_page IN LISTS _mssgate_man_pages)
  set(_source ${PROJECT_SOURCE_DIR}/docs/man/${_page})
  set(_output ${PROJECT_BINARY_DIR}/man/${_page}.gz)
  add_custom_command(
    OUTPUT ${_output}
    COMMAND ${CMAKE_COMMAND} -E make_directory ${PROJECT_BINARY_DIR}/man
    COMMAND gzip -9n -c ${_source} > ${_output}
    DEPENDS ${_source}
    COMMENT "Compressing the man page ${_page}"
    VERBATIM)
  list(APPEND _mssgate_man_outputs ${_output})
  string(REGEX REPLACE "^.*\\.([0-9])$" "\\1" _section ${_page})
  install(FILES ${_output} DESTINATION share/man/man${_section})
endforeach()
# The Debian changelog, which every package carries (lintian: no-changelog).
set(_mssgate_changelog ${PROJECT_BINARY_DIR}/packaging/changelog.gz)
add_custom_command(
  OUTPUT ${_mssgate_changelog}
  COMMAND ${CMAKE_COMMAND} -E make_directory ${PROJECT_BINARY_DIR}/packaging
  COMMAND gzip -9n -c ${MSSGATE_PACKAGING_DIR}/changelog > ${_mssgate_changelog}
  DEPENDS ${MSSGATE_PACKAGING_DIR}/changelog
  COMMENT "Compressing the Debian changelog"
  VERBATIM)
add_custom_target(mssgate_man_pages ALL DEPENDS ${_mssgate_man_outputs} ${_mssgate_changelog})

# --- Documentation ---
file(GLOB _mssgate_docs CONFIGURE_DEPENDS ${PROJECT_SOURCE_DIR}/docs/*.md)
install(FILES ${PROJECT_SOURCE_DIR}/config/mssgate.example.toml ${_mssgate_docs}
        ${PROJECT_SOURCE_DIR}/docs/openapi.json
        ${MSSGATE_PACKAGING_DIR}/copyright ${_mssgate_changelog}
        DESTINATION share/doc/mssgate)

# --- System files: the package only ---
install(FILES ${MSSGATE_PACKAGING_DIR}/mssgate.toml
        DESTINATION /etc/mssgate
        PERMISSIONS OWNER_READ OWNER_WRITE GROUP_READ WORLD_READ
        COMPONENT deb EXCLUDE_FROM_ALL)
# Debian 12 keeps units of packages in /lib/systemd/system (merged /usr: the same directory).
install(FILES ${PROJECT_SOURCE_DIR}/systemd/mssgate.service
        DESTINATION /lib/systemd/system
        COMPONENT deb EXCLUDE_FROM_ALL)
install(FILES ${PROJECT_SOURCE_DIR}/systemd/mssgate.sysusers
        DESTINATION lib/sysusers.d RENAME mssgate.conf
        COMPONENT deb EXCLUDE_FROM_ALL)
install(FILES ${PROJECT_SOURCE_DIR}/systemd/mssgate.tmpfiles
        DESTINATION lib/tmpfiles.d RENAME mssgate.conf
        COMPONENT deb EXCLUDE_FROM_ALL)

# --- CPack ---
set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME mssgate)
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_VENDOR "mssgate")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "gateway for the MSSanté API LPS (IMAP and SMTP submission)")
# One string made of quoted pieces (string(CONCAT)): a list would be split at its ';'.
string(CONCAT CPACK_PACKAGE_DESCRIPTION
    "mssgate sits in front of Dovecot and Postfix for an MSSanté operator.\n"
    "Health professionals' software connects to it over TLS with an IGC-Santé\n"
    "organisation certificate (SASL EXTERNAL) or a Pro Santé Connect token\n"
    "(XOAUTH2, OAUTHBEARER). mssgate decides which mailbox it may open, logs in\n"
    "to Dovecot as that mailbox and relays IMAP, and hands submitted messages to\n"
    "Postfix with XCLIENT; it counts the messages for the operator's indicators.\n"
    "\n"
    "The service is installed but neither enabled nor started: edit\n"
    "/etc/mssgate/mssgate.toml first.")
# Set the real maintainer with -DCPACK_PACKAGE_CONTACT="Name <address>".
set(CPACK_PACKAGE_CONTACT "mssgate maintainers <mssgate@example.org>" CACHE STRING
    "Maintainer field of the Debian package")
set(CPACK_PACKAGE_DIRECTORY ${PROJECT_BINARY_DIR}/package)
# The programs are built with debug information; the package carries them stripped.
set(CPACK_STRIP_FILES TRUE)
# Absolute destinations (/etc, /lib) go into the package's tree, not onto this machine: CPack
# installs with DESTDIR, under the prefix /usr whatever the build tree's CMAKE_INSTALL_PREFIX.
set(CPACK_SET_DESTDIR ON)
set(CPACK_INSTALL_PREFIX /usr)
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
# Everything a plain install gets, then the package-only component.
set(CPACK_INSTALL_CMAKE_PROJECTS
    "${PROJECT_BINARY_DIR};${PROJECT_NAME};ALL;/"
    "${PROJECT_BINARY_DIR};${PROJECT_NAME};deb;/")

set(CPACK_DEBIAN_PACKAGE_NAME mssgate)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_SECTION mail)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
find_program(DPKG_PROGRAM dpkg)
if(DPKG_PROGRAM)
  execute_process(COMMAND ${DPKG_PROGRAM} --print-architecture
                  OUTPUT_VARIABLE CPACK_DEBIAN_PACKAGE_ARCHITECTURE
                  OUTPUT_STRIP_TRAILING_WHITESPACE)
endif()
# The libraries' packages come from dpkg-shlibdeps; these are what the maintainer scripts and
# the default configuration use (the snakeoil certificate, systemd-sysusers, systemd-tmpfiles).
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_PACKAGE_DEPENDS "ssl-cert, systemd")
set(CPACK_DEBIAN_PACKAGE_SUGGESTS "dovecot-imapd, postfix")
set(CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA
    ${MSSGATE_PACKAGING_DIR}/conffiles
    ${MSSGATE_PACKAGING_DIR}/postinst
    ${MSSGATE_PACKAGING_DIR}/prerm
    ${MSSGATE_PACKAGING_DIR}/postrm)
# Maintainer scripts 0755 and conffiles 0644 whatever their mode in the checkout.
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION TRUE)

set(CPACK_SOURCE_GENERATOR TGZ)
set(CPACK_SOURCE_IGNORE_FILES "/\\\\.git/" "/build[^/]*/" "/\\\\.cache/" "__pycache__")

include(CPack)
