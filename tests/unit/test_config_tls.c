/* test_config_tls.c: the client TLS keys of [tidepool] (docs/tls.md),
 * through config.h only: defaults, every value, and the refusals. Whether
 * the files can be read is the daemon's check (--check), not config/'s. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/config.h"

static config *load_ok(const char *text)
{
    config *cfg = NULL;
    config_errors errs = {0};
    int rc = config_load_string(text, "t.ini", &cfg, &errs);
    for (size_t i = 0; i < errs.count; i++)
        fprintf(stderr, "unexpected: %s\n", errs.items[i]);
    ck_assert_int_eq(rc, 0);
    ck_assert_ptr_nonnull(cfg);
    config_errors_clear(&errs);
    return cfg;
}

/* The file has exactly one problem, and it reads `want`. */
static void expect_one_error(const char *text, const char *want)
{
    config *cfg = NULL;
    config_errors errs = {0};
    int rc = config_load_string(text, "t.ini", &cfg, &errs);
    ck_assert_int_eq(rc, -1);
    ck_assert_ptr_null(cfg);
    if (errs.count != 1 || strcmp(errs.items[0], want) != 0) {
        fprintf(stderr, "want: %s\ngot:\n", want);
        for (size_t i = 0; i < errs.count; i++)
            fprintf(stderr, "  %s\n", errs.items[i]);
    }
    ck_assert_uint_eq(errs.count, 1);
    ck_assert_str_eq(errs.items[0], want);
    config_errors_clear(&errs);
}

START_TEST(test_defaults)
{
    config *cfg = load_ok("");
    ck_assert_int_eq(cfg->client_tls_sslmode, CONFIG_TLS_DISABLE);
    ck_assert_ptr_null(cfg->client_tls_cert_file);
    ck_assert_ptr_null(cfg->client_tls_key_file);
    ck_assert_ptr_null(cfg->client_tls_ca_file);
    ck_assert_uint_eq(cfg->client_tls_protocols, CONFIG_TLS_V1_2 | CONFIG_TLS_V1_3);
    ck_assert_str_eq(cfg->client_tls_ciphers, "HIGH:!aNULL:!MD5");
    config_free(cfg);
}
END_TEST

START_TEST(test_every_key)
{
    config *cfg = load_ok("[tidepool]\n"
                          "client_tls_sslmode = Require\n"
                          "client_tls_cert_file = /etc/tidepool/server.crt\n"
                          "client_tls_key_file = /etc/tidepool/server.key\n"
                          "client_tls_ca_file = /etc/tidepool/ca.crt\n"
                          "client_tls_protocols = tlsv1.3\n"
                          "client_tls_ciphers = ECDHE+AESGCM\n");
    ck_assert_int_eq(cfg->client_tls_sslmode, CONFIG_TLS_REQUIRE);
    ck_assert_str_eq(cfg->client_tls_cert_file, "/etc/tidepool/server.crt");
    ck_assert_str_eq(cfg->client_tls_key_file, "/etc/tidepool/server.key");
    ck_assert_str_eq(cfg->client_tls_ca_file, "/etc/tidepool/ca.crt");
    ck_assert_uint_eq(cfg->client_tls_protocols, CONFIG_TLS_V1_3);
    ck_assert_str_eq(cfg->client_tls_ciphers, "ECDHE+AESGCM");
    config_free(cfg);
}
END_TEST

static const struct {
    const char *word;
    config_tls_mode mode;
} modes[] = {
    {"disable", CONFIG_TLS_DISABLE},
    {"allow", CONFIG_TLS_ALLOW},
    {"prefer", CONFIG_TLS_PREFER},
    {"require", CONFIG_TLS_REQUIRE},
};

START_TEST(test_modes)
{
    char text[256];
    snprintf(
        text, sizeof text,
        "[tidepool]\nclient_tls_sslmode = %s\nclient_tls_cert_file = a.crt\nclient_tls_key_file = a.key\n",
        modes[_i].word);
    config *cfg = load_ok(text);
    ck_assert_int_eq(cfg->client_tls_sslmode, modes[_i].mode);
    ck_assert_str_eq(config_tls_mode_to_str(modes[_i].mode), modes[_i].word);
    config_free(cfg);
}
END_TEST

