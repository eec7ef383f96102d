/* auth_file.c: the auth_file — PgBouncer's userlist.txt format — and the
 * classification of the secrets it holds.
 *
 * Each line is blank, a comment (first non-blank character ';' or '#'), or
 * `"user" "secret" ...`: two double-quoted strings separated by blanks, in
 * which a doubled quote stands for one literal quote. Whatever follows the
 * secret after a blank is ignored, as PgBouncer ignores it (its userlists
 * often end in `""`, a relic of PostgreSQL's old pg_auth file); text right
 * after the secret's closing quote is refused. When a user appears twice the
 * later line wins, as in PgBouncer.
 * Parsing is all-or-nothing: the first bad line fails the whole file, so a
 * reload can keep the previous users instead of half of the new ones.
 *
 * The parsed users are kept sorted by name so that auth_file_find is a binary
 * search; secrets are wiped from memory when the file is freed. */
#include "auth/auth.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#define SCRAM_PREFIX "SCRAM-SHA-256$"

auth_secret_kind auth_secret_classify(const char *secret)
{
    if (strncmp(secret, SCRAM_PREFIX, strlen(SCRAM_PREFIX)) == 0)
        return AUTH_SECRET_SCRAM;
    if (strncmp(secret, "md5", 3) == 0 && strlen(secret) == 35 &&
        strspn(secret + 3, "0123456789abcdef") == 32)
        return AUTH_SECRET_MD5;
    return AUTH_SECRET_PLAIN;
}

static bool is_blank(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f';
}

/* An entry under construction; `seq` orders duplicates so the last one wins. */
typedef struct entry {
    auth_user user;
    size_t seq;
} entry;

typedef struct parser {
    entry *v;   /* parsed entries, in file order until sorted */
    size_t n;   /* entries used */
    size_t cap; /* entries allocated */
} parser;

static void free_user(auth_user *u)
{
    free(u->name);
    if (u->secret != NULL) {
        OPENSSL_cleanse(u->secret, strlen(u->secret));
        free(u->secret);
    }
    if (u->scram_cache != NULL) {
        OPENSSL_cleanse(u->scram_cache, strlen(u->scram_cache));
        free(u->scram_cache);
    }
    u->name = u->secret = u->scram_cache = NULL;
}

/* Read a quoted string starting at *pp (which points at the opening quote)
 * and stopping before the end of the line. On success *out is malloc'd and *pp
 * points after the closing quote. Returns 0, -1 with *why, or -2 (no memory). */
static int read_quoted(const char **pp, const char *eol, char **out, const char **why)
{
    const char *p = *pp + 1;
    size_t len = 0;
    /* First pass: find the closing quote and the unescaped length. */
    const char *q = p;
    for (;;) {
        if (q >= eol) {
            *why = "unterminated quoted string";
            return -1;
        }
        if (*q == '"') {
            if (q + 1 < eol && q[1] == '"') {
                q += 2;
                len++;
                continue;
            }
            break;
        }
        q++;
        len++;
    }
    char *s = malloc(len + 1);
    if (s == NULL)
        return -2;
    size_t o = 0;
    while (p < q) {
        s[o++] = *p;
        p += *p == '"' ? 2 : 1;
    }
    s[o] = '\0';
    *out = s;
    *pp = q + 1;
    return 0;
}

/* Parse one line [p, eol). Returns 0 (entry added or nothing to add), -1 with
 * *why, or -2 (no memory). */
static int parse_line(parser *ps, const char *p, const char *eol, const char **why)
{
    while (p < eol && is_blank(*p))
        p++;
    if (p == eol || *p == ';' || *p == '#')
        return 0;
    if (memchr(p, '\0', (size_t)(eol - p)) != NULL) {
        *why = "NUL byte in line";
        return -1;
    }
    if (*p != '"') {
        *why = "expected a double-quoted user name";
        return -1;
    }
    char *name = NULL, *secret = NULL;
    int rc = read_quoted(&p, eol, &name, why);
    if (rc != 0)
        return rc;
    if (p == eol || !is_blank(*p)) {
        *why = p == eol ? "missing secret after user name"
                        : "expected blanks between user name and secret";
        rc = -1;
        goto fail;
    }
    while (p < eol && is_blank(*p))
        p++;
    if (p == eol || *p != '"') {
        *why = p == eol ? "missing secret after user name" : "expected a double-quoted secret";
        rc = -1;
        goto fail;
    }
    rc = read_quoted(&p, eol, &secret, why);
    if (rc != 0)
        goto fail;
    /* Further fields are ignored, as PgBouncer ignores them; text glued to
     * the closing quote is more likely a quote that was not doubled. */
    if (p < eol && !is_blank(*p)) {
        *why = "expected a blank or the end of the line after the secret (write a quote inside it as \"\")";
        rc = -1;
        goto fail;
    }
    if (name[0] == '\0') {
        *why = "empty user name";
        rc = -1;
        goto fail;
    }
    if (ps->n == ps->cap) {
        size_t cap = ps->cap ? ps->cap * 2 : 16;
        entry *v = realloc(ps->v, cap * sizeof *v);
        if (v == NULL) {
            rc = -2;
            goto fail;
        }
        ps->v = v;
        ps->cap = cap;
    }
    ps->v[ps->n] = (entry){
        .user = {.name = name, .secret = secret, .kind = auth_secret_classify(secret)},
        .seq = ps->n,
    };
    ps->n++;
    return 0;

fail:;
    auth_user u = {.name = name, .secret = secret};
    free_user(&u);
    return rc;
}

