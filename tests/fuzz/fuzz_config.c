/* fuzz_config.c: libFuzzer target for the text formats tidepool reads: the
 * INI configuration (config_load_string), pool urls (config_normalize_url)
 * and the auth_file (auth_file_parse, with every secret classified and every
 * user looked up again). The input, NUL-terminated, goes to all of them. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "auth/auth.h"
#include "config/config.h"
#include "tests/fuzz/fuzz_check.h"

static void fuzz_ini(const char *text)
{
    config *cfg = NULL;
    config_errors errs = {0};
    int rc = config_load_string(text, "fuzz.ini", &cfg, &errs);
    if (rc == 0) {
        FUZZ_CHECK(cfg != NULL && errs.count == 0);
        FUZZ_CHECK(cfg->listen_port >= 1 && cfg->listen_port <= 65535 && cfg->max_client_conn >= 1);
        for (size_t i = 0; i < cfg->n_pools; i++) {
            const config_pool *p = &cfg->pools[i];
            FUZZ_CHECK(p->name && p->url && p->conninfo);
            FUZZ_CHECK(config_find_pool(cfg, p->name) == p);
            FUZZ_CHECK(p->pool_size >= 0 && p->max_overflow >= -1 && p->pool_timeout >= 0);
        }
        config_free(cfg);
    } else {
        FUZZ_CHECK(rc < 0 && cfg == NULL && errs.count > 0);
        for (size_t i = 0; i < errs.count; i++)
            FUZZ_CHECK(errs.items[i] != NULL);
    }
    config_errors_clear(&errs);
}

static void fuzz_url(const char *text)
{
    const char *why = NULL;
    char *conninfo = config_normalize_url(text, &why);
    if (conninfo)
        free(conninfo);
    else
        FUZZ_CHECK(why != NULL);
}

static void fuzz_auth_file(const char *text)
{
    auth_file f = {0};
    int line = 0;
    const char *why = NULL;
    if (auth_file_parse(text, &f, &line, &why) < 0) {
        FUZZ_CHECK(line >= 1 && why != NULL);
        auth_file_free(&f);
        return;
    }
    for (size_t i = 0; i < f.n_users; i++) {
        const auth_user *u = &f.users[i];
        FUZZ_CHECK(u->name && u->secret);
        FUZZ_CHECK(auth_secret_classify(u->secret) == u->kind);
        const auth_user *found = auth_file_find(&f, u->name);
        FUZZ_CHECK(found && strcmp(found->name, u->name) == 0);
        (void)auth_scram_verifier_valid(u->secret);
    }
    auth_file_free(&f);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = malloc(size + 1);
    FUZZ_CHECK(text);
    memcpy(text, data, size);
    text[size] = '\0';
    fuzz_ini(text);
    fuzz_url(text);
    fuzz_auth_file(text);
    free(text);
    return 0;
}
