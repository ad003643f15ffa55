#include "errors.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

static void print_line(const char *fmt, va_list args)
{
    fputs("kiln: ", stderr);
    vfprintf(stderr, fmt, args);
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
