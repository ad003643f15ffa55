/* A growable text buffer for HTTP response bodies. */
#ifndef KILN_STRBUF_H
#define KILN_STRBUF_H

#include "errors.h"

#include <stddef.h>

struct strbuf {
    char *data;
    size_t len, cap;
};

void strbuf_printf(struct strbuf *b, const char *fmt, ...) KILN_PRINTF(2, 3);
void strbuf_append(struct strbuf *b, const void *data, size_t len);
/* A JSON string literal, quotes included. */
void strbuf_json_string(struct strbuf *b, const char *text);
void strbuf_free(struct strbuf *b);

#endif
