#define _GNU_SOURCE
#include "tpu_probe.h"

#include "pjrt.h"

#include <dirent.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define GOOGLE_PCI_VENDOR 0x1ae0

static bool file_has(const char *path, const char *text)
{
    char buf[256] = {0};
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        return false;
    }
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    return strstr(buf, text) != NULL;
}

static bool google_vendor(const char *vendor_file)
{
    char id[16];
    snprintf(id, sizeof id, "0x%04x", GOOGLE_PCI_VENDOR);
    return file_has(vendor_file, id);
}

/* /dev/vfio/<group> is a TPU when a PCI device in its IOMMU group is Google's. */
static bool vfio_group_is_tpu(const char *group)
{
    char dir[256];
    snprintf(dir, sizeof dir, "/sys/kernel/iommu_groups/%s/devices", group);
    DIR *d = opendir(dir);
    bool tpu = false;
    for (struct dirent *e; d != NULL && !tpu && (e = readdir(d)) != NULL;) {
        char vendor[600];
        snprintf(vendor, sizeof vendor, "%s/%s/vendor", dir, e->d_name);
        tpu = e->d_name[0] != '.' && google_vendor(vendor);
    }
    if (d != NULL) {
        closedir(d);
    }
    return tpu;
}

/* /dev/accelN is a TPU when its PCI device is Google's. */
static bool accel_is_tpu(const char *name)
{
    char vendor[600];
    snprintf(vendor, sizeof vendor, "/sys/class/accel/%s/device/vendor", name);
    return strncmp(name, "accel", 5) == 0 && google_vendor(vendor);
}

static bool vfio_is_tpu(const char *name)
{
    return strcmp(name, "vfio") != 0 && vfio_group_is_tpu(name);
}

/* The first entry of `dir` that `is_tpu` accepts, as a path into `found`. */
static bool scan(const char *dir, bool (*is_tpu)(const char *), char *found, size_t size)
{
    DIR *d = opendir(dir);
    bool any = false;
    for (struct dirent *e; d != NULL && !any && (e = readdir(d)) != NULL;) {
        any = e->d_name[0] != '.' && is_tpu(e->d_name);
        if (any) {
            snprintf(found, size, "%s/%s", dir, e->d_name);
        }
    }
    if (d != NULL) {
        closedir(d);
    }
    return any;
}

/* In a child: libtpu may hang (metadata server) or abort; neither may take the launcher down. */
static void child_create_client(int out)
{
    dup2(out, STDERR_FILENO);
    char why[512];
    struct pjrt_plugin plugin;
    char *path = pjrt_plugin_path("tpu");
    if (!pjrt_plugin_open(&plugin, path, why, sizeof why)) {
        fprintf(stderr, "%s", why);
        _exit(1);
    }
    pjrt_plugin_initialize(&plugin);
    PJRT_Client_Create_Args create = PJRT_ARGS(PJRT_Client_Create_Args);
    pjrt_check(plugin.api, plugin.api->PJRT_Client_Create(&create), "libtpu");
    _exit(0);
}

static int timeout_seconds(void)
{
    const char *text = getenv("KILN_TPU_TIMEOUT");
    int seconds = text != NULL ? atoi(text) : 0;
    return seconds > 0 ? seconds : 60;
}

/* The child's stderr, read while it runs: libtpu logs freely, and a child blocked on a full pipe
 * (64 KiB) would look like a hang. Only the last bytes are kept, for the reason. */
struct drain {
    int fd;
    char tail[4096];
    size_t used;
};

/* Waits up to `wait_ms` for output and keeps it: the bytes read, 0 if none came, -1 at end of file. */
static ssize_t drain_some(struct drain *d, int wait_ms)
{
    struct pollfd p = {.fd = d->fd, .events = POLLIN};
    if (poll(&p, 1, wait_ms) <= 0) {
        return 0;
    }
    char chunk[sizeof d->tail / 2];
    ssize_t n = read(d->fd, chunk, sizeof chunk);
    if (n <= 0) {
        return -1;
    }
    size_t keep = sizeof d->tail - 1 - (size_t)n;
    if (d->used > keep) {
        memmove(d->tail, d->tail + d->used - keep, keep);
        d->used = keep;
    }
    memcpy(d->tail + d->used, chunk, (size_t)n);
    d->used += (size_t)n;
    d->tail[d->used] = '\0';
    return n;
}

static bool wait_child(pid_t pid, struct drain *d, int seconds, char *why, size_t size)
{
    int status = 0;
    struct timespec start, now;
    clock_gettime(CLOCK_MONOTONIC, &start);
    while (waitpid(pid, &status, WNOHANG) == 0) {
        clock_gettime(CLOCK_MONOTONIC, &now);
        if (now.tv_sec - start.tv_sec >= seconds) {
            kill(pid, SIGKILL);
            waitpid(pid, &status, 0);
            snprintf(why, size, "libtpu created no client within %d s (KILN_TPU_TIMEOUT)", seconds);
            return false;
        }
        if (drain_some(d, 20) < 0) {
            nanosleep(&(struct timespec){0, 20 * 1000 * 1000}, NULL);  /* closed early: just wait */
        }
    }
    while (drain_some(d, 0) > 0) {
    }
    return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

/* The child's own "kiln: ..." line if it wrote one, else its last line. */
static void child_reason(struct drain *d, char *why, size_t size)
{
    char *line = NULL;
    for (char *next = strtok(d->tail, "\n"); next != NULL; next = strtok(NULL, "\n")) {
        if (line == NULL || strncmp(line, "kiln: ", 6) != 0 || strncmp(next, "kiln: ", 6) == 0) {
            line = next;
        }
    }
    if (line != NULL) {
        snprintf(why, size, "%s", strncmp(line, "kiln: ", 6) == 0 ? line + 6 : line);
    }
}

static bool client_starts(char *why, size_t size)
{
    int fds[2];
    if (pipe(fds) != 0) {
        snprintf(why, size, "cannot create a pipe to probe libtpu");
        return false;
    }
    pid_t pid = fork();
    if (pid == 0) {
        close(fds[0]);
        child_create_client(fds[1]);
    }
    close(fds[1]);
    snprintf(why, size, "libtpu failed to create a client");
    struct drain d = {.fd = fds[0]};
    bool ok = pid > 0 && wait_child(pid, &d, timeout_seconds(), why, size);
    if (!ok && strstr(why, "KILN_TPU_TIMEOUT") == NULL) {
        child_reason(&d, why, size);
    }
    close(fds[0]);
    return ok;
}

bool tpu_device(char *found, size_t found_size, char *why, size_t why_size)
{
    if (!scan("/dev", accel_is_tpu, found, found_size) && !scan("/dev/vfio", vfio_is_tpu, found, found_size)) {
        snprintf(why, why_size, "no /dev/accel* or /dev/vfio device");
        return false;
    }
    if (!file_has("/sys/devices/virtual/dmi/id/product_name", "Google")) {
        snprintf(why, why_size, "%s is there, but this is not a Google Compute Engine host", found);
        return false;
    }
    return true;
}

bool tpu_probe(char *found, size_t found_size, char *why, size_t why_size)
{
    return tpu_device(found, found_size, why, why_size) && client_starts(why, why_size);
}
