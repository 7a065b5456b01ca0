/*
 * A stand-in for libnvidia-ml.so.1, built by the tests as a shared library
 * of that name, so the NVML telemetry source can be tested on machines
 * without a GPU. It exports the symbols modelcat looks up and answers
 * scripted values, for GPU i of STUB_NVML_GPUS (default 2):
 *   utilisation 40 + 20 i %, memory used (1 + i) GiB of 80 GiB,
 *   power 200 + 100 i W, temperature 60 + i C, SM clock 1400 + i MHz,
 *   energy 10^9 mJ + power × the time since nvmlInit_v2 (CLOCK_MONOTONIC),
 *   UUID GPU-stub-000i.
 * STUB_NVML_NO_ENERGY=1 makes the energy counter NOT_SUPPORTED;
 * STUB_NVML_INIT_FAIL=1 makes nvmlInit_v2 fail (DRIVER_NOT_LOADED).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef void *nvmlDevice_t;
typedef struct { unsigned int gpu, memory; } nvmlUtilization_t;
typedef struct { unsigned long long total, free, used; } nvmlMemory_t;

#define NVML_SUCCESS 0
#define NVML_ERROR_INVALID_ARGUMENT 2
#define NVML_ERROR_NOT_SUPPORTED 3
#define NVML_ERROR_DRIVER_NOT_LOADED 9

static int devs[64];
static struct timespec t0;

static int env_on(const char *name)
{
    const char *v = getenv(name);
    return v && *v && strcmp(v, "0") != 0;
}

static unsigned int ngpus(void)
{
    const char *v = getenv("STUB_NVML_GPUS");
    long n = v ? strtol(v, NULL, 10) : 2;
    return n < 0 ? 0 : n > 64 ? 64 : (unsigned int)n;
}

static int index_of(nvmlDevice_t d)
{
    int *p = d;
    return p >= devs && p < devs + 64 ? (int)(p - devs) : -1;
}

int nvmlInit_v2(void)
{
    if (env_on("STUB_NVML_INIT_FAIL"))
        return NVML_ERROR_DRIVER_NOT_LOADED;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    return NVML_SUCCESS;
}

int nvmlShutdown(void) { return NVML_SUCCESS; }

const char *nvmlErrorString(int r)
{
    return r == NVML_ERROR_DRIVER_NOT_LOADED ? "Driver Not Loaded (stub)" : "stub error";
}

int nvmlDeviceGetCount_v2(unsigned int *n)
{
    *n = ngpus();
    return NVML_SUCCESS;
}

int nvmlDeviceGetHandleByIndex_v2(unsigned int i, nvmlDevice_t *d)
{
    if (i >= ngpus())
        return NVML_ERROR_INVALID_ARGUMENT;
    *d = &devs[i];
    return NVML_SUCCESS;
}

int nvmlDeviceGetUtilizationRates(nvmlDevice_t d, nvmlUtilization_t *u)
{
    u->gpu = 40 + 20 * (unsigned int)index_of(d);
    u->memory = 10;
    return NVML_SUCCESS;
}

int nvmlDeviceGetMemoryInfo(nvmlDevice_t d, nvmlMemory_t *m)
{
    m->total = 80ull << 30;
    m->used = (1ull + (unsigned long long)index_of(d)) << 30;
    m->free = m->total - m->used;
    return NVML_SUCCESS;
}

int nvmlDeviceGetPowerUsage(nvmlDevice_t d, unsigned int *mw)
{
    *mw = (200 + 100 * (unsigned int)index_of(d)) * 1000;
    return NVML_SUCCESS;
}

int nvmlDeviceGetTemperature(nvmlDevice_t d, int sensor, unsigned int *t)
{
    if (sensor != 0)
        return NVML_ERROR_INVALID_ARGUMENT;
    *t = 60 + (unsigned int)index_of(d);
    return NVML_SUCCESS;
}

int nvmlDeviceGetClockInfo(nvmlDevice_t d, int type, unsigned int *mhz)
{
    if (type != 1)
        return NVML_ERROR_INVALID_ARGUMENT;
    *mhz = 1400 + (unsigned int)index_of(d);
    return NVML_SUCCESS;
}

int nvmlDeviceGetTotalEnergyConsumption(nvmlDevice_t d, unsigned long long *mj)
{
    struct timespec now;
    if (env_on("STUB_NVML_NO_ENERGY"))
        return NVML_ERROR_NOT_SUPPORTED;
    clock_gettime(CLOCK_MONOTONIC, &now);
    double ms = (double)(now.tv_sec - t0.tv_sec) * 1e3 + (double)(now.tv_nsec - t0.tv_nsec) / 1e6;
    *mj = 1000000000ull + (unsigned long long)(ms * (200 + 100 * index_of(d)));
    return NVML_SUCCESS;
}

int nvmlDeviceGetUUID(nvmlDevice_t d, char *uuid, unsigned int len)
{
    snprintf(uuid, len, "GPU-stub-%04d", index_of(d));
    return NVML_SUCCESS;
}
