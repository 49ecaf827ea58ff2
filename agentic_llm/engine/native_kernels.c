
#include <math.h>
#include <stdint.h>
#include <stddef.h>
#include <time.h>

/* Entry j of row l as the masked logits hold it: itself when allowed, else
   l[j] + -inf (-inf, or NaN for a NaN or +inf logit). */
static inline float masked_value(const float *l, const uint32_t *m, int64_t j) {
    if (!m || ((m[j >> 5] >> (j & 31)) & 1u)) return l[j];
    return l[j] + (-INFINITY);
}

/* numpy's argmax: the first maximal entry, or the first NaN. */
static void exact_row(const float *l, const uint32_t *m, int64_t vocab, float *out_max, int64_t *out_arg) {
    float best = masked_value(l, m, 0);
    int64_t arg = 0;
    if (!isnan(best)) {
        for (int64_t j = 1; j < vocab; ++j) {
            float v = masked_value(l, m, j);
            if (isnan(v)) { best = v; arg = j; break; }
            if (v > best) { best = v; arg = j; }
        }
    }
    *out_max = best;
    *out_arg = arg;
}

/* Row i of logits [rows, lstride] is masked by mask row mask_row[i] (< 0: none).
   Returns how many rows' max is not finite (NaN, +inf, or -inf: nothing allowed). */
int64_t masked_row_max(const float *logits, int64_t rows, int64_t vocab, int64_t lstride,
                    const uint32_t *mask, int64_t mwords, const int64_t *mask_row,
                    float *out_max, int64_t *out_arg) {
    int64_t not_finite = 0;
    for (int64_t i = 0; i < rows; ++i) {
        const float *l = logits + i * lstride;
        const uint32_t *m = mask_row[i] >= 0 ? mask + mask_row[i] * mwords : 0;
        int bad = 0;  /* a NaN or +inf anywhere in the row */
        for (int64_t j = 0; j < vocab; ++j) bad |= (l[j] != l[j]) | (l[j] == INFINITY);
        if (bad || !m) {
            exact_row(l, m, vocab, &out_max[i], &out_arg[i]);
            not_finite += !isfinite(out_max[i]);
            continue;
        }
        /* finite row: only allowed entries can be the max; ids ascend, so the
           first strictly greater one is numpy's first maximal entry */
        float best = -INFINITY;
        int64_t arg = -1;
        for (int64_t w = 0; w < mwords; ++w) {
            uint32_t bits = m[w];
            while (bits) {
                int64_t j = w * 32 + __builtin_ctz(bits);
                bits &= bits - 1;
                if (j >= vocab) break;
                if (arg < 0 || l[j] > best) { best = l[j]; arg = j; }
            }
        }
        /* nothing allowed, or only -inf logits: every entry is -inf, numpy's argmax is 0 */
        if (arg < 0 || best == -INFINITY) { best = -INFINITY; arg = 0; }
        out_max[i] = best;
        out_arg[i] = arg;
        not_finite += !isfinite(out_max[i]);  /* nothing allowed, or only -inf logits */
    }
    return not_finite;
}

static int64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Wait until *counter differs from seen, at most max_ns; returns its value then. */
int64_t spin_until_changed(const volatile int64_t *counter, int64_t seen, int64_t max_ns) {
    int64_t deadline = now_ns() + max_ns;
    for (;;) {
        for (int k = 0; k < 256; ++k) {
            int64_t v = __atomic_load_n(counter, __ATOMIC_ACQUIRE);
            if (v != seen) return v;
#if defined(__x86_64__) || defined(__i386__)
            __builtin_ia32_pause();
#endif
        }
        if (now_ns() >= deadline) return __atomic_load_n(counter, __ATOMIC_ACQUIRE);
    }
}

/* AOTInductorModelContainerRun through this shim bumps *bell first: the caller
   (ctypes) has released the GIL by then, so a waiter taking it does not have to be
   woken. */
typedef int32_t (*aoti_run_fn)(void *, void **, size_t, void **, size_t, void *, void *);
int32_t run_ringing(aoti_run_fn run, void *handle, void **inputs, size_t n_in, void **outputs,
                    size_t n_out, void *stream, void *proxy, volatile int64_t *bell) {
    __atomic_add_fetch(bell, 1, __ATOMIC_RELEASE);
    return run(handle, inputs, n_in, outputs, n_out, stream, proxy);
}
