#include "bindings.h"

#include "errors.h"

#include <stdio.h>
#include <string.h>

static void tensor_names(const kiln_tensor_desc *tensors, uint32_t count, char *buf, size_t size)
{
    buf[0] = '\0';
    for (uint32_t i = 0; i < count; i++) {
        size_t used = strlen(buf);
        snprintf(buf + used, size - used, "%s%s", i ? ", " : "", tensors[i].name);
    }
}

static int named_tensor(const char *arg, const kiln_tensor_desc *tensors, uint32_t count)
{
    const char *equals = strchr(arg, '=');
    for (uint32_t i = 0; equals != NULL && i < count; i++) {
        size_t len = strlen(tensors[i].name);
        if ((size_t)(equals - arg) == len && memcmp(arg, tensors[i].name, len) == 0) {
            return (int)i;
        }
    }
    return -1;
}

struct binding binding_resolve(const char *arg, const kiln_tensor_desc *tensors, uint32_t count,
                               const char *flag, const char *kind)
{
    int index = named_tensor(arg, tensors, count);
    if (index >= 0) {
        return (struct binding){index, arg + strlen(tensors[index].name) + 1};
    }
    if (count == 1) {
        return (struct binding){0, arg};
    }
    char names[512];
    tensor_names(tensors, count, names, sizeof names);
    fail_usage("%s %s: the model has %u %ss (%s); use %s NAME=FILE", flag, arg, count, kind, names,
               flag);
}
