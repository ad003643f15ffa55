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
    if (access(bundled, F_OK) == 0) {
        free(beside);
        return bundled;
    }
    if (access(beside, F_OK) == 0) {
        free(bundled);
        return beside;
    }
    fail("weights for model '%s' not found: tried %s and %s (use --weights FILE)", model->model_name,
         bundled, beside);
}

static void map_file(struct weights *w)
{
    /* O_NONBLOCK: a FIFO would otherwise block open() until a writer appears. */
    int fd = open(w->path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0) {
        fail("%s: cannot open weights: %s", w->path, strerror(errno));
    }
    if (!S_ISREG(st.st_mode)) {
        fail("%s: weights must be a regular file", w->path);
    }
    w->file_bytes = (size_t)st.st_size;
    if (w->file_bytes < 8) {
        fail("%s: not a safetensors file (%zu bytes, too short for the header length)", w->path,
             w->file_bytes);
    }
    w->map = mmap(NULL, w->file_bytes, PROT_READ, MAP_PRIVATE, fd, 0);
    if (w->map == MAP_FAILED) {
        fail("%s: cannot map weights: %s", w->path, strerror(errno));
    }
    close(fd);
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
