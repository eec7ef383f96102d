/* config_lex.c: the file's text split into sections of `key = value` entries.
 *
 * inih does the splitting, but its handler is told neither the line number
 * nor when a section starts (so an empty `[pool.x]` would go unseen), and it
 * keeps only 49 characters of a section name. So inih reads through our own
 * reader, which hands it one line at a time, counts the lines, and looks at
 * each line first with inih's own rules (comment, header, key = value) to
 * record section headers in full and to report malformed lines itself. The
 * handler runs right after its line is read, so the count is its line number.
 *
 * Blanks at the start of a line mean nothing, as in PgBouncer's files: the
 * reader drops them, so inih never sees a Python-style continuation line. An
 * indented `key = value` is thus a key of its own, never a silent tail of the
 * value above it.
 *
 * A key line longer than inih's buffer is split here, by inih's rules, and
 * handed to it as a blank line; a line holding a NUL byte is reported and
 * handed to it as blank too. An on_connect line holding an inline " ;"
 * comment is reported and handed to inih as blank (the comment would cut its
 * SQL). Nothing else is validated here beyond sections and duplicates: values
 * are judged later, once the whole file is known, because [tidepool] may come
 * after the pools. */
#include <ctype.h>
#include <ini.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/config_internal.h"

typedef enum {
    LINE_BLANK,   /* blank or comment: no handler call */
    LINE_HEADER,  /* [section]: no handler call */
    LINE_KEY,     /* key = value: one handler call */
    LINE_SKIPPED, /* reported here, handed to inih as blank */
} line_kind;

typedef struct lexer {
    const char *p, *end;
    int lineno;
    line_kind kind; /* of the line just handed to inih */
    size_t section; /* index in doc->v of the current section */
    config_doc *doc;
    config_errlist *el;
} lexer;

static bool oom(lexer *lx)
{
    lx->el->oom = true;
    return false;
}

/* inih's find_chars_or_comment(): first of `chars`, or of an inline ';'
 * comment (one after a blank), or the end. */
static const char *find_chars_or_comment(const char *s, const char *chars)
{
    bool was_space = false;
    while (*s && (!chars || !strchr(chars, *s)) && !(was_space && *s == ';')) {
        was_space = isspace((unsigned char)*s);
        s++;
    }
    return s;
}

static char *trimmed(const char *a, const char *b)
{
    while (a < b && isspace((unsigned char)*a))
        a++;
    while (b > a && isspace((unsigned char)b[-1]))
        b--;
    return strndup(a, (size_t)(b - a));
}

static bool add_section(lexer *lx, config_section_kind kind, char *header, char *name)
{
    config_doc *doc = lx->doc;
    if (doc->n == doc->cap) {
        size_t cap = doc->cap ? doc->cap * 2 : 8;
        config_section *v = realloc(doc->v, cap * sizeof *v);
        if (!v) {
            free(header);
            free(name);
            return oom(lx);
        }
        doc->v = v;
        doc->cap = cap;
    }
    doc->v[doc->n] = (config_section){.kind = kind, .header = header, .name = name, .line = lx->lineno};
    lx->section = doc->n++;
    return true;
}

static const config_section *find_section(const config_doc *doc, config_section_kind kind,
                                          const char *name, size_t before)
{
    for (size_t i = 0; i < before; i++) {
        const config_section *s = &doc->v[i];
        if (s->kind == kind && !s->rejected && (!name || strcmp(s->name, name) == 0))
            return s;
    }
    return NULL;
}

/* A header line: `inside` is what lies between '[' and ']'. */
static void header(lexer *lx, const char *inside, size_t len, const char *after)
{
    char *content = trimmed(inside, inside + len);
    char *head = content ? config_fmt("[%s]", content) : NULL;
    if (!head) {
        free(content);
        oom(lx);
        return;
    }
    while (isspace((unsigned char)*after))
        after++;
    if (*after && *after != ';' && *after != '#')
        config_errlist_add(lx->el, lx->lineno, head, "unexpected text after ']'");

    config_section_kind kind = CONFIG_SECTION_UNKNOWN;
    char *name = NULL;
    if (strcmp(content, "tidepool") == 0) {
        kind = CONFIG_SECTION_DAEMON;
    } else if (strncmp(content, "pool.", 5) == 0) {
        kind = CONFIG_SECTION_POOL;
        name = trimmed(content + 5, content + strlen(content));
        if (!name) {
            free(content);
            free(head);
            oom(lx);
            return;
        }
    }
    free(content);
    if (!add_section(lx, kind, head, name))
        return;

    config_section *s = &lx->doc->v[lx->section];
    const config_section *first = find_section(lx->doc, kind, name, lx->section);
    if (kind == CONFIG_SECTION_UNKNOWN) {
        config_errlist_add(lx->el, s->line, s->header,
                           "unknown section (expected [tidepool] or [pool.NAME])");
    } else if (kind == CONFIG_SECTION_POOL && *name == '\0') {
        config_errlist_add(lx->el, s->line, s->header, "empty pool name");
        s->rejected = true;
    } else if (kind == CONFIG_SECTION_POOL && strcmp(name, "tidepool") == 0) {
        config_errlist_add(lx->el, s->line, s->header,
                           "the pool name 'tidepool' is reserved for the admin console");
        s->rejected = true;
    } else if (first) {
        config_errlist_add(lx->el, s->line, s->header, "duplicate section (first at line %d)",
                           first->line);
        s->rejected = true;
    }
}

