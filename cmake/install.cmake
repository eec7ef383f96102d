# cmake/install.cmake: what `cmake --install` places and how `cpack -G DEB`
# packages it. With CMAKE_INSTALL_PREFIX=/usr (as the .deb is built):
#   /usr/bin/tidepool
#   /usr/lib/systemd/system/tidepool.service, tidepool.socket
#   /usr/lib/sysusers.d/tidepool.conf
#   /etc/tidepool/tidepool.ini (config/tidepool.ini.example), userlist.txt
#   /usr/share/man/man8/tidepool.8, man5/tidepool.ini.5
#   /usr/share/doc/tidepool/ (README and docs/)
# The units name /usr/bin/tidepool and /etc/tidepool/tidepool.ini; under
# another prefix the installed copies name the installed paths instead.
include(GNUInstallDirs)

set(TIDEPOOL_SYSTEMD_UNITDIR "lib/systemd/system" CACHE STRING
    "Where the systemd units go (relative to CMAKE_INSTALL_PREFIX, or absolute)")
set(TIDEPOOL_SYSUSERSDIR "lib/sysusers.d" CACHE STRING
    "Where the sysusers.d file goes (relative to CMAKE_INSTALL_PREFIX, or absolute)")
set(TIDEPOOL_CONFDIR "${CMAKE_INSTALL_FULL_SYSCONFDIR}/tidepool")

install(TARGETS tidepool RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})

foreach(unit tidepool.service tidepool.socket)
  file(READ ${CMAKE_SOURCE_DIR}/systemd/${unit} text)
  string(REPLACE "/usr/bin/tidepool" "${CMAKE_INSTALL_FULL_BINDIR}/tidepool" text "${text}")
  string(REPLACE "/etc/tidepool/" "${TIDEPOOL_CONFDIR}/" text "${text}")
  file(GENERATE OUTPUT ${CMAKE_BINARY_DIR}/generated/systemd/${unit} CONTENT "${text}")
  install(FILES ${CMAKE_BINARY_DIR}/generated/systemd/${unit} DESTINATION ${TIDEPOOL_SYSTEMD_UNITDIR})
endforeach()
set_property(DIRECTORY APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS
             ${CMAKE_SOURCE_DIR}/systemd/tidepool.service ${CMAKE_SOURCE_DIR}/systemd/tidepool.socket)
install(FILES systemd/tidepool.sysusers DESTINATION ${TIDEPOOL_SYSUSERSDIR} RENAME tidepool.conf)

# The example configuration, as the configuration: `tidepool --check` passes
# on it as installed. Its auth_file lists no user until one is added.
install(FILES config/tidepool.ini.example DESTINATION ${TIDEPOOL_CONFDIR} RENAME tidepool.ini
        PERMISSIONS OWNER_READ OWNER_WRITE GROUP_READ)
install(FILES packaging/userlist.txt DESTINATION ${TIDEPOOL_CONFDIR}
        PERMISSIONS OWNER_READ OWNER_WRITE GROUP_READ)

install(FILES docs/man/tidepool.8 DESTINATION ${CMAKE_INSTALL_MANDIR}/man8)
install(FILES docs/man/tidepool.ini.5 DESTINATION ${CMAKE_INSTALL_MANDIR}/man5)
install(FILES README.md docs/configuration.md docs/deployment.md docs/transaction-pooling.md
        DESTINATION ${CMAKE_INSTALL_DOCDIR})

# --- cpack -G DEB: tidepool_<version>_<arch>.deb ---------------------------
set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME tidepool)
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_VENDOR "tidepool")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "PostgreSQL connection pooler with SQLAlchemy's pool semantics")
set(CPACK_PACKAGING_INSTALL_PREFIX ${CMAKE_INSTALL_PREFIX})
set(CPACK_STRIP_FILES ON)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_MAINTAINER "tidepool developers <dev@tidepool.local>")
set(CPACK_DEBIAN_PACKAGE_SECTION database)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
# The summary above is the first line; this is the long description.
set(CPACK_DEBIAN_PACKAGE_DESCRIPTION
    "tidepool keeps a bounded set of backend connections per pool and lends one
to a client for each transaction, with SQLAlchemy QueuePool's settings
(pool_size, max_overflow, pool_timeout, pool_recycle, ...). It runs as a
systemd service (Type=notify, socket activation) configured by
/etc/tidepool/tidepool.ini.")
# Library dependencies come from dpkg-shlibdeps (libuv1, libpq5, libinih1,
# libssl3, libsystemd0, libc6); the postinst needs one way to create the user.
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_PACKAGE_DEPENDS "adduser | systemd-sysusers")
set(CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA
    ${CMAKE_SOURCE_DIR}/packaging/deb/conffiles
    ${CMAKE_SOURCE_DIR}/packaging/deb/postinst
    ${CMAKE_SOURCE_DIR}/packaging/deb/prerm
    ${CMAKE_SOURCE_DIR}/packaging/deb/postrm)
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION TRUE)
include(CPack)
