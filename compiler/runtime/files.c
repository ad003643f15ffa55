#define _GNU_SOURCE
#include "files.h"

#include "errors.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

uint8_t *read_file(const char *path, size_t *size)
{
    /* O_NONBLOCK: opening a FIFO for read would otherwise block until a writer appears. */
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0) {
        fail("%s: cannot open: %s", path, strerror(errno));
    }
    if (!S_ISREG(st.st_mode)) {
        fail("%s: not a regular file", path);
    }
    FILE *f = fdopen(fd, "rb");
    if (f == NULL) {
        fail("%s: cannot open: %s", path, strerror(errno));
    }
    size_t length = (size_t)st.st_size;
    uint8_t *data = malloc(length > 0 ? length : 1);
    if (data == NULL) {
        fail("%s: out of memory reading %zu bytes", path, length);
    }
    if (fread(data, 1, length, f) != length) {
        fail("%s: cannot read: %s", path, ferror(f) ? strerror(errno) : "file shrank while reading");
    }
    fclose(f);
    *size = length;
    return data;
}

char *executable_dir(void)
{
    char path[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", path, sizeof path - 1);
    if (n < 0) {
        fail("cannot resolve /proc/self/exe: %s", strerror(errno));
    }
    path[n] = '\0';
    char *slash = strrchr(path, '/');
    if (slash != NULL) {
        *slash = '\0';
    }
    return strdup(slash == path ? "/" : path);
}

char *path_join(const char *dir, const char *name)
{
    size_t size = strlen(dir) + strlen(name) + 2;
    char *path = malloc(size);
    if (path == NULL) {
        fail("out of memory");
    }
    snprintf(path, size, "%s/%s", dir, name);
    return path;
}

char *platform_share_dir(const char *platform)
{
    char relative[128];
    snprintf(relative, sizeof relative, "../share/%s", platform);
    char *exe_dir = executable_dir();
    char *dir = path_join(exe_dir, relative);
    free(exe_dir);
    return dir;
}

bool platform_manifest_present(const char *platform)
{
    char *dir = platform_share_dir(platform);
    char *manifest = path_join(dir, "manifest.json");
    bool present = access(manifest, R_OK) == 0;
    free(manifest);
    free(dir);
    return present;
}
