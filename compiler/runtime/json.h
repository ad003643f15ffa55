/* A small JSON reader for the launcher's manifests: the whole document as a tree. */
#ifndef KILN_JSON_H
#define KILN_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum json_type { JSON_NULL, JSON_BOOL, JSON_NUMBER, JSON_STRING, JSON_ARRAY, JSON_OBJECT };

struct json {
    enum json_type type;
    char *text;           /* JSON_STRING (unescaped), or the number as written */
    bool boolean;
    size_t count;         /* array items or object members */
    struct json *items;
    char **keys;          /* object member names, parallel to items */
};

/* Parses `size` bytes; returns NULL with a reason in `why` on malformed input. */
struct json *json_parse(const char *data, size_t size, char *why, size_t why_size);
/* Frees a document: only a root json_parse returned, never a member. */
void json_free(struct json *root);

/* The member `key` of an object, or NULL (also when `object` is not an object). */
const struct json *json_get(const struct json *object, const char *key);

/* The value as an integer; false unless it is an integral JSON number. */
bool json_int(const struct json *value, int64_t *out);

#endif
