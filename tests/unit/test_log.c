/* test_log.c: the logger (daemon/log.c): every event is one line, whatever
 * bytes its message holds (log_escape), and a line has its level. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "daemon/log.h"

static const char *escaped(const char *src, size_t len, size_t cap)
{
    static char out[512];
    ck_assert_uint_le(cap, sizeof out);
    size_t n = log_escape(out, cap, src, len);
    ck_assert_uint_eq(n, strlen(out));
    ck_assert_uint_lt(n, cap);
    return out;
}

#define ESC(s) escaped((s), sizeof(s) - 1, 512)

START_TEST(test_plain_text_is_unchanged)
{
    ck_assert_str_eq(ESC("pool app: Connection <backend 1 pid 42> checked out"),
                     "pool app: Connection <backend 1 pid 42> checked out");
    ck_assert_str_eq(ESC("tab\tstays"), "tab\tstays");
    ck_assert_str_eq(ESC("caf\xc3\xa9 \xe2\x82\xac"), "caf\xc3\xa9 \xe2\x82\xac"); /* UTF-8 as it is */
    ck_assert_str_eq(ESC("back\\slash"), "back\\slash");
    ck_assert_str_eq(ESC(""), "");
}
END_TEST

START_TEST(test_control_characters_are_escaped)
{
    ck_assert_str_eq(ESC("evil\nERROR: forged line"), "evil\\nERROR: forged line");
    ck_assert_str_eq(ESC("a\r\nb"), "a\\r\\nb");
    ck_assert_str_eq(ESC("\x1b[2J"), "\\x1b[2J");
    ck_assert_str_eq(ESC("\x01\x1f\x7f"), "\\x01\\x1f\\x7f");
    /* A NUL inside the bytes does not end them. */
    ck_assert_str_eq(ESC("a\0b"), "a\\x00b");
    /* Every byte but the control ones stays one byte. */
    for (int ch = 0; ch < 256; ch++) {
        char in = (char)ch;
        const char *out = escaped(&in, 1, 16);
        bool control = (ch < 0x20 && ch != '\t') || ch == 0x7f;
        ck_assert_uint_eq(strlen(out), control ? (ch == '\n' || ch == '\r' ? 2 : 4) : 1);
        ck_assert_ptr_null(strchr(out, '\n'));
        ck_assert_ptr_null(strchr(out, '\r'));
    }
}
END_TEST

START_TEST(test_truncation_keeps_escapes_whole)
{
    /* cap 6: room for 5 bytes; "ab\n" is 4, the next escape (4) does not fit. */
    ck_assert_str_eq(escaped("ab\n\x01z", 5, 6), "ab\\n");
    ck_assert_str_eq(escaped("abcdefgh", 8, 4), "abc");
    ck_assert_str_eq(escaped("\n", 1, 2), "");
    ck_assert_str_eq(escaped("x", 1, 1), "");
}
END_TEST

/* What log_msg writes to stderr for one event with message `arg`. */
static char *logged(config_log_level level, const char *arg)
{
    static char out[96 * 1024];
    FILE *tmp = tmpfile();
    ck_assert_ptr_nonnull(tmp);
    fflush(stderr);
    int saved = dup(STDERR_FILENO);
    ck_assert_int_ge(saved, 0);
    ck_assert_int_ge(dup2(fileno(tmp), STDERR_FILENO), 0);
    log_msg(level, "%s", arg);
    fflush(stderr);
    ck_assert_int_ge(dup2(saved, STDERR_FILENO), 0);
    close(saved);
    rewind(tmp);
    size_t n = fread(out, 1, sizeof out - 1, tmp);
    out[n] = '\0';
    fclose(tmp);
    return out;
}

START_TEST(test_one_line_per_event)
{
    log_set_level(CONFIG_LOG_DEBUG);
    ck_assert_str_eq(logged(CONFIG_LOG_INFO, "login failed: user \"evil\nERROR: forged line\""),
                     "LOG: login failed: user \"evil\\nERROR: forged line\"\n");
    ck_assert_str_eq(
        logged(CONFIG_LOG_WARN, "connect failed: connection refused\n\tIs the server running on that host?"),
        "WARNING: connect failed: connection refused\\n\tIs the server running on that host?\n");
    ck_assert_str_eq(logged(CONFIG_LOG_DEBUG, "plain"), "DEBUG: plain\n");
    ck_assert_str_eq(logged(CONFIG_LOG_ERROR, "x"), "ERROR: x\n");

    /* A message of some KB (a statement echoed) is logged whole, one line. */
    static char big[100 * 1000 + 1];
    for (size_t i = 0; i < 5000; i++)
        big[i] = i % 2 ? '\n' : 'a';
    big[5000] = '\0';
    const char *out = logged(CONFIG_LOG_INFO, big);
    ck_assert_ptr_eq(strchr(out, '\n'), out + strlen(out) - 1);
    ck_assert_uint_eq(strlen(out), strlen("LOG: ") + 2500 + 2 * 2500 + 1);

    /* Longer than 64 KiB: cut there, saying how much was left out. */
    memset(big, 'b', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    out = logged(CONFIG_LOG_INFO, big);
    ck_assert_ptr_eq(strchr(out, '\n'), out + strlen(out) - 1);
    ck_assert_uint_eq(strspn(out + 5, "b"), 64 * 1024);
    ck_assert_str_eq(out + 5 + 64 * 1024, "... (34464 bytes more not logged)\n");

    /* Below the level: nothing. */
    log_set_level(CONFIG_LOG_WARN);
    ck_assert_str_eq(logged(CONFIG_LOG_INFO, "hidden"), "");
}
END_TEST

int main(void)
{
    Suite *s = suite_create("log");
    TCase *tc = tcase_create("log");
    tcase_add_test(tc, test_plain_text_is_unchanged);
    tcase_add_test(tc, test_control_characters_are_escaped);
    tcase_add_test(tc, test_truncation_keeps_escapes_whole);
    tcase_add_test(tc, test_one_line_per_event);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
