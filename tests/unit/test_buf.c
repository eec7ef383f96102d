/* test_buf.c: the daemon's byte queue (daemon/buf.c), borrowed bytes above
 * all, and its shared byte blocks. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/buf.h"

START_TEST(test_append_consume)
{
    tp_buf b = {0};
    ck_assert_int_eq(tp_buf_append(&b, "hello", 5), 0);
    ck_assert_uint_eq(tp_buf_size(&b), 5);
    tp_buf_consume(&b, 2);
    ck_assert_int_eq(memcmp(tp_buf_head(&b), "llo", 3), 0);
    uint8_t big[3000];
    memset(big, 'x', sizeof big);
    ck_assert_int_eq(tp_buf_append(&b, big, sizeof big), 0);
    ck_assert_uint_eq(tp_buf_size(&b), 3003);
    ck_assert_int_eq(memcmp(tp_buf_head(&b), "llox", 4), 0);
    tp_buf_consume(&b, 3003);
    tp_buf_shrink_if_empty(&b, 0);
    ck_assert_ptr_null(b.data);
    tp_buf_free(&b);
}
END_TEST

/* A borrowed buffer is never written to nor freed; what is left of it is
 * copied, however long. */
START_TEST(test_borrow_own)
{
    uint8_t shared[2000];
    for (size_t i = 0; i < sizeof shared; i++)
        shared[i] = (uint8_t)i;
    tp_buf b = {0};
    tp_buf_borrow(&b, shared, sizeof shared);
    ck_assert_ptr_eq(tp_buf_head(&b), shared);
    tp_buf_consume(&b, 100);
    ck_assert_int_eq(tp_buf_own(&b), 0);
    ck_assert_ptr_ne(b.data, shared);
    ck_assert_uint_eq(tp_buf_size(&b), 1900);
    ck_assert_uint_ge(b.cap, 1900);
    ck_assert_int_eq(memcmp(tp_buf_head(&b), shared + 100, 1900), 0);
    tp_buf_free(&b);

    /* Everything consumed: nothing kept. */
    tp_buf_borrow(&b, shared, 10);
    tp_buf_consume(&b, 10);
    ck_assert_int_eq(tp_buf_own(&b), 0);
    ck_assert_ptr_null(b.data);

    /* Room reserved in a borrowed buffer: its bytes move to its own memory. */
    tp_buf_borrow(&b, shared, 600);
    uint8_t *w = tp_buf_reserve(&b, 1000);
    ck_assert_ptr_nonnull(w);
    ck_assert_uint_ge(b.cap, 1600);
    ck_assert_int_eq(memcmp(tp_buf_head(&b), shared, 600), 0);
    for (size_t i = 0; i < sizeof shared; i++)
        ck_assert_uint_eq(shared[i], (uint8_t)i);
    tp_buf_free(&b);

    /* Freeing a borrowing buffer leaves the memory alone (ASan would tell). */
    tp_buf_borrow(&b, shared, 5);
    tp_buf_free(&b);
    ck_assert_ptr_null(b.data);
}
END_TEST

/* A copy with a NUL after it; the last reference frees it (ASan's leak
 * check sees one too many or too few). */
START_TEST(test_shared)
{
    tp_shared *s = tp_shared_new("ab\0c", 4);
    ck_assert_ptr_nonnull(s);
    ck_assert_uint_eq(s->refs, 1);
    ck_assert_uint_eq(s->len, 4);
    ck_assert_int_eq(memcmp(s->data, "ab\0c\0", 5), 0);
    ck_assert_ptr_eq(tp_shared_ref(s), s);
    ck_assert_uint_eq(s->refs, 2);
    tp_shared_unref(s);
    ck_assert_uint_eq(s->refs, 1);
    tp_shared_unref(s);
    tp_shared *empty = tp_shared_new(NULL, 0);
    ck_assert_ptr_nonnull(empty);
    ck_assert_str_eq((const char *)empty->data, "");
    tp_shared_unref(empty);
    ck_assert_ptr_null(tp_shared_ref(NULL));
    tp_shared_unref(NULL);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("buf");
    TCase *tc = tcase_create("buf");
    tcase_add_test(tc, test_append_consume);
    tcase_add_test(tc, test_borrow_own);
    tcase_add_test(tc, test_shared);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