static int cmp_entry(const void *a, const void *b)
{
    const entry *x = a, *y = b;
    int c = strcmp(x->user.name, y->user.name);
    if (c != 0)
        return c;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

static int parse_len(const char *text, size_t len, auth_file *out, int *err_line,
                     const char **why)
{
    parser ps = {0};
    const char *p = text, *end = text + len;
    int line = 0, rc = 0;
    const char *dummy_why;
    int dummy_line;
    if (why == NULL)
        why = &dummy_why;
    if (err_line == NULL)
        err_line = &dummy_line;

    out->users = NULL;
    out->n_users = 0;
    *err_line = 0;
    *why = NULL;

    while (p < end) {
        const char *eol = memchr(p, '\n', (size_t)(end - p));
        if (eol == NULL)
            eol = end;
        line++;
        rc = parse_line(&ps, p, eol, why);
        if (rc != 0)
            break;
        p = eol + (eol < end);
    }
    if (rc != 0) {
        if (rc == -2) {
            *why = "out of memory";
            *err_line = 0;
        } else {
            *err_line = line;
        }
        for (size_t i = 0; i < ps.n; i++)
            free_user(&ps.v[i].user);
        free(ps.v);
        return -1;
    }

    /* Sort by name, then file order; keep the last line of each name. */
    if (ps.n > 1)
        qsort(ps.v, ps.n, sizeof *ps.v, cmp_entry);
    auth_user *users = ps.n ? malloc(ps.n * sizeof *users) : NULL;
    if (ps.n && users == NULL) {
        for (size_t i = 0; i < ps.n; i++)
            free_user(&ps.v[i].user);
        free(ps.v);
        *why = "out of memory";
        return -1;
    }
    size_t n = 0;
    for (size_t i = 0; i < ps.n; i++) {
        if (i + 1 < ps.n && strcmp(ps.v[i].user.name, ps.v[i + 1].user.name) == 0) {
            free_user(&ps.v[i].user); /* overridden by a later line */
            continue;
        }
        users[n++] = ps.v[i].user;
    }
    free(ps.v);
    out->users = users;
    out->n_users = n;
    return 0;
}

int auth_file_parse(const char *text, auth_file *out, int *err_line, const char **why)
{
    return parse_len(text, strlen(text), out, err_line, why);
}

static char *format_err(const char *path, int line, const char *what)
{
    int n = line > 0 ? snprintf(NULL, 0, "%s:%d: %s", path, line, what)
                     : snprintf(NULL, 0, "%s: %s", path, what);
    if (n < 0)
        return NULL;
    char *s = malloc((size_t)n + 1);
    if (s == NULL)
        return NULL;
    if (line > 0)
        snprintf(s, (size_t)n + 1, "%s:%d: %s", path, line, what);
    else
        snprintf(s, (size_t)n + 1, "%s: %s", path, what);
    return s;
}

int auth_file_load(const char *path, auth_file *out, char **err)
{
    char *buf = NULL;
    size_t len = 0, cap = 0;
    int saved_errno = 0;
    const char *doing = "cannot open";

    out->users = NULL;
    out->n_users = 0;
    if (err != NULL)
        *err = NULL;

    FILE *fp = fopen(path, "rb");
    if (fp == NULL) {
        saved_errno = errno;
        goto io_fail;
    }
    doing = "cannot read";
    for (;;) {
        if (cap - len < 4096) {
            size_t ncap = cap ? cap * 2 : 8192;
            char *nbuf = realloc(buf, ncap);
            if (nbuf == NULL) {
                saved_errno = ENOMEM;
                goto io_fail;
            }
            buf = nbuf;
            cap = ncap;
        }
        size_t got = fread(buf + len, 1, cap - len, fp);
        len += got;
        if (got == 0) {
            if (ferror(fp)) {
                saved_errno = errno ? errno : EIO;
                goto io_fail;
            }
            break;
        }
    }
    fclose(fp);
    fp = NULL;

    int line;
    const char *why;
    int rc = parse_len(buf, len, out, &line, &why);
    OPENSSL_cleanse(buf, len);
    free(buf);
    if (rc != 0) {
        if (err != NULL)
            *err = format_err(path, line, why);
        return line > 0 ? -1 : -2;
    }
    return 0;

io_fail:
    if (fp != NULL)
        fclose(fp);
    if (buf != NULL) {
        OPENSSL_cleanse(buf, len);
        free(buf);
    }
    if (err != NULL) {
        char what[256];
        snprintf(what, sizeof what, "%s: %s", doing, strerror(saved_errno));
        *err = format_err(path, 0, what);
    }
    return -2;
}

void auth_file_free(auth_file *f)
{
    if (f == NULL)
        return;
    for (size_t i = 0; i < f->n_users; i++)
        free_user(&f->users[i]);
    free(f->users);
    f->users = NULL;
    f->n_users = 0;
}

auth_user *auth_file_find(const auth_file *f, const char *user)
{
    size_t lo = 0, hi = f->n_users;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(user, f->users[mid].name);
        if (c == 0)
            return &f->users[mid];
        if (c < 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    return NULL;
}

const char *auth_user_scram_secret(auth_user *u)
{
    switch (u->kind) {
    case AUTH_SECRET_SCRAM:
        return u->secret;
    case AUTH_SECRET_MD5:
        return NULL;
    case AUTH_SECRET_PLAIN:
        break;
    }
    if (u->secret[0] == '\0')
        return u->secret; /* an empty password never authenticates: the mock exchange */
    if (u->scram_cache == NULL)
        u->scram_cache = auth_scram_make_user_verifier(u->name, u->secret);
    return u->scram_cache;
}
