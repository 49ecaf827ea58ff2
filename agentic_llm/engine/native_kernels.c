
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

/* ---- few-row float32 matmul ---------------------------------------------------------
   y[m, n] = sum_k x[m, k] * w[n, k] for 1..8 rows of x and a row-major weight w [N, K]
   (decode steps of small batches). BLAS kernels at this shape read the weight at about
   half the memory bandwidth; here each weight row is read once for all rows of x, the
   next rows are prefetched while the current ones are multiplied, and the outputs are
   split between threads by weight rows, so every sum is over k in the same order
   whatever the thread count. Returns 0, or -1 when this CPU or shape is not covered
   (the caller then uses its BLAS). */

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#ifdef _OPENMP
#include <omp.h>
#endif

/* weight rows per block of the AVX-512 kernel, and blocks prefetched ahead: 4 and 2
   measured 19% faster than 3 and 4 at 8 rows (SmolLM2's projections, 2-vCPU Xeon;
   28.9 against 35.7 ms a step), 14% at 4 rows, the same at 1 row */
#define RM_NB 4
#define RM_PREFETCH_BLOCKS 2

__attribute__((target("avx512f"))) static inline void rm512_rows(
        const float *x, const int M, int64_t K, const float *w, int64_t n0, int64_t n1, float *y, int64_t ldy) {
    enum { NB = RM_NB };
    const int64_t kv = K & ~(int64_t)15;
    const __mmask16 tail = (__mmask16)((1u << (K - kv)) - 1u);
    int64_t n = n0;
    for (; n < n1; n += NB) {
        const int nb = n1 - n < NB ? (int)(n1 - n) : NB;
        __m512 a[NB][8];
        for (int j = 0; j < NB; ++j)
            for (int m = 0; m < M; ++m) a[j][m] = _mm512_setzero_ps();
        const float *wp = w + n * K;
        if (nb == NB) {
            for (int64_t k = 0; k < kv; k += 16) {
                __m512 v[NB];
                for (int j = 0; j < NB; ++j) {
                    v[j] = _mm512_loadu_ps(wp + j * K + k);
                    _mm_prefetch((const char *)(wp + (RM_PREFETCH_BLOCKS * NB + j) * K + k), _MM_HINT_T0);
                }
                for (int m = 0; m < M; ++m) {
                    const __m512 xv = _mm512_loadu_ps(x + m * K + k);
                    for (int j = 0; j < NB; ++j) a[j][m] = _mm512_fmadd_ps(xv, v[j], a[j][m]);
                }
            }
        } else {
            for (int64_t k = 0; k < kv; k += 16)
                for (int j = 0; j < nb; ++j) {
                    const __m512 v = _mm512_loadu_ps(wp + j * K + k);
                    for (int m = 0; m < M; ++m) a[j][m] = _mm512_fmadd_ps(_mm512_loadu_ps(x + m * K + k), v, a[j][m]);
                }
        }
        if (kv < K)
            for (int j = 0; j < nb; ++j) {
                const __m512 v = _mm512_maskz_loadu_ps(tail, wp + j * K + kv);
                for (int m = 0; m < M; ++m)
                    a[j][m] = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(tail, x + m * K + kv), v, a[j][m]);
            }
        for (int m = 0; m < M; ++m)
            for (int j = 0; j < nb; ++j) y[m * ldy + n + j] = _mm512_reduce_add_ps(a[j][m]);
    }
}