static const struct {
    const char *text;
    unsigned bits;
} protocols[] = {
    {"secure", CONFIG_TLS_V1_2 | CONFIG_TLS_V1_3},
    {"all", CONFIG_TLS_V1_0 | CONFIG_TLS_V1_1 | CONFIG_TLS_V1_2 | CONFIG_TLS_V1_3},
    {"legacy", CONFIG_TLS_V1_0 | CONFIG_TLS_V1_1 | CONFIG_TLS_V1_2 | CONFIG_TLS_V1_3},
    {"tlsv1.2", CONFIG_TLS_V1_2},
    {"TLSv1.2,TLSv1.3", CONFIG_TLS_V1_2 | CONFIG_TLS_V1_3},
    {"tlsv1.0, tlsv1.1", CONFIG_TLS_V1_0 | CONFIG_TLS_V1_1},
    {"tlsv1.1 tlsv1.3", CONFIG_TLS_V1_1 | CONFIG_TLS_V1_3},
};

START_TEST(test_protocols)
{
    char text[256];
    snprintf(text, sizeof text, "[tidepool]\nclient_tls_protocols = %s\n", protocols[_i].text);
    config *cfg = load_ok(text);
    ck_assert_uint_eq(cfg->client_tls_protocols, protocols[_i].bits);
    config_free(cfg);
}
END_TEST

#define PROTOCOLS_EXPECTED                                                                                   \
    "expected tlsv1.0, tlsv1.1, tlsv1.2, tlsv1.3, secure (= tlsv1.2,tlsv1.3) or all, comma-separated, got "

static const struct {
    const char *key, *value, *message;
} bad[] = {
    {"client_tls_sslmode", "verify-full", "expected disable, allow, prefer or require, got 'verify-full'"},
    {"client_tls_sslmode", "on", "expected disable, allow, prefer or require, got 'on'"},
    {"client_tls_protocols", "", PROTOCOLS_EXPECTED "''"},
    {"client_tls_protocols", "sslv3", PROTOCOLS_EXPECTED "'sslv3'"},
    {"client_tls_protocols", "tlsv1.2,tlsv1.4", PROTOCOLS_EXPECTED "'tlsv1.2,tlsv1.4'"},
    {"client_tls_protocols", "tlsv1.2tlsv1.3tlsv1.3", PROTOCOLS_EXPECTED "'tlsv1.2tlsv1.3tlsv1.3'"},
    {"client_tls_ciphers", "", "expected an OpenSSL cipher list (like HIGH:!aNULL:!MD5), got ''"},
};

START_TEST(test_bad_values)
{
    char text[256], want[512];
    snprintf(text, sizeof text, "[tidepool]\n%s = %s\n", bad[_i].key, bad[_i].value);
    snprintf(want, sizeof want, "t.ini:2: %s: %s", bad[_i].key, bad[_i].message);
    expect_one_error(text, want);
}
END_TEST

START_TEST(test_mode_needs_cert_and_key)
{
    expect_one_error("[tidepool]\nlisten_port = 7000\nclient_tls_sslmode = require\n",
                     "t.ini:3: client_tls_sslmode: 'require' needs client_tls_cert_file and "
                     "client_tls_key_file");
    expect_one_error("[tidepool]\nclient_tls_sslmode = allow\nclient_tls_cert_file = a.crt\n",
                     "t.ini:2: client_tls_sslmode: 'allow' needs client_tls_key_file");
    expect_one_error("[tidepool]\nclient_tls_key_file = a.key\nclient_tls_sslmode = prefer\n",
                     "t.ini:3: client_tls_sslmode: 'prefer' needs client_tls_cert_file");
    /* disable: files may be written (for later) or not. */
    config *cfg = load_ok("[tidepool]\nclient_tls_sslmode = disable\nclient_tls_cert_file = a.crt\n");
    config_free(cfg);
}
END_TEST

START_TEST(test_pool_section_refuses_tls_keys)
{
    expect_one_error("[pool.p]\nurl = postgresql://h/db\nclient_tls_sslmode = require\n",
                     "t.ini:3: client_tls_sslmode: only allowed in [tidepool]");
}
END_TEST

int main(void)
{
    Suite *s = suite_create("config_tls");
    TCase *tc = tcase_create("keys");
    tcase_add_test(tc, test_defaults);
    tcase_add_test(tc, test_every_key);
    tcase_add_loop_test(tc, test_modes, 0, sizeof modes / sizeof modes[0]);
    tcase_add_loop_test(tc, test_protocols, 0, sizeof protocols / sizeof protocols[0]);
    tcase_add_loop_test(tc, test_bad_values, 0, sizeof bad / sizeof bad[0]);
    tcase_add_test(tc, test_mode_needs_cert_and_key);
    tcase_add_test(tc, test_pool_section_refuses_tls_keys);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed != 0 ? EXIT_FAILURE : EXIT_SUCCESS;
}
