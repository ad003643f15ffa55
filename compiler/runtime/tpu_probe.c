#define _GNU_SOURCE
#include "tpu_probe.h"

#include "pjrt.h"

#include <dirent.h>
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

static bool wait_child(pid_t pid, int seconds, char *why, size_t size)
{
    int status = 0;
    for (long waited_ms = 0; waitpid(pid, &status, WNOHANG) == 0; waited_ms += 20) {
        if (waited_ms >= seconds * 1000L) {
            kill(pid, SIGKILL);
            waitpid(pid, &status, 0);
            snprintf(why, size, "libtpu created no client within %d s (KILN_TPU_TIMEOUT)", seconds);
            return false;
        }
        nanosleep(&(struct timespec){0, 20 * 1000 * 1000}, NULL);
    }
    return WIFEXITED(status) && WEXITSTATUS(status) == 0;
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
    bool ok = pid > 0 && wait_child(pid, timeout_seconds(), why, size);
    char text[512];
    ssize_t n = ok ? 0 : read(fds[0], text, sizeof text - 1);
    if (n > 0) {
        text[n] = '\0';
        text[strcspn(text, "\n")] = '\0';
        snprintf(why, size, "%s", strncmp(text, "kiln: ", 6) == 0 ? text + 6 : text);
    }
    close(fds[0]);
    return ok;
}

bool tpu_probe(char *found, size_t found_size, char *why, size_t why_size)
{
    if (!scan("/dev", accel_is_tpu, found, found_size) && !scan("/dev/vfio", vfio_is_tpu, found, found_size)) {
        snprintf(why, why_size, "no /dev/accel* or /dev/vfio device");
        return false;
    }
    if (!file_has("/sys/devices/virtual/dmi/id/product_name", "Google")) {
        snprintf(why, why_size, "%s is there, but this is not a Google Compute Engine host", found);
        return false;
    }
    return client_starts(why, why_size);
}
