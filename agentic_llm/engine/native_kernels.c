
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

/* ---- decode attention over the workspace ------------------------------------------
   One query token per row. For KV head h and row r, the ``groups`` query heads that
   share h attend over keys 0..lens[r]-1 of K/V row rowmap[r] (r without a map: a
   row of several query tokens is several rows here); keys before ``shared`` are read
   from row 0 instead (the rows hold the same pool pages there, so the copies are
   equal, and one copy stays in cache for every row). out = softmax(q.k * scale) @ v.
   q and out: [kv_heads, rows, groups, d] with element strides qs_* / os_* (d
   contiguous); k and v: [kv_heads, rows, key_len, d] with strides ks_h, ks_r, ks_t.
   d a multiple of 8, at most DA_MAX_GROUPS groups, AVX2 and FMA; else -1 (the caller
   uses torch). The (h, r) tasks are split between threads; every sum runs over the
   keys in the same order whatever the thread count. torch's SDPA and batched
   matmuls cost 2-3x this at decode shapes on a 2-vCPU AMD EPYC (docs/engine.md). */

#if defined(__x86_64__) && defined(__GNUC__)
#include <stdlib.h>
#define DA_MAX_GROUPS 16
__attribute__((target("avx2,fma"))) static inline __m256 da_exp(__m256 x) {
    /* e^x for x <= 0 (Cephes' expf polynomial, about 1 ulp); x below -87.3 gives 0 */
    x = _mm256_max_ps(x, _mm256_set1_ps(-87.3f));
    __m256 n = _mm256_floor_ps(_mm256_fmadd_ps(x, _mm256_set1_ps(1.44269504088896341f), _mm256_set1_ps(0.5f)));
    x = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
    x = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), x);
    __m256 y = _mm256_set1_ps(1.9875691500e-4f);
    y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(1.3981999507e-3f));
    y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(8.3334519073e-3f));
    y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(4.1665795894e-2f));
    y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(1.6666665459e-1f));
    y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(5.0000001201e-1f));
    y = _mm256_fmadd_ps(y, _mm256_mul_ps(x, x), _mm256_add_ps(x, _mm256_set1_ps(1.0f)));
    __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
    return _mm256_mul_ps(y, _mm256_castsi256_ps(e));
}

/* 4 dot products of 8-float accumulators -> [s0, s1, s2, s3] */
__attribute__((target("avx2,fma"))) static inline __m128 da_sum4(__m256 a0, __m256 a1, __m256 a2, __m256 a3) {
    __m256 h = _mm256_hadd_ps(_mm256_hadd_ps(a0, a1), _mm256_hadd_ps(a2, a3));
    return _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
}

#define KROW(j) (((j) < shared ? k0 : kr) + (j) * ks_t)
#define VROW(j) (((j) < shared ? v0 : vr) + (j) * ks_t)

