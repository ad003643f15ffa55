#include "errors.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

/* Length of the valid UTF-8 sequence starting at s, or 0 if there is none. */
static size_t utf8_length(const unsigned char *s)
{
    size_t n = s[0] >= 0xf0 && s[0] <= 0xf4 ? 4 : s[0] >= 0xe0 ? 3 : s[0] >= 0xc2 && s[0] < 0xe0 ? 2 : 0;
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xc0) != 0x80) {
            return 0;
        }
    }
    return n;
}

/* Messages quote bytes read from user files; control bytes and broken UTF-8 are
 * printed as \xNN so the line stays one readable line of text. */
static void put_escaped(const unsigned char *s)
{
    while (*s) {
        size_t n = *s >= 0x80 ? utf8_length(s) : (*s >= 0x20 && *s != 0x7f);
        if (n == 0) {
            fprintf(stderr, "\\x%02x", *s++);
        } else {
            fwrite(s, 1, n, stderr);
            s += n;
        }
    }
}

static void print_line(const char *fmt, va_list args)
{
    va_list copy;
    va_copy(copy, args);
    int length = vsnprintf(NULL, 0, fmt, copy);
    va_end(copy);
    char *line = length < 0 ? NULL : malloc((size_t)length + 1);
    fputs("kiln: ", stderr);
    if (line == NULL) {
        vfprintf(stderr, fmt, args);
    } else {
        vsnprintf(line, (size_t)length + 1, fmt, args);
        put_escaped((const unsigned char *)line);
        free(line);
    }
    fputc('\n', stderr);
}

_Noreturn void fail(const char *fmt, ...)
{
    va_list args;
    va_start(args, fmt);
    print_line(fmt, args);
    va_end(args);
    exit(KILN_EXIT_USER);
}

_Noreturn void fail_usage(const char *fmt, ...)
{
    va_list args;
    va_start(args, fmt);
    print_line(fmt, args);
    va_end(args);
    exit(KILN_EXIT_USAGE);
}

void note(const char *fmt, ...)
{
    va_list args;
    va_start(args, fmt);
    print_line(fmt, args);
    va_end(args);
}
