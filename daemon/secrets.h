/* secrets.h: the auth_file, loaded the same way at start, on SIGHUP and by
 * --check; and warnings about where secrets are kept: an auth_file (or a
 * configuration file whose urls hold passwords, or the client TLS key) that others may read or
 * write, its group may write, or its group may read while it is owned by
 * neither root nor tidepool's user; and auth_file entries the configured
 * auth_type can never accept. The warnings refuse nothing. */
#pragma once

#include "auth/auth.h"
#include "config/config.h"

/* Load cfg->auth_file into *out (left empty when there is none). Returns 0,
 * or -1 with a malloc'd message in *msg (NULL when out of memory):
 * "USERLIST:LINE: what" for a bad line, "CONFIG:LINE: auth_file USERLIST:
 * cannot open: strerror" when it cannot be read. */
int secrets_load_users(const config *cfg, auth_file *out, char **msg) __attribute__((warn_unused_result));

/* Receives each warning, a full sentence without a trailing newline. */
typedef void (*secrets_warn_fn)(void *arg, const char *message);

/* File permissions of cfg->auth_file, of cfg->path when a pool's url holds
 * a password, and of cfg->client_tls_key_file when client TLS is on.
 * Returns the number of warnings given. */
int secrets_check_files(const config *cfg, secrets_warn_fn warn, void *arg);
/* Entries of `users` that cannot log in with cfg->auth_type. Returns the
 * number of warnings given. */
int secrets_check_users(const config *cfg, const auth_file *users, secrets_warn_fn warn, void *arg);
/* Both checks, each warning logged with log_warn (start and reload). */
void secrets_log_warnings(const config *cfg, const auth_file *users);
