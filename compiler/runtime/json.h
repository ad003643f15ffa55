/* A small JSON reader for the launcher's manifests: the whole document as a tree. */
#ifndef KILN_JSON_H
#define KILN_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum json_type { JSON_NULL, JSON_BOOL, JSON_NUMBER, JSON_STRING, JSON_ARRAY, JSON_OBJECT };

struct json {
    enum json_type type;
    bool boolean;
    char *text;           /* JSON_STRING (unescaped), or the number as written */
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

/* A JSON_NUMBER's value without strtod's multi-precision path: exact when its significant digits fit
 * 2^53 and its decimal exponent is within +-22 (Clinger's fast path), at most one rounding further
 * off with up to 19 digits (never enough to move a float32 result: a shortest float32 repr lies on a
 * float32, not near the midpoint between two), strtod's result otherwise. */
double json_double(const struct json *value);

/* The value as an integer; false unless it is an integral JSON number. */
bool json_int(const struct json *value, int64_t *out);

#endif
