#include "strbuf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void reserve(struct strbuf *b, size_t more)
{
    if (b->len + more + 1 <= b->cap) {
        return;
    }
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + more + 1) {
        cap *= 2;
    }
    b->data = realloc(b->data, cap);
    if (b->data == NULL) {
        fail("out of memory");
    }
    b->cap = cap;
}

void strbuf_printf(struct strbuf *b, const char *fmt, ...)
{
    va_list args;
    va_start(args, fmt);
    int n = vsnprintf(NULL, 0, fmt, args);
    va_end(args);
    reserve(b, (size_t)n);
    va_start(args, fmt);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, args);
    va_end(args);
    b->len += (size_t)n;
}

void strbuf_append(struct strbuf *b, const void *data, size_t len)
{
    reserve(b, len);
    if (len > 0) {  /* an empty buffer's data may be NULL, which memcpy must not see */
        memcpy(b->data + b->len, data, len);
    }
    b->len += len;
    b->data[b->len] = '\0';
}

void strbuf_json_string(struct strbuf *b, const char *text)
{
    strbuf_append(b, "\"", 1);
    for (const unsigned char *p = (const unsigned char *)text; *p; p++) {
        if (*p == '"' || *p == '\\') {
            strbuf_printf(b, "\\%c", *p);
        } else if (*p < 0x20) {
            strbuf_printf(b, "\\u%04x", *p);
        } else {
            strbuf_append(b, p, 1);
        }
    }
    strbuf_append(b, "\"", 1);
}

void strbuf_free(struct strbuf *b)
{
    free(b->data);
    *b = (struct strbuf){0};
}