__attribute__((target("avx2,fma"))) static inline void da_task(
        const float *q, int64_t qs_g, const float *k0, const float *kr, const float *v0, const float *vr,
        int64_t ks_t, int64_t shared, int64_t len, const int groups, int64_t d, float scale,
        float *out, int64_t os_g, float *sc) {
    const int64_t l4 = len & ~(int64_t)3;
    for (int64_t j = 0; j < l4; j += 4) {
        const float *p0 = KROW(j), *p1 = KROW(j + 1), *p2 = KROW(j + 2), *p3 = KROW(j + 3);
        for (int g = 0; g < groups; ++g) {
            const float *qg = q + g * qs_g;
            __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
            for (int64_t c = 0; c < d; c += 8) {
                const __m256 qv = _mm256_loadu_ps(qg + c);
                a0 = _mm256_fmadd_ps(qv, _mm256_loadu_ps(p0 + c), a0);
                a1 = _mm256_fmadd_ps(qv, _mm256_loadu_ps(p1 + c), a1);
                a2 = _mm256_fmadd_ps(qv, _mm256_loadu_ps(p2 + c), a2);
                a3 = _mm256_fmadd_ps(qv, _mm256_loadu_ps(p3 + c), a3);
            }
            _mm_storeu_ps(sc + g * len + j, _mm_mul_ps(da_sum4(a0, a1, a2, a3), _mm_set1_ps(scale)));
        }
    }
    for (int64_t j = l4; j < len; ++j) {
        const float *kp = KROW(j);
        for (int g = 0; g < groups; ++g) {
            const float *qg = q + g * qs_g;
            __m256 a = _mm256_setzero_ps();
            for (int64_t c = 0; c < d; c += 8) a = _mm256_fmadd_ps(_mm256_loadu_ps(qg + c), _mm256_loadu_ps(kp + c), a);
            /* the same sums in the same order as the blocks of 4 */
            sc[g * len + j] = _mm_cvtss_f32(da_sum4(a, a, a, a)) * scale;
        }
    }
    float inv[DA_MAX_GROUPS];
    const int64_t l8 = len & ~(int64_t)7;
    for (int g = 0; g < groups; ++g) {
        float *s = sc + g * len;
        float m = s[0];
        for (int64_t j = 1; j < len; ++j) m = s[j] > m ? s[j] : m;
        const __m256 mv = _mm256_set1_ps(m);
        __m256 acc = _mm256_setzero_ps();
        for (int64_t j = 0; j < l8; j += 8) {
            const __m256 e = da_exp(_mm256_sub_ps(_mm256_loadu_ps(s + j), mv));
            _mm256_storeu_ps(s + j, e);
            acc = _mm256_add_ps(acc, e);
        }
        float sum = rm256_sum(acc);
        if (l8 < len) {
            float tmp[8] = {0};
            for (int64_t j = l8; j < len; ++j) tmp[j - l8] = s[j] - m;
            const __m256 e = da_exp(_mm256_loadu_ps(tmp));
            float et[8];
            _mm256_storeu_ps(et, e);
            for (int64_t j = l8; j < len; ++j) { s[j] = et[j - l8]; sum += et[j - l8]; }
        }
        inv[g] = 1.0f / sum;
    }
    /* out = p @ v in chunks of 4 vectors of d, every group's accumulators in registers
       (groups <= 3), else one vector at a time */
    const int vpc = groups <= 3 && d % 32 == 0 ? 4 : 1;
    for (int64_t c0 = 0; c0 < d; c0 += 8 * vpc) {
        if (vpc == 4) {
            __m256 o[3][4];
            for (int g = 0; g < groups; ++g) for (int i = 0; i < 4; ++i) o[g][i] = _mm256_setzero_ps();
            for (int64_t j = 0; j < len; ++j) {
                const float *vp = VROW(j) + c0;
                const __m256 w0 = _mm256_loadu_ps(vp), w1 = _mm256_loadu_ps(vp + 8),
                             w2 = _mm256_loadu_ps(vp + 16), w3 = _mm256_loadu_ps(vp + 24);
                for (int g = 0; g < groups; ++g) {
                    const __m256 p = _mm256_broadcast_ss(sc + g * len + j);
                    o[g][0] = _mm256_fmadd_ps(p, w0, o[g][0]);
                    o[g][1] = _mm256_fmadd_ps(p, w1, o[g][1]);
                    o[g][2] = _mm256_fmadd_ps(p, w2, o[g][2]);
                    o[g][3] = _mm256_fmadd_ps(p, w3, o[g][3]);
                }
            }
            for (int g = 0; g < groups; ++g) {
                const __m256 f = _mm256_set1_ps(inv[g]);
                for (int i = 0; i < 4; ++i) _mm256_storeu_ps(out + g * os_g + c0 + 8 * i, _mm256_mul_ps(f, o[g][i]));
            }
        } else {
            for (int g = 0; g < groups; ++g) {
                __m256 o = _mm256_setzero_ps();
                for (int64_t j = 0; j < len; ++j)
                    o = _mm256_fmadd_ps(_mm256_broadcast_ss(sc + g * len + j), _mm256_loadu_ps(VROW(j) + c0), o);
                _mm256_storeu_ps(out + g * os_g + c0, _mm256_mul_ps(_mm256_set1_ps(inv[g]), o));
            }
        }
    }
}