/* on_connect is SQL, where ';' separates statements: an inline " ;" comment
 * there would silently drop the statements after it (inih cuts the value at
 * the first ';' after a blank), so the line is refused, with the value
 * written as it would be kept whole. Every other key keeps its inline
 * comments. Returns whether the line was refused. `sep` is its '=' or ':'. */
static bool sql_cut_by_comment(lexer *lx, const char *line, const char *sep)
{
    static const char key[] = "on_connect";
    const char *k = line, *k_end = sep;
    while (k_end > k && isspace((unsigned char)k_end[-1]))
        k_end--;
    if ((size_t)(k_end - k) != sizeof key - 1 || memcmp(k, key, sizeof key - 1) != 0) return false;
    const char *value = sep + 1;
    if (*find_chars_or_comment(value, NULL) != ';') return false;
    /* The value with the blanks before each such ';' taken out. */
    char *whole = trimmed(value, value + strlen(value));
    if (!whole) {
        oom(lx);
        return true;
    }
    char *o = whole;
    bool was_space = false;
    for (const char *p = whole; *p; p++) {
        if (*p == ';' && was_space)
            while (o > whole && isspace((unsigned char)o[-1]))
                o--;
        was_space = isspace((unsigned char)*p);
        *o++ = *p;
    }
    *o = '\0';
    config_errlist_add(lx->el, lx->lineno, key,
                       "\" ;\" starts a comment here, so the statements after it would be lost: write "
                       "\"%s\" (no blank before ';'), or put the comment on a line of its own",
                       whole);
    free(whole);
    return true;
}

/* Sorts the line out as inih will (see ini_parse_stream() in inih 55), and
 * notes sections and errors. `line` has no blanks at either end. */
static line_kind classify(lexer *lx, const char *line)
{
    if (*line == '\0' || *line == ';' || *line == '#')
        return LINE_BLANK;
    if (*line == '[') {
        const char *close = find_chars_or_comment(line + 1, "]");
        if (*close != ']') {
            config_errlist_add(lx->el, lx->lineno, NULL,
                               "syntax error: a section header without its closing ']'");
            /* Its keys belong to no known section: ignore them rather than
             * report each as misplaced. */
            char *head = strdup(line);
            if (!head || !add_section(lx, CONFIG_SECTION_UNKNOWN, head, NULL))
                oom(lx);
            return LINE_SKIPPED;
        }
        header(lx, line + 1, (size_t)(close - line - 1), close + 1);
        return LINE_HEADER;
    }
    const char *sep = find_chars_or_comment(line, "=:");
    if (*sep != '=' && *sep != ':') {
        config_errlist_add(lx->el, lx->lineno, NULL,
                           "syntax error: expected 'key = value' or a [section] header");
        return LINE_SKIPPED;
    }
    if (sql_cut_by_comment(lx, line, sep)) return LINE_SKIPPED;
    return LINE_KEY;
}

static void add_entry(lexer *lx, config_section *s, const char *key, const char *value)
{
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 8;
        config_entry *v = realloc(s->entries, cap * sizeof *v);
        if (!v) {
            oom(lx);
            return;
        }
        s->entries = v;
        s->cap = cap;
    }
    config_entry e = {.key = strdup(key), .value = strdup(value), .line = lx->lineno};
    if (!e.key || !e.value) {
        free(e.key);
        free(e.value);
        oom(lx);
        return;
    }
    s->entries[s->n++] = e;
}

