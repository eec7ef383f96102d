/* secrets.c: loading the auth_file (one message for start, reload and
 * --check alike), warnings about files holding secrets that others may read
 * or write, and about auth_file entries unusable with the configured
 * auth_type (see secrets.h).
 *
 * The files are the auth_file, the configuration file when a pool's url
 * holds a password, and client_tls_key_file when client TLS is on. The
 * permission rule is PostgreSQL's for its key files: a warning when
 * others can read or write the file, or its group can write it; a file its
 * group can read (0640) is fine when it is owned by root or by the user
 * tidepool runs as, so the .deb's 0640 root:tidepool files, which the
 * service reads through its group, are not warned about. A group-readable
 * file owned by any other user is. */
#include "daemon/secrets.h"

#include "daemon/log.h"

#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

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

/* Whether a group that can read a file was given that right by someone we
 * trust: the file is owned by root (an administrator chose its group, as the
 * Debian package does with 0640 root:tidepool so that the service, whose
 * group is tidepool, can read it) or by the user tidepool runs as. */
static bool owner_trusted(uid_t owner)
{
    return owner == 0 || owner == geteuid();
}

/* The rule PostgreSQL applies to its key files: others may neither read nor
 * write the file, its group may never write it, and its group may read it
 * only when the owner is trusted (owner_trusted). One warning per file, with
 * what to do about each problem, none of which takes the read right away from
 * the group the service may rely on. */
static int check_mode(const char *what, const char *path, const char *holds, secrets_warn_fn warn, void *arg)
{
    struct stat st;
    if (stat(path, &st) < 0) return 0; /* loading it reports that */
    unsigned mode = (unsigned)st.st_mode;
    unsigned others = mode & 006u;
    bool group_writes = mode & 020u;
    bool group_reads = (mode & 040u) && !owner_trusted(st.st_uid);
    if (!others && !group_writes && !group_reads) return 0;

    char group[64], owner[64];
    struct group *gr = getgrgid(st.st_gid);
    struct passwd *pw = getpwuid(st.st_uid);
    if (gr)
        snprintf(group, sizeof group, "group %s", gr->gr_name);
    else
        snprintf(group, sizeof group, "group %u", (unsigned)st.st_gid);
    if (pw)
        snprintf(owner, sizeof owner, "%s", pw->pw_name);
    else
        snprintf(owner, sizeof owner, "uid %u", (unsigned)st.st_uid);

    /* Who can do what: "read by group G and others", "written by group G
     * and read by others", ... */
    const char *group_how = group_reads && group_writes ? "read and written"
                            : group_reads               ? "read"
                            : group_writes              ? "written"
                                                        : NULL;
    const char *others_how = others == 006u   ? "read and written"
                             : others == 004u ? "read"
                             : others         ? "written"
                                              : NULL;
    char who[200];
    if (group_how && others_how && strcmp(group_how, others_how) == 0)
        snprintf(who, sizeof who, "%s by %s and others", group_how, group);
    else if (group_how && others_how)
        snprintf(who, sizeof who, "%s by %s and %s by others", group_how, group, others_how);
    else if (group_how)
        snprintf(who, sizeof who, "%s by %s", group_how, group);
    else
        snprintf(who, sizeof who, "%s by others", others_how);

    char owned[200] = "";
    if (group_reads)
        snprintf(owned, sizeof owned, " and is owned by %s, neither root nor the user tidepool runs as",
                 owner);

    const char *chmod_bits = others && group_writes ? "g-w,o-rwx"
                             : others               ? "o-rwx"
                             : group_writes         ? "g-w"
                                                    : NULL;
    char advice[200];
    if (chmod_bits && group_reads)
        snprintf(advice, sizeof advice, "chmod %s it, and chown root it (or chmod g-r it)", chmod_bits);
    else if (chmod_bits)
        snprintf(advice, sizeof advice, "chmod %s it", chmod_bits);
    else
        snprintf(advice, sizeof advice, "chown root it (or chmod g-r it)");

    char msg[1800];
    snprintf(msg, sizeof msg, "%s %s can be %s (mode %04o)%s, but it holds %s: %s", what, path, who,
             mode & 07777u, owned, holds, advice);
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
    if (cfg->auth_file) n += check_mode("auth_file", cfg->auth_file, "passwords", warn, arg);
    if (cfg->path && urls_hold_passwords(cfg))
        n += check_mode("configuration file", cfg->path, "passwords", warn, arg);
    if (cfg->client_tls_sslmode != CONFIG_TLS_DISABLE && cfg->client_tls_key_file)
        n += check_mode("client_tls_key_file", cfg->client_tls_key_file, "a private key", warn, arg);
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