__attribute__((target("avx2,fma"))) static void da_run(
        const float *q, int64_t qs_g, const float *k0, const float *kr, const float *v0, const float *vr,
        int64_t ks_t, int64_t shared, int64_t len, int groups, int64_t d, float scale,
        float *out, int64_t os_g, float *sc) {
    /* constant group counts, so the loops over groups unroll */
    switch (groups) {
    case 1: da_task(q, qs_g, k0, kr, v0, vr, ks_t, shared, len, 1, d, scale, out, os_g, sc); break;
    case 2: da_task(q, qs_g, k0, kr, v0, vr, ks_t, shared, len, 2, d, scale, out, os_g, sc); break;
    case 3: da_task(q, qs_g, k0, kr, v0, vr, ks_t, shared, len, 3, d, scale, out, os_g, sc); break;
    default: da_task(q, qs_g, k0, kr, v0, vr, ks_t, shared, len, groups, d, scale, out, os_g, sc); break;
    }
}

int64_t decode_attention_f32(const float *q, int64_t qs_h, int64_t qs_r, int64_t qs_g,
                             const float *k, const float *v, int64_t ks_h, int64_t ks_r, int64_t ks_t,
                             int64_t key_len, int64_t kv_heads, int64_t rows, int64_t groups, int64_t d,
                             const int64_t *lens, const int64_t *rowmap, int64_t kv_rows, int64_t shared,
                             float scale, float *out, int64_t os_h, int64_t os_r, int64_t os_g, int64_t threads) {
    if (d % 8 || d < 8 || groups < 1 || groups > DA_MAX_GROUPS || rows < 1 || kv_heads < 1 || shared < 0) return -1;
    __builtin_cpu_init();
    if (!__builtin_cpu_supports("avx2") || !__builtin_cpu_supports("fma")) return -1;
    int64_t maxlen = 0;
    for (int64_t r = 0; r < rows; ++r) {
        if (lens[r] < 1 || lens[r] < shared || lens[r] > key_len) return -1;
        if (rowmap && (rowmap[r] < 0 || rowmap[r] >= kv_rows)) return -1;
        if (lens[r] > maxlen) maxlen = lens[r];
    }
    const int64_t tasks = kv_heads * rows;
    int64_t t = threads < 1 ? 1 : threads;
    if (t > tasks) t = tasks;
    int failed = 0;
#ifdef _OPENMP
#pragma omp parallel num_threads(t) if (t > 1)
#endif
    {
        float *sc = (float *)malloc(sizeof(float) * (size_t)(groups * maxlen + 8));
        if (!sc) {
#ifdef _OPENMP
#pragma omp atomic write
#endif
            failed = 1;
        }
#ifdef _OPENMP
#pragma omp for schedule(static)
#endif
        for (int64_t i = 0; i < tasks; ++i) {
            if (!sc) continue;
            const int64_t h = i / rows, r = i % rows, kr = rowmap ? rowmap[r] : r;
            da_run(q + h * qs_h + r * qs_r, qs_g, k + h * ks_h, k + h * ks_h + kr * ks_r,
                   v + h * ks_h, v + h * ks_h + kr * ks_r, ks_t, shared, lens[r], (int)groups, d, scale,
                   out + h * os_h + r * os_r, os_g, sc);
        }
        free(sc);
    }
    return failed ? -1 : 0;
}
#else
int64_t decode_attention_f32(const float *q, int64_t qs_h, int64_t qs_r, int64_t qs_g,
                             const float *k, const float *v, int64_t ks_h, int64_t ks_r, int64_t ks_t,
                             int64_t key_len, int64_t kv_heads, int64_t rows, int64_t groups, int64_t d,
                             const int64_t *lens, const int64_t *rowmap, int64_t kv_rows, int64_t shared,
                             float scale, float *out, int64_t os_h, int64_t os_r, int64_t os_g, int64_t threads) {
    (void)rowmap; (void)kv_rows; (void)q; (void)qs_h; (void)qs_r; (void)qs_g; (void)k; (void)v; (void)ks_h; (void)ks_r; (void)ks_t; (void)key_len;
    (void)kv_heads; (void)rows; (void)groups; (void)d; (void)lens; (void)shared; (void)scale; (void)out;
    (void)os_h; (void)os_r; (void)os_g; (void)threads;
    return -1;
}
#endif