/* A key line of the current section. */
static void add_key(lexer *lx, const char *name, const char *value)
{
    config_section *s = &lx->doc->v[lx->section];
    if (*name == '\0') {
        config_errlist_add(lx->el, lx->lineno, NULL, "syntax error: no key before '='");
        return;
    }
    if (s->kind == CONFIG_SECTION_UNKNOWN)
        return; /* the section is reported once */
    if (s->kind == CONFIG_SECTION_NONE) {
        config_errlist_add(lx->el, lx->lineno, name,
                           "outside any section (write it under [tidepool] or [pool.NAME])");
        return;
    }
    for (size_t i = 0; i < s->n; i++) {
        if (strcmp(s->entries[i].key, name) == 0) {
            config_errlist_add(lx->el, lx->lineno, name, "duplicate key (first at line %d)",
                               s->entries[i].line);
            return;
        }
    }
    add_entry(lx, s, name, value);
}

/* A key line longer than inih's buffer (Debian builds it with 200 bytes): we
 * split it ourselves, by inih's rules (ini_parse_stream() with inline
 * comments): the key is what comes before the first '=' or ':', the value
 * what follows, up to an inline " ;" comment, without blanks at either end.
 * So a long url or on_connect is read like any other line. */
static void long_key_line(lexer *lx, const char *line)
{
    const char *sep = find_chars_or_comment(line, "=:");
    const char *value = sep + 1;
    char *key = trimmed(line, sep);
    char *val = key ? trimmed(value, find_chars_or_comment(value, NULL)) : NULL;
    if (!val) {
        free(key);
        oom(lx);
        return;
    }
    add_key(lx, key, val);
    free(key);
    free(val);
}

static char *reader(char *str, int num, void *stream)
{
    lexer *lx = stream;
    if (lx->p >= lx->end || num < 2)
        return NULL;
    const char *line = lx->p;
    const char *nl = memchr(line, '\n', (size_t)(lx->end - line));
    size_t len = nl ? (size_t)(nl - line) + 1 : (size_t)(lx->end - line);
    lx->p = line + len;
    lx->lineno++;

    /* The line without a UTF-8 BOM (first line), and without blanks around. */
    const char *a = line, *b = line + len;
    if (lx->lineno == 1 && len >= 3 && memcmp(a, "\xEF\xBB\xBF", 3) == 0)
        a += 3;
    while (a < b && isspace((unsigned char)*a))
        a++;
    while (b > a && isspace((unsigned char)b[-1]))
        b--;
    size_t n = (size_t)(b - a);

    line_kind kind = LINE_SKIPPED;
    char *copy = NULL;
    if (memchr(line, '\0', len))
        config_errlist_add(lx->el, lx->lineno, NULL, "the line holds a NUL byte");
    else if (!(copy = strndup(a, n)))
        oom(lx);
    else
        kind = classify(lx, copy);
    if (kind == LINE_KEY && n + 2 > (size_t)num) {
        /* Too long for inih's buffer (with its newline and NUL). A header or
         * a comment is no trouble: we have read it already. */
        long_key_line(lx, copy);
        kind = LINE_SKIPPED;
    }
    free(copy);
    lx->kind = kind;
    if (lx->kind != LINE_KEY) {
        /* inih sees a blank line; the section is known to us only. */
        snprintf(str, (size_t)num, "\n");
        return str;
    }
    memcpy(str, a, n);
    str[n] = '\n';
    str[n + 1] = '\0';
    return str;
}

static int handler(void *user, const char *section, const char *name, const char *value)
{
    (void)section; /* ours is complete; inih's is cut at 49 characters */
    lexer *lx = user;
    if (lx->kind == LINE_KEY)
        add_key(lx, name, value);
    lx->kind = LINE_SKIPPED; /* one call per line */
    return 1;
}

int config_lex(const char *text, size_t len, config_doc *doc, config_errlist *el)
{
    lexer lx = {.p = text, .end = text + len, .doc = doc, .el = el};
    char *none = strdup("");
    if (!none || !add_section(&lx, CONFIG_SECTION_NONE, none, NULL)) {
        el->oom = true;
        return -1;
    }
    if (ini_parse_stream(reader, &lx, handler, &lx) == -2)
        el->oom = true;
    return el->oom ? -1 : 0;
}

void config_doc_free(config_doc *doc)
{
    for (size_t i = 0; i < doc->n; i++) {
        config_section *s = &doc->v[i];
        for (size_t j = 0; j < s->n; j++) {
            free(s->entries[j].key);
            free(s->entries[j].value);
        }
        free(s->entries);
        free(s->header);
        free(s->name);
    }
    free(doc->v);
    *doc = (config_doc){0};
}
