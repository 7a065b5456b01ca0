/*
 * The NVML source: libnvidia-ml.so.1 opened with dlopen when a benchmark
 * asks for it, so modelcat builds and runs on machines without NVIDIA's
 * driver. The few types used are declared here with the layout of nvml.h
 * (an opaque device handle; nvmlUtilization_t {unsigned gpu, memory};
 * nvmlMemory_t {unsigned long long total, free, used}); every function
 * returns nvmlReturn_t, 0 being NVML_SUCCESS.
 *
 * nvmlInit_v2, nvmlDeviceGetCount_v2 and nvmlDeviceGetHandleByIndex_v2
 * are required; the readings are optional: a symbol the library lacks, or
 * a reading it refuses (NVML_ERROR_NOT_SUPPORTED on some boards), leaves
 * that column of the sample unknown.
 */
#include <dlfcn.h>
#include <stdio.h>
#include <string.h>

#include "core/mem.h"
#include "telemetry/telemetry_int.h"

typedef int nvml_ret;
typedef void *nvml_dev;
struct nvml_util { unsigned int gpu, memory; };
struct nvml_mem { unsigned long long total, free, used; };
/* nvmlMemory_v2_t: "used" leaves out the driver's reserved memory, as
   nvidia-smi shows it; v1's "used" counts it (~0.5 GiB on an H100). */
struct nvml_mem2 { unsigned int version; unsigned long long total, reserved, free, used; };
#define NVML_MEMORY_V2 ((unsigned int)(sizeof(struct nvml_mem2) | (2u << 24)))

#define NVML_TEMPERATURE_GPU 0
#define NVML_CLOCK_SM 1
#define NVML_DEVICE_UUID_V2_BUFFER_SIZE 96

struct tel__nvml {
    void *dl;
    nvml_ret (*init)(void);
    nvml_ret (*shutdown)(void);
    nvml_ret (*count)(unsigned int *);
    nvml_ret (*handle)(unsigned int, nvml_dev *);
    nvml_ret (*util)(nvml_dev, struct nvml_util *);
    nvml_ret (*mem)(nvml_dev, struct nvml_mem *);
    nvml_ret (*mem2)(nvml_dev, struct nvml_mem2 *);
    nvml_ret (*power)(nvml_dev, unsigned int *);
    nvml_ret (*temp)(nvml_dev, int, unsigned int *);
    nvml_ret (*clock)(nvml_dev, int, unsigned int *);
    nvml_ret (*energy)(nvml_dev, unsigned long long *);
    nvml_ret (*uuid)(nvml_dev, char *, unsigned int);
    const char *(*errstr)(nvml_ret);
    int ndev;
    nvml_dev dev[TEL_MAX_GPUS];
    char uuids[TEL_MAX_GPUS][NVML_DEVICE_UUID_V2_BUFFER_SIZE];
};

/* dlsym into a function pointer without the object/function cast warning. */
static void sym(void *dl, const char *name, void *fp)
{
    void *p = dlsym(dl, name);
    memcpy(fp, &p, sizeof(p));
}

static const char *nvml_err(const struct tel__nvml *n, nvml_ret r)
{
    const char *s = n->errstr ? n->errstr(r) : NULL;
    return s ? s : "unknown NVML error";
}

