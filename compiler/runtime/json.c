#define _POSIX_C_SOURCE 200809L
#include "json.h"

#include "errors.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_DEPTH 32

/* The members read so far of the container open at one depth (one is open per depth at a time). */
struct level {
    struct json *items;
    char **keys;  /* objects only */
    size_t count, capacity;
};

struct reader {
    const char *p, *end;
    char *why;
    size_t why_size;
    char *strings;  /* the next free byte of the document's text pool */
    struct level levels[MAX_DEPTH + 1];
};

/* A parsed document: every string and number text lives in one pool, no longer than the input plus
 * one byte (each token's terminating NUL takes the place of a quote or delimiter), freed with the root. */
struct document {
    struct json root;  /* first, so a root pointer is a document pointer */
    char *pool;
};

static void *checked(void *p)
{
    if (p == NULL) {
        fail("out of memory");
    }
    return p;
}

static bool error(struct reader *r, const char *what)
{
    if (r->why[0] == '\0') {
        snprintf(r->why, r->why_size, "%s", what);
    }
    return false;
}

static void skip_space(struct reader *r)
{
    while (r->p < r->end && (*r->p == ' ' || *r->p == '\n' || *r->p == '\r' || *r->p == '\t')) {
        r->p++;
    }
}

static bool accept(struct reader *r, char c)
{
    skip_space(r);
    if (r->p < r->end && *r->p == c) {
        r->p++;
        return true;
    }
    return false;
}

/* Manifests hold ASCII names; \uXXXX escapes outside ASCII are refused rather than encoded. */
static bool read_string(struct reader *r, char **out)
{
    if (!accept(r, '"')) {
        return error(r, "expected a string");
    }
    char *s = r->strings;
    size_t n = 0;
    while (r->p < r->end && *r->p != '"') {
        char c = *r->p++;
        if (c == '\\' && r->p < r->end) {
            char e = *r->p++;
            const char *plain = strchr("\"\\/bfnrt", e);
            if (plain == NULL || e == 'u') {
                return error(r, "unsupported escape in a string");
            }
            c = "\"\\/\b\f\n\r\t"[plain - "\"\\/bfnrt"];
        }
        s[n++] = c;
    }
    if (r->p == r->end) {
        return error(r, "unterminated string");
    }
    r->p++;
    s[n] = '\0';
    r->strings += n + 1;
    *out = s;
    return true;
}

static bool read_value(struct reader *r, struct json *v, int depth);

/* A container's members gather in its depth's buffer, grown by doubling, which becomes the container's
 * own array when it closes (shrunk to the count): one pass over the text, no copy, and a large array's
 * unused tail pages are never touched. */
static void push_member(struct level *l, const struct json *item, char *key, bool object)
{
    if (l->count == l->capacity) {
        l->capacity = l->capacity ? 2 * l->capacity : 8;
        l->items = checked(realloc(l->items, l->capacity * sizeof *l->items));
        if (object) {
            l->keys = checked(realloc(l->keys, l->capacity * sizeof *l->keys));
        }
    }
    if (object) {
        l->keys[l->count] = key;
    }
    l->items[l->count++] = *item;
}

static void take_members(struct level *l, struct json *v)
{
    v->count = l->count;
    if (v->count > 0) {
        v->items = checked(realloc(l->items, v->count * sizeof *v->items));
        v->keys = l->keys == NULL ? NULL : checked(realloc(l->keys, v->count * sizeof *v->keys));
    }
    *l = (struct level){0};
}

static bool read_container(struct reader *r, struct json *v, char close, int depth)
{
    v->type = close == '}' ? JSON_OBJECT : JSON_ARRAY;
    if (accept(r, close)) {
        return true;
    }
    bool object = v->type == JSON_OBJECT;
    struct level *members = &r->levels[depth];
    bool ok;
    do {
        struct json item = {.type = JSON_NULL};
        char *key = NULL;
        if (object && (!read_string(r, &key) || !accept(r, ':'))) {
            ok = error(r, "expected \"name\": in an object");
            break;
        }
        ok = read_value(r, &item, depth + 1);
        push_member(members, &item, key, object);  /* also when it failed: what it holds is freed with the tree */
    } while (ok && accept(r, ','));
    ok = ok && (accept(r, close) || error(r, object ? "expected , or }" : "expected , or ]"));
    take_members(members, v);
    return ok;
}

/* A plain test, not strchr on a constant: the compiler turns that into a memchr call per character. */
static bool number_char(char c)
{
    return (c >= '0' && c <= '9') || c == '-' || c == '+' || c == '.' || c == 'e' || c == 'E';
}

