/* main.c: the command line (SPEC §2): tidepool [--check] [CONFIG],
 * --version, --help. Loads and validates the configuration, then hands it
 * to the server; --check also does what the start does before it binds (the
 * auth_file, the TLS files, the host names to listen on) and reports what
 * would fail. */
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/config.h"
#include "daemon/client_tls.h"
#include "daemon/listener.h"
#include "daemon/log.h"
#include "daemon/metrics.h"
#include "daemon/secrets.h"
#include "daemon/server.h"
#include "version.h"

#define DEFAULT_CONFIG "/etc/tidepool/tidepool.ini"

static void usage(FILE *to)
{
    fprintf(to,
            "tidepool %s: a PostgreSQL connection pooler with SQLAlchemy's pool semantics\n"
            "\n"
            "usage: tidepool [OPTIONS] [CONFIG]    CONFIG defaults to " DEFAULT_CONFIG "\n"
            "  --check      load and validate CONFIG, print problems, exit 0 (valid) or 1\n"
            "  --version    print the version\n"
            "  --help       this text\n",
            TIDEPOOL_VERSION);
}

/* libpq's own parser judges a pool's conninfo, so --check catches what the
 * backend connect would refuse. */
static const char *check_conninfo(const char *conninfo, void *arg)
{
    static char msg[512];
    char *err = NULL;
    PQconninfoOption *opts = PQconninfoParse(conninfo, &err);
    if (opts) {
        PQconninfoFree(opts);
        return NULL;
    }
    snprintf(msg, sizeof msg, "%s", err ? err : "invalid connection string");
    size_t n = strlen(msg);
    while (n > 0 && (msg[n - 1] == '\n' || msg[n - 1] == ' ')) msg[--n] = '\0';
    PQfreemem(err);
    return msg;
}

static void print_warning(void *arg, const char *message)
{
    fprintf(stderr, "%s: warning: %s\n", (const char *)arg, message);
}

static void print_problem(void *arg, const char *message)
{
    int *problems = arg;
    fprintf(stderr, "%s\n", message);
    (*problems)++;
}

/* --check, once the file itself is valid: what only the daemon can judge
 * (the client TLS files, the auth_file, host names in listen_addr and
 * metrics_listen), each loaded or resolved as the start does, so a file that
 * passes here does not fail at start for these; then what the start warns
 * about. Returns the number of problems printed. */
static int check_daemon(const config *cfg, const char *path)
{
    int problems = 0;
    char msg[2048];
    if (client_tls_check(cfg, msg, sizeof msg) < 0) {
        fprintf(stderr, "%s: %s\n", path, msg);
        problems++;
    }
    listeners_check(cfg, print_problem, &problems);
    if (metrics_check(cfg, msg, sizeof msg) < 0) print_problem(&problems, msg);

    auth_file users;
    char *err = NULL;
    bool loaded = secrets_load_users(cfg, &users, &err) == 0;
    if (!loaded) {
        print_problem(&problems, err ? err : "auth_file: out of memory");
        free(err);
    }
    secrets_check_files(cfg, print_warning, (void *)path);
    if (loaded) {
        secrets_check_users(cfg, &users, print_warning, (void *)path);
        auth_file_free(&users);
    }
    return problems;
}

int main(int argc, char **argv)
{
    bool check_only = false;
    const char *path = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--check") == 0) {
            check_only = true;
        } else if (strcmp(a, "--version") == 0) {
            printf("tidepool %s\n", TIDEPOOL_VERSION);
            return 0;
        } else if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage(stdout);
            return 0;
        } else if (a[0] == '-' && a[1] != '\0') {
            fprintf(stderr, "tidepool: unknown option %s\n", a);
            usage(stderr);
            return 2;
        } else if (!path) {
            path = a;
        } else {
            fprintf(stderr, "tidepool: only one CONFIG may be given\n");
            return 2;
        }
    }
    if (!path) path = DEFAULT_CONFIG;

    config_set_conninfo_check(check_conninfo, NULL);
    config *cfg = NULL;
    config_errors errs = {0};
    if (config_load_file(path, &cfg, &errs) < 0) {
        for (size_t i = 0; i < errs.count; i++) fprintf(stderr, "%s\n", errs.items[i]);
        if (errs.count == 0) fprintf(stderr, "%s: invalid configuration\n", path);
        config_errors_clear(&errs);
        return 1;
    }
    config_errors_clear(&errs);
    if (check_only) {
        int problems = check_daemon(cfg, path);
        if (problems == 0) printf("%s: OK (%zu pool%s)\n", path, cfg->n_pools, cfg->n_pools == 1 ? "" : "s");
        config_free(cfg);
        return problems ? 1 : 0;
    }
    return server_run(cfg);
}