__attribute__((target("avx2,fma"))) static inline float rm256_sum(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

__attribute__((target("avx2,fma"))) static inline void rm256_rows(
        const float *x, const int M, int64_t K, const float *w, int64_t n0, int64_t n1, float *y, int64_t ldy) {
    /* one weight row at a time: 8 accumulators of the 16 registers */
    const int64_t kv = K & ~(int64_t)7;
    for (int64_t n = n0; n < n1; ++n) {
        __m256 a[8];
        for (int m = 0; m < M; ++m) a[m] = _mm256_setzero_ps();
        const float *wp = w + n * K;
        for (int64_t k = 0; k < kv; k += 8) {
            const __m256 v = _mm256_loadu_ps(wp + k);
            _mm_prefetch((const char *)(wp + RM_PREFETCH_BLOCKS * K + k), _MM_HINT_T0);
            for (int m = 0; m < M; ++m) a[m] = _mm256_fmadd_ps(_mm256_loadu_ps(x + m * K + k), v, a[m]);
        }
        for (int m = 0; m < M; ++m) {
            float s = rm256_sum(a[m]);
            for (int64_t k = kv; k < K; ++k) s = fmaf(x[m * K + k], wp[k], s);
            y[m * ldy + n] = s;
        }
    }
}

/* One call per row count, so the compiler unrolls the row loops. */
#define RM_CASES(fn) \
    switch (M) { case 1: fn(x, 1, K, w, n0, n1, y, N); break; case 2: fn(x, 2, K, w, n0, n1, y, N); break; \
                 case 3: fn(x, 3, K, w, n0, n1, y, N); break; case 4: fn(x, 4, K, w, n0, n1, y, N); break; \
                 case 5: fn(x, 5, K, w, n0, n1, y, N); break; case 6: fn(x, 6, K, w, n0, n1, y, N); break; \
                 case 7: fn(x, 7, K, w, n0, n1, y, N); break; default: fn(x, 8, K, w, n0, n1, y, N); break; }

__attribute__((target("avx512f"))) static void rm512_range(const float *x, int M, int64_t K, const float *w,
                                                           int64_t N, int64_t n0, int64_t n1, float *y) {
    RM_CASES(rm512_rows)
}

__attribute__((target("avx2,fma"))) static void rm256_range(const float *x, int M, int64_t K, const float *w,
                                                           int64_t N, int64_t n0, int64_t n1, float *y) {
    RM_CASES(rm256_rows)
}

/* 2 with AVX-512, 1 with AVX2 and FMA, else 0 (not covered). */
int64_t rows_matmul_level(void) {
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f")) return 2;
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return 1;
    return 0;
}

int64_t rows_matmul(const float *x, int64_t M, int64_t K, const float *w, int64_t N, float *y,
                    int64_t threads, int64_t level) {
    if (M < 1 || M > 8 || K < 1 || N < 1 || level < 1 || level > 2) return -1;
    /* split by blocks of RM_NB weight rows; small matrices stay on one thread */
    const int64_t blocks = (N + RM_NB - 1) / RM_NB;
    int64_t t = threads < 1 ? 1 : threads;
    if (N * K < 65536) t = 1;
    if (t > blocks) t = blocks;
#ifdef _OPENMP
#pragma omp parallel for num_threads(t) schedule(static, 1) if (t > 1)
#endif
    for (int64_t i = 0; i < t; ++i) {
        const int64_t n0 = blocks * i / t * RM_NB, n1e = blocks * (i + 1) / t * RM_NB;
        const int64_t n1 = n1e < N ? n1e : N;
        if (n0 >= n1) continue;
        if (level == 2) rm512_range(x, (int)M, K, w, N, n0, n1, y);
        else rm256_range(x, (int)M, K, w, N, n0, n1, y);
    }
    return 0;
}
#else
int64_t rows_matmul_level(void) { return 0; }
int64_t rows_matmul(const float *x, int64_t M, int64_t K, const float *w, int64_t N, float *y,
                    int64_t threads, int64_t level) {
    (void)x; (void)M; (void)K; (void)w; (void)N; (void)y; (void)threads; (void)level;
    return -1;
}
#endif

/* ---- RMSNorm of float32 rows ------------------------------------------------------
   out[m, :] = x[m, :] / sqrt(mean(x[m, :]^2) + eps) * w  for rows of K floats (x's
   rows ldx apart, out contiguous). One call for what F.rms_norm runs as six tensor
   ops (about 60 us a call at decode sizes, against a few here). Each row is
   computed the same way whatever the row count and thread count (long inputs are
   split between threads by rows). The same loop body is compiled for AVX-512,
   AVX2+FMA and the baseline; ``level`` picks one. */

#define RMS_BODY                                                                 \
    _Pragma("omp parallel for if (M * K >= 262144) schedule(static)")            \
    for (int64_t m = 0; m < M; ++m) {                                            \
        const float *xr = x + m * ldx;                                           \
        float *orow = out + m * K;                                               \
        float ss = 0.0f;                                                         \
        _Pragma("omp simd reduction(+:ss)")                                      \
        for (int64_t k = 0; k < K; ++k) ss += xr[k] * xr[k];                     \
        const float r = 1.0f / sqrtf(ss / (float)K + eps);                       \
        _Pragma("omp simd")                                                      \
        for (int64_t k = 0; k < K; ++k) orow[k] = xr[k] * r * w[k];              \
    }

#if defined(__x86_64__) && defined(__GNUC__)
__attribute__((target("avx512f"))) static void rms512(const float *x, int64_t M, int64_t K, int64_t ldx,
                                                      const float *w, float eps, float *out) { RMS_BODY }
__attribute__((target("avx2,fma"))) static void rms256(const float *x, int64_t M, int64_t K, int64_t ldx,
                                                       const float *w, float eps, float *out) { RMS_BODY }
#endif
static void rms_base(const float *x, int64_t M, int64_t K, int64_t ldx, const float *w, float eps,
                     float *out) { RMS_BODY }

void rms_norm_rows(const float *x, int64_t M, int64_t K, int64_t ldx, const float *w, float eps,
                   float *out, int64_t level) {
#if defined(__x86_64__) && defined(__GNUC__)
    if (level == 2) { rms512(x, M, K, ldx, w, eps, out); return; }
    if (level == 1) { rms256(x, M, K, ldx, w, eps, out); return; }
#endif
    (void)level;
    rms_base(x, M, K, ldx, w, eps, out);
}
