#include "cpu_features.h"

#include "kiln_model.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

static void append_name(char *buf, unsigned size, const char *name)
{
    size_t used = strlen(buf);
    snprintf(buf + used, size - used, "%s%s", used ? " " : "", name);
}

void cpu_mask_names(uint32_t mask, char *buf, unsigned size)
{
    static const struct { uint32_t bit; const char *name; } names[] = {
        {KILN_CPU_AVX512, "avx512"}, {KILN_CPU_AVX2, "avx2"},
        {KILN_CPU_FMA, "fma"}, {KILN_CPU_SSE42, "sse4.2"},
    };
    buf[0] = '\0';
    for (unsigned i = 0; i < sizeof names / sizeof names[0]; i++) {
        if (mask & names[i].bit) {
            append_name(buf, size, names[i].name);
        }
    }
    if (buf[0] == '\0') {
        snprintf(buf, size, "baseline");
    }
}

#if defined(__x86_64__)
#include <cpuid.h>

enum { EAX, EBX, ECX, EDX };

struct cpuid_flag {
    const char *name;
    unsigned leaf, reg, bit;
    int level; /* x86-64 psABI micro-architecture level that requires it */
};

static const struct cpuid_flag flags[] = {
    {"sse3", 1, ECX, 0, 2}, {"ssse3", 1, ECX, 9, 2}, {"sse4.1", 1, ECX, 19, 2},
    {"sse4.2", 1, ECX, 20, 2}, {"popcnt", 1, ECX, 23, 2}, {"cx16", 1, ECX, 13, 2},
    {"avx", 1, ECX, 28, 3}, {"avx2", 7, EBX, 5, 3}, {"bmi1", 7, EBX, 3, 3}, {"bmi2", 7, EBX, 8, 3},
    {"f16c", 1, ECX, 29, 3}, {"fma", 1, ECX, 12, 3}, {"lzcnt", 0x80000001, ECX, 5, 3},
    {"movbe", 1, ECX, 22, 3},
    {"avx512f", 7, EBX, 16, 4}, {"avx512bw", 7, EBX, 30, 4}, {"avx512cd", 7, EBX, 28, 4},
    {"avx512dq", 7, EBX, 17, 4}, {"avx512vl", 7, EBX, 31, 4},
};
enum { N_FLAGS = sizeof flags / sizeof flags[0], OSXSAVE_BIT = 27 };
static const struct cpuid_flag fma_flag = {"fma", 1, ECX, 12, 3};

static bool has_flag(const struct cpuid_flag *f)
{
    unsigned r[4] = {0};
    if (!__get_cpuid_count(f->leaf, 0, &r[EAX], &r[EBX], &r[ECX], &r[EDX])) {
        return false;
    }
    return (r[f->reg] >> f->bit) & 1;
}

/* XCR0: which register state the OS saves; AVX is unusable without it. */
static uint64_t os_saved_state(void)
{
    unsigned r[4] = {0};
    __get_cpuid(1, &r[EAX], &r[EBX], &r[ECX], &r[EDX]);
    if (!((r[ECX] >> OSXSAVE_BIT) & 1)) {
        return 0;
    }
    uint32_t lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return (uint64_t)hi << 32 | lo;
}

static bool has_level(const bool *have, int level)
{
    for (int i = 0; i < N_FLAGS; i++) {
        if (flags[i].level <= level && !have[i]) {
            return false;
        }
    }
    return true;
}

void cpu_features_detect(struct cpu_features *cpu)
{
    bool have[N_FLAGS];
    cpu->detected[0] = '\0';
    for (int i = 0; i < N_FLAGS; i++) {
        have[i] = has_flag(&flags[i]);
        if (have[i]) {
            append_name(cpu->detected, sizeof cpu->detected, flags[i].name);
        }
    }
    uint64_t xcr0 = os_saved_state();
    bool os_avx = (xcr0 & 0x6) == 0x6;          /* SSE + AVX state */
    bool os_avx512 = (xcr0 & 0xe6) == 0xe6;     /* + opmask, ZMM upper halves, ZMM16-31 */
    append_name(cpu->detected, sizeof cpu->detected, os_avx ? "os-avx" : "no-os-avx");
    if (os_avx512) {
        append_name(cpu->detected, sizeof cpu->detected, "os-avx512");
    }
    cpu->mask = 0;
    cpu->mask |= has_level(have, 2) ? KILN_CPU_SSE42 : 0;
    cpu->mask |= os_avx && has_level(have, 3) ? KILN_CPU_AVX2 : 0;
    cpu->mask |= os_avx && has_flag(&fma_flag) ? KILN_CPU_FMA : 0;
    cpu->mask |= os_avx512 && has_level(have, 4) ? KILN_CPU_AVX512 : 0;
}

#else /* aarch64: every variant the compiler emits runs on the baseline */
#include <sys/auxv.h>

void cpu_features_detect(struct cpu_features *cpu)
{
    static const struct { unsigned long bit; const char *name; } hwcaps[] = {
        {1ul << 0, "fp"}, {1ul << 1, "asimd"}, {1ul << 8, "atomics"},
        {1ul << 9, "fphp"}, {1ul << 20, "asimddp"}, {1ul << 22, "sve"},
    };
    unsigned long hwcap = getauxval(AT_HWCAP);
    cpu->mask = 0;
    cpu->detected[0] = '\0';
    for (unsigned i = 0; i < sizeof hwcaps / sizeof hwcaps[0]; i++) {
        if (hwcap & hwcaps[i].bit) {
            append_name(cpu->detected, sizeof cpu->detected, hwcaps[i].name);
        }
    }
}
#endif