static bool read_literal(struct reader *r, struct json *v)
{
    static const char *const words[] = {"null", "true", "false"};
    for (int i = 0; i < 3 && !number_char(*r->p); i++) {
        size_t len = strlen(words[i]);
        if ((size_t)(r->end - r->p) >= len && memcmp(r->p, words[i], len) == 0) {
            r->p += len;
            v->type = i == 0 ? JSON_NULL : JSON_BOOL;
            v->boolean = i == 1;
            return true;
        }
    }
    const char *start = r->p;
    while (r->p < r->end && number_char(*r->p)) {
        r->p++;
    }
    if (r->p == start) {
        return error(r, "unexpected character");
    }
    v->type = JSON_NUMBER;
    v->text = r->strings;
    memcpy(r->strings, start, (size_t)(r->p - start));
    r->strings += r->p - start;
    *r->strings++ = '\0';
    return true;
}

static bool read_value(struct reader *r, struct json *v, int depth)
{
    if (depth > MAX_DEPTH) {
        return error(r, "nested too deeply");
    }
    skip_space(r);
    if (r->p == r->end) {
        return error(r, "unexpected end of input");
    }
    if (*r->p == '"') {
        v->type = JSON_STRING;
        return read_string(r, &v->text);
    }
    if (accept(r, '{')) {
        return read_container(r, v, '}', depth);
    }
    if (accept(r, '[')) {
        return read_container(r, v, ']', depth);
    }
    return read_literal(r, v);
}

struct json *json_parse(const char *data, size_t size, char *why, size_t why_size)
{
    struct document *doc = checked(calloc(1, sizeof *doc));
    doc->pool = checked(malloc(size + 1));
    struct reader r = {.p = data, .end = data + size, .why = why, .why_size = why_size, .strings = doc->pool};
    why[0] = '\0';
    struct json *root = &doc->root;
    bool ok = read_value(&r, root, 0);
    skip_space(&r);
    if (ok && r.p != r.end) {
        ok = error(&r, "trailing characters after the document");
    }
    if (!ok) {
        json_free(root);
        return NULL;
    }
    return root;
}

static void free_members(struct json *v)
{
    for (size_t i = 0; i < v->count; i++) {
        free_members(&v->items[i]);
    }
    free(v->items);
    free(v->keys);
}

void json_free(struct json *root)
{
    if (root != NULL) {
        free_members(root);
        free(((struct document *)root)->pool);
        free(root);
    }
}

const struct json *json_get(const struct json *object, const char *key)
{
    if (object == NULL || object->type != JSON_OBJECT) {
        return NULL;
    }
    for (size_t i = 0; i < object->count; i++) {
        if (strcmp(object->keys[i], key) == 0) {
            return &object->items[i];
        }
    }
    return NULL;
}

bool json_int(const struct json *value, int64_t *out)
{
    if (value == NULL || value->type != JSON_NUMBER) {
        return false;
    }
    char *end;
    errno = 0;
    long long n = strtoll(value->text, &end, 10);
    if (errno != 0 || *end != '\0') {
        return false;
    }
    *out = n;
    return true;
}

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

/* Digits into *mantissa, counting significant ones; false past 19 of them (a uint64 holds 19). */
static bool read_digits(const char **p, uint64_t *mantissa, int *significant, int *fraction, bool after_point)
{
    for (; is_digit(**p); (*p)++) {
        *mantissa = *mantissa * 10 + (uint64_t)(**p - '0');
        *significant += *mantissa != 0;
        *fraction += after_point;
        if (*significant > 19) {
            return false;
        }
    }
    return true;
}

/* [eE][+-]digits, at most three of them. */
static bool read_exponent(const char **p, int *exponent)
{
    if (**p != 'e' && **p != 'E') {
        return true;
    }
    (*p)++;
    int sign = **p == '-' ? -1 : 1;
    *p += **p == '-' || **p == '+';
    int value = 0, digits = 0;
    for (; is_digit(**p) && digits < 4; (*p)++, digits++) {
        value = value * 10 + (**p - '0');
    }
    *exponent = sign * value;
    return digits > 0 && digits < 4;
}

double json_double(const struct json *value)
{
    static const double powers_of_ten[] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,  1e8,  1e9,  1e10, 1e11,
                                           1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};
    const char *p = value->text;
    bool negative = *p == '-';
    p += negative;
    uint64_t mantissa = 0;
    int significant = 0, fraction = 0, exponent = 0;
    const char *digits = p;
    bool fits = read_digits(&p, &mantissa, &significant, &fraction, false);
    if (fits && *p == '.') {
        p++;
        fits = read_digits(&p, &mantissa, &significant, &fraction, true);
    }
    fits = fits && p > digits && is_digit(*digits) && read_exponent(&p, &exponent) && *p == '\0';
    exponent -= fraction;
    if (!fits || exponent < -22 || exponent > 22) {
        return strtod(value->text, NULL);
    }
    double x = (double)mantissa;
    x = exponent < 0 ? x / powers_of_ten[-exponent] : x * powers_of_ten[exponent];
    return negative ? -x : x;
}
