/* secrets.c: loading the auth_file (one message for start, reload and
 * --check alike), warnings about files holding secrets that others may read
 * or write, and about auth_file entries unusable with the configured
 * auth_type (see secrets.h). */
#include "daemon/secrets.h"

#include "daemon/log.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int secrets_load_users(const config *cfg, auth_file *out, char **msg)
{
    memset(out, 0, sizeof *out);
    *msg = NULL;
    if (!cfg->auth_file) return 0;
    char *err = NULL;
    int rc = auth_file_load(cfg->auth_file, out, &err);
    if (rc == 0) return 0;
    if (rc == -1) {
        *msg = err; /* USERLIST:LINE: what */
        return -1;
    }
    /* The file itself is the trouble: say where the configuration names it. */
    char where[1100];
    config_key_where(cfg, "auth_file", where, sizeof where);
    const char *what = err ? err : "cannot be loaded";
    size_t n = strlen(where) + strlen(what) + sizeof ": auth_file ";
    *msg = malloc(n);
    if (*msg) snprintf(*msg, n, "%s: auth_file %s", where, what);
    free(err);
    return -1;
}

/* Warn when group or others have read or write permission on `path`. */
static int check_mode(const char *what, const char *path, secrets_warn_fn warn, void *arg)
{
    struct stat st;
    if (stat(path, &st) < 0) return 0; /* loading it reports that */
    unsigned open_bits = (unsigned)st.st_mode & 066u;
    if (!open_bits) return 0;
    const char *who = (open_bits & 060u) && (open_bits & 006u) ? "group and others"
                      : (open_bits & 060u)                     ? "group"
                                                               : "others";
    const char *how = (open_bits & 044u) && (open_bits & 022u) ? "read and written"
                      : (open_bits & 044u)                     ? "read"
                                                               : "written";
    char msg[1200];
    snprintf(msg, sizeof msg, "%s %s can be %s by %s (mode %04o), but it holds passwords: chmod go-rwx it",
             what, path, how, who, (unsigned)st.st_mode & 07777u);
    warn(arg, msg);
    return 1;
}

static bool urls_hold_passwords(const config *cfg)
{
    for (size_t i = 0; i < cfg->n_pools; i++)
        if (config_url_has_password(cfg->pools[i].url)) return true;
    return false;
}

int secrets_check_files(const config *cfg, secrets_warn_fn warn, void *arg)
{
    int n = 0;
    if (cfg->auth_file) n += check_mode("auth_file", cfg->auth_file, warn, arg);
    if (cfg->path && urls_hold_passwords(cfg)) n += check_mode("configuration file", cfg->path, warn, arg);
    return n;
}

int secrets_check_users(const config *cfg, const auth_file *users, secrets_warn_fn warn, void *arg)
{
    int n = 0;
    for (size_t i = 0; i < users->n_users; i++) {
        const auth_user *u = &users->users[i];
        const char *why = NULL;
        if (cfg->auth_type == CONFIG_AUTH_SCRAM_SHA_256 && u->kind == AUTH_SECRET_MD5)
            why = "has an md5 secret, which auth_type scram-sha-256 cannot use: store a SCRAM verifier or "
                  "the password";
        else if (cfg->auth_type == CONFIG_AUTH_MD5 && u->kind == AUTH_SECRET_SCRAM)
            why = "has a SCRAM secret, which auth_type md5 cannot use";
        if (!why) continue;
        char msg[600];
        snprintf(msg, sizeof msg, "auth_file: user \"%s\" %s; it cannot log in", u->name, why);
        warn(arg, msg);
        n++;
    }
    return n;
}

static void on_secret_warning(void *arg, const char *message)
{
    (void)arg;
    log_warn("%s", message);
}

void secrets_log_warnings(const config *cfg, const auth_file *users)
{
    secrets_check_files(cfg, on_secret_warning, NULL);
    secrets_check_users(cfg, users, on_secret_warning, NULL);
}
