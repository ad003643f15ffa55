#define _GNU_SOURCE
#include "weights.h"

#include "errors.h"
#include "files.h"
#include "safetensors.h"
#include "tensor.h"

#include <errno.h>
#include <stdbool.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

static char *candidate(const char *exe_dir, const char *subdir, const char *model_name)
{
    char name[512];
    snprintf(name, sizeof name, "%s%s.safetensors", subdir, model_name);
    return path_join(exe_dir, name);
}

static char *locate(const kiln_model_desc *model, const char *override)
{
    if (override == NULL) {
        override = getenv("KILN_WEIGHTS");
    }
    if (override != NULL && override[0] != '\0') {
        return strdup(override);
    }
    char *exe_dir = executable_dir();
    char *bundled = candidate(exe_dir, "../weights/", model->model_name);
    char *beside = candidate(exe_dir, "", model->model_name);
    free(exe_dir);
    if (weights_file_exists(bundled)) {
        free(beside);
        return bundled;
    }
    if (weights_file_exists(beside)) {
        free(bundled);
        return beside;
    }
    fail("weights for model '%s' not found: tried %s and %s (use --weights FILE)", model->model_name,
         bundled, beside);
}

/* O_NONBLOCK: a FIFO would otherwise block open() until a writer appears. */
static int open_regular(const char *path, size_t *bytes)
{
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    struct stat st;
    if (fd < 0) {
        return -1;
    }
    if (fstat(fd, &st) != 0) {
        fail("%s: cannot open weights: %s", path, strerror(errno));
    }
    if (!S_ISREG(st.st_mode)) {
        fail("%s: weights must be a regular file", path);
    }
    *bytes = (size_t)st.st_size;
    return fd;
}

static char *part_path(const char *path, int index)
{
    char suffix[32];
    snprintf(suffix, sizeof suffix, ".part-%03d", index);
    char *part = malloc(strlen(path) + sizeof suffix);
    if (part == NULL) {
        fail("out of memory");
    }
    strcpy(part, path);
    strcat(part, suffix);
    return part;
}

static size_t parts_bytes(const char *path, int *count)
{
    size_t total = 0, bytes;
    for (*count = 0;; (*count)++) {
        char *part = part_path(path, *count);
        int fd = open_regular(part, &bytes);
        free(part);
        if (fd < 0) {
            return total;
        }
        close(fd);
        if (total % (size_t)sysconf(_SC_PAGESIZE) != 0) {
            fail("%s.part-%03d: the part before it is not a whole number of pages", path, *count);
        }
        total += bytes;
    }
}

/* An OCI image cuts a weight file larger than its layer limit into NAME.part-000, -001, ... (all but
 * the last a whole number of pages): map them back to back into one range, so the rest of the
 * launcher sees one file and nothing is copied. */
static void *map_parts(const char *path, size_t *size)
{
    int count;
    *size = parts_bytes(path, &count);
    if (count == 0 || *size == 0) {
        fail("%s: cannot open weights: %s", path, strerror(ENOENT));
    }
    uint8_t *base = mmap(NULL, *size, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (base == MAP_FAILED) {
        fail("%s: cannot reserve %zu bytes for weights: %s", path, *size, strerror(errno));
    }
    size_t offset = 0, bytes;
    for (int i = 0; i < count; i++, offset += bytes) {
        char *part = part_path(path, i);
        int fd = open_regular(part, &bytes);
        if (fd < 0 || offset + bytes > *size
            || (bytes > 0 && mmap(base + offset, bytes, PROT_READ, MAP_PRIVATE | MAP_FIXED, fd, 0) == MAP_FAILED)) {
            fail("%s: cannot map weights: %s", part, strerror(errno));
        }
        close(fd);
        free(part);
    }
    if (offset != *size) {
        fail("%s: its parts changed size while being mapped", path);
    }
    return base;
}

void *weights_map_file(const char *path, size_t *size)
{
    int fd = open_regular(path, size);
    if (fd < 0) {
        if (errno == ENOENT) {
            return map_parts(path, size);
        }
        fail("%s: cannot open weights: %s", path, strerror(errno));
    }
    void *map = *size == 0 ? NULL : mmap(NULL, *size, PROT_READ, MAP_PRIVATE, fd, 0);
    if (map == MAP_FAILED) {
        fail("%s: cannot map weights: %s", path, strerror(errno));
    }
    close(fd);
    return map;
}

bool weights_file_exists(const char *path)
{
    char *first = part_path(path, 0);
    bool exists = access(path, F_OK) == 0 || access(first, F_OK) == 0;
    free(first);
    return exists;
}

static void map_file(struct weights *w)
{
    w->map = weights_map_file(w->path, &w->file_bytes);
    if (w->file_bytes < 8) {
        fail("%s: not a safetensors file (%zu bytes, too short for the header length)", w->path,
             w->file_bytes);
    }
}

/* The generated code may use aligned vector loads on weights. */
static const uint8_t *aligned_data(struct weights *w, size_t data_offset, size_t data_bytes)
{
    const uint8_t *data = (const uint8_t *)w->map + data_offset;
    if ((uintptr_t)data % KILN_ALIGNMENT == 0) {
        return data;
    }
    w->copy = alloc_aligned(data_bytes);
    memcpy(w->copy, data, data_bytes);
    return w->copy;
}

void weights_load(struct weights *w, const kiln_model_desc *model, const char *override)
{
    *w = (struct weights){0};
    bool needs_file = model->n_weights > 0 || model->weights_data_bytes > 0;
    if (!needs_file && override == NULL && getenv("KILN_WEIGHTS") == NULL) {
        return;
    }
    w->path = locate(model, override);
    map_file(w);
    size_t data_offset = safetensors_check_header(w->map, w->file_bytes, model, w->path);
    w->data = aligned_data(w, data_offset, w->file_bytes - data_offset);
    safetensors_check_digests(w->data, model, w->path);
}

void weights_unload(struct weights *w)
{
    if (w->map != NULL) {
        munmap(w->map, w->file_bytes);
    }
    free(w->copy);
    free(w->path);
    *w = (struct weights){0};
}
