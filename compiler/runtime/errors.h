/* One-line error reporting: every failure the user can cause ends the process
 * with a single "kiln: ..." line on stderr and a non-zero exit code. */
#ifndef KILN_ERRORS_H
#define KILN_ERRORS_H

#define KILN_EXIT_USER 1  /* bad input file, bad weights, unsupported CPU */
#define KILN_EXIT_USAGE 2 /* bad command line */

#define KILN_PRINTF(fmt, args) __attribute__((format(printf, fmt, args)))

_Noreturn void fail(const char *fmt, ...) KILN_PRINTF(1, 2);
_Noreturn void fail_usage(const char *fmt, ...) KILN_PRINTF(1, 2);
void note(const char *fmt, ...) KILN_PRINTF(1, 2);

#endif
