/* reload.h: reloading the configuration file (SIGHUP and the admin console's
 * RELOAD). */
#pragma once

#include "config/config.h"

/* Load the file the daemon was started with into a fresh configuration and
 * validate it (the auth_file too). If anything is wrong, every error is
 * logged (FILE:LINE: key: what, as --check prints them), appended to `errs`
 * when it is not NULL, nothing changes and -1 is returned. Otherwise the new
 * configuration is put in force (daemon keys that need a restart keep their
 * old value, with a warning; pools change as pools_apply() says) and 0 is
 * returned. */
int server_reload(config_errors *errs) __attribute__((warn_unused_result));