int tel__nvml_open(struct tel__nvml **out, const char *path, struct err_detail *d)
{
    const char *lib = path && *path ? path : "libnvidia-ml.so.1";
    struct tel__nvml *n = mem_calloc(1, sizeof(*n));
    int rc = 0, inited = 0;
    nvml_ret r;
    unsigned int count = 0;
    if (!n)
        return err_set(d, ERR_NOMEM, "gpu-telemetry", "out of memory");
    if (!(n->dl = dlopen(lib, RTLD_NOW | RTLD_LOCAL))) {
        const char *e = dlerror();
        rc = err_set(d, ERR_UNAVAIL, "gpu-telemetry",
                     "nvml: cannot load %s (is the NVIDIA driver installed?): %s", lib,
                     e ? e : "dlopen failed");
        goto out;
    }
    sym(n->dl, "nvmlInit_v2", &n->init);
    sym(n->dl, "nvmlShutdown", &n->shutdown);
    sym(n->dl, "nvmlDeviceGetCount_v2", &n->count);
    sym(n->dl, "nvmlDeviceGetHandleByIndex_v2", &n->handle);
    sym(n->dl, "nvmlDeviceGetUtilizationRates", &n->util);
    sym(n->dl, "nvmlDeviceGetMemoryInfo", &n->mem);
    sym(n->dl, "nvmlDeviceGetMemoryInfo_v2", &n->mem2);
    sym(n->dl, "nvmlDeviceGetPowerUsage", &n->power);
    sym(n->dl, "nvmlDeviceGetTemperature", &n->temp);
    sym(n->dl, "nvmlDeviceGetClockInfo", &n->clock);
    sym(n->dl, "nvmlDeviceGetTotalEnergyConsumption", &n->energy);
    sym(n->dl, "nvmlDeviceGetUUID", &n->uuid);
    sym(n->dl, "nvmlErrorString", &n->errstr);
    if (!n->init || !n->count || !n->handle) {
        rc = err_set(d, ERR_UNAVAIL, "gpu-telemetry",
                     "nvml: %s lacks nvmlInit_v2, nvmlDeviceGetCount_v2 or"
                     " nvmlDeviceGetHandleByIndex_v2", lib);
        goto out;
    }
    if ((r = n->init())) {
        rc = err_set(d, ERR_UNAVAIL, "gpu-telemetry", "nvml: nvmlInit_v2: %s", nvml_err(n, r));
        goto out;
    }
    inited = 1;
    if ((r = n->count(&count))) {
        rc = err_set(d, ERR_UNAVAIL, "gpu-telemetry", "nvml: nvmlDeviceGetCount_v2: %s",
                     nvml_err(n, r));
        goto out;
    }
    for (unsigned int i = 0; i < count && n->ndev < TEL_MAX_GPUS; i++) {
        if ((r = n->handle(i, &n->dev[n->ndev]))) {
            rc = err_set(d, ERR_UNAVAIL, "gpu-telemetry",
                         "nvml: nvmlDeviceGetHandleByIndex_v2(%u): %s", i, nvml_err(n, r));
            goto out;
        }
        char *u = n->uuids[n->ndev];
        if (!n->uuid || n->uuid(n->dev[n->ndev], u, NVML_DEVICE_UUID_V2_BUFFER_SIZE))
            u[0] = '\0';
        u[NVML_DEVICE_UUID_V2_BUFFER_SIZE - 1] = '\0';
        n->ndev++;
    }
out:
    if (rc) {
        if (inited && n->shutdown)
            n->shutdown();
        if (n->dl)
            dlclose(n->dl);
        mem_free(n);
        return rc;
    }
    *out = n;
    return 0;
}

void tel__nvml_close(struct tel__nvml *n)
{
    if (!n)
        return;
    if (n->shutdown)
        n->shutdown();
    dlclose(n->dl);
    mem_free(n);
}

int tel__nvml_sample(struct tel__nvml *n, int64_t now_ms, struct tel_gpu_sample *out, int max)
{
    int k = 0;
    for (int i = 0; i < n->ndev && k < max; i++) {
        struct tel_gpu_sample *s = &out[k++];
        struct nvml_util u;
        struct nvml_mem m;
        unsigned int v;
        unsigned long long e;
        memset(s, 0, sizeof(*s));
        s->ts_ms = now_ms;
        s->gpu = i;
        snprintf(s->uuid, sizeof(s->uuid), "%s", n->uuids[i]);
        if (n->util && !n->util(n->dev[i], &u))
            s->util_pct = u.gpu > 100 ? 100 : u.gpu, s->have |= TEL_HAVE_UTIL;
        struct nvml_mem2 m2 = {.version = NVML_MEMORY_V2};
        if (n->mem2 && !n->mem2(n->dev[i], &m2))
            s->mem_used_bytes = (double)m2.used, s->have |= TEL_HAVE_MEM;
        else if (n->mem && !n->mem(n->dev[i], &m))
            s->mem_used_bytes = (double)m.used, s->have |= TEL_HAVE_MEM;
        if (n->power && !n->power(n->dev[i], &v))
            s->power_w = v / 1000.0, s->have |= TEL_HAVE_POWER;
        if (n->temp && !n->temp(n->dev[i], NVML_TEMPERATURE_GPU, &v))
            s->temp_c = v, s->have |= TEL_HAVE_TEMP;
        if (n->clock && !n->clock(n->dev[i], NVML_CLOCK_SM, &v))
            s->sm_clock_mhz = v, s->have |= TEL_HAVE_CLOCK;
        if (n->energy && !n->energy(n->dev[i], &e))
            s->energy_j = (double)e / 1000.0, s->have |= TEL_HAVE_ENERGY;
    }
    return k;
}
