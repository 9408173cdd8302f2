// Interleaved A/B timing of GEMM kernel builds (see gemm-ab.sh, which builds the variants).
//
//   gemm_ab [--rounds N] [--warm] [--isa avx2|avx512[-resident|-streamed]|avx512-emulated[-resident|-streamed]|avx512-bf16]
//           [--set masked|unmasked|all]
//           [--shape NAME:OP:M:N:K ...] LABEL=LIB.so[@ISA] LABEL=LIB.so[@ISA] ...
//
// Each LIB.so is the package's CKernels sources built as a shared library (@ISA: run it with that
// instruction set's kernel instead of --isa's, to compare kernels of one build). Every round calls
// every variant once on every shape, in a rotating order, on one thread; the table gives each
// variant's median GFLOP/s per shape, its change against the first variant, and the median over
// rounds of the time of all shapes together (a step-like total). Without --warm a 64 MiB buffer is read before
// each call, so operands come from memory as they do inside a training step. Changes are medians
// of paired ratios (the variants' calls of one round run moments apart), so the slow phases of a
// noisy VM hit both sides of each ratio alike.
#include <dlfcn.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef void (*gemm_fn)(int isa, int ta, int tb, int M, int N, int K, float alpha, const float *A, int lda,
                        const float *B, int ldb, float beta, float *C, int ldc, const float *bias,
                        float *workspace);
typedef double (*peak_fn)(int isa, long iterations);
typedef int (*supported_fn)(int isa);

typedef struct { char name[64]; int ta, tb, m, n, k; } shape;

#define MAX_VARIANTS 8
#define MAX_SHAPES 64

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

static int by_value(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static void usage(void) {
    fprintf(stderr, "usage: gemm_ab [--rounds N] [--warm] [--isa avx2|avx512[-resident|-streamed]|avx512-emulated[-resident|-streamed]|avx512-bf16] "
                    "[--set masked|unmasked|all] [--shape NAME:OP:M:N:K ...] LABEL=LIB.so[@ISA] ...\n"
                    "  OP: NN, NT, TN or TT (op(A), op(B)); C is M x N, K the depth\n");
    exit(2);
}

/// Instruction-set names and their kernel codes (CKernels.h's MASKDM_GEMM_ISA_*, with a
/// MASKDM_GEMM_BLOCKING_* << 8 for the AVX-512 kernels' "-resident" and "-streamed" names).
static const char *isa_names[] = {"avx2", "avx512", "avx512-emulated", "avx512-bf16", "avx512-resident",
                                  "avx512-streamed", "avx512-emulated-resident", "avx512-emulated-streamed"};
static const int isa_codes[] = {1, 2, 3, 4, 2 | 1 << 8, 2 | 2 << 8, 3 | 1 << 8, 3 | 2 << 8};
#define NISA (int)(sizeof isa_codes / sizeof isa_codes[0])

/// The kernel code of an instruction-set name, or -1.
static int isa_code(const char *name) {
    for (int i = 0; i < NISA; i++) {
        if (!strcmp(name, isa_names[i])) return isa_codes[i];
    }
    return -1;
}

/// The name of a kernel code.
static const char *isa_name(int code) {
    for (int i = 0; i < NISA; i++) {
        if (code == isa_codes[i]) return isa_names[i];
    }
    return "?";
}

/// The small@64 network's four linear layers (D 512, MLP 2048) as a training step runs them per
/// share on 2 threads (batch 16 in two shares of 8): forward x W^T (NT), dx = dy W (NN) and
/// dW = dy^T x (TN), at `rows` tokens per share.
static int add_step_shapes(shape *s, int count, int rows, const char *tag) {
    static const struct { const char *name; int in, out; } layers[] = {
        {"qkv", 512, 1536}, {"proj", 512, 512}, {"fc1", 512, 2048}, {"fc2", 2048, 512}};
    for (int l = 0; l < 4; l++) {
        int in = layers[l].in, out = layers[l].out;
        shape fwd = {"", 0, 1, rows, out, in}, dx = {"", 0, 0, rows, in, out}, dw = {"", 1, 0, out, in, rows};
        snprintf(fwd.name, sizeof fwd.name, "%s_%s", tag, layers[l].name);
        snprintf(dx.name, sizeof dx.name, "%s_%s_dx", tag, layers[l].name);
        snprintf(dw.name, sizeof dw.name, "%s_%s_dW", tag, layers[l].name);
        s[count++] = fwd;
        s[count++] = dx;
        s[count++] = dw;
    }
    return count;
}

int main(int argc, char **argv) {
    int rounds = 15, warm = 0, isa = 1, nshapes = 0, nvariants = 0;
    const char *set = "masked";
    shape shapes[MAX_SHAPES];
    char *labels[MAX_VARIANTS];
    gemm_fn gemm[MAX_VARIANTS];
    int variant_isa[MAX_VARIANTS];   // -1 until parsed: the --isa one
    peak_fn peak = 0;
    supported_fn supported = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--rounds") && i + 1 < argc) {
            rounds = atoi(argv[++i]);
        } else if (!strcmp(argv[i], "--warm")) {
            warm = 1;
        } else if (!strcmp(argv[i], "--isa") && i + 1 < argc) {
            isa = isa_code(argv[++i]);
            if (isa < 0) usage();
        } else if (!strcmp(argv[i], "--set") && i + 1 < argc) {
            set = argv[++i];
        } else if (!strcmp(argv[i], "--shape") && i + 1 < argc) {
            shape s = {"", 0, 0, 0, 0, 0};
            char op[3] = "";
            if (nshapes == MAX_SHAPES
                || sscanf(argv[++i], "%63[^:]:%2[NT]:%d:%d:%d", s.name, op, &s.m, &s.n, &s.k) != 5
                || strlen(op) != 2 || s.m <= 0 || s.n <= 0 || s.k <= 0) {
                fprintf(stderr, "gemm_ab: bad --shape '%s'\n", argv[i]);
                usage();
            }
            s.ta = op[0] == 'T';
            s.tb = op[1] == 'T';
            shapes[nshapes++] = s;
        } else if (argv[i][0] != '-' && strchr(argv[i], '=') && nvariants < MAX_VARIANTS) {
            char *eq = strrchr(argv[i], '=');   // the label may hold "=" (-DNAME=VALUE)
            *eq = 0;
            char *at = strrchr(eq + 1, '@');       // LIB.so@ISA: this variant's instruction set
            variant_isa[nvariants] = -1;
            if (at) {
                *at = 0;
                variant_isa[nvariants] = isa_code(at + 1);
                if (variant_isa[nvariants] < 0) usage();
            }
            void *lib = dlopen(eq + 1, RTLD_NOW | RTLD_LOCAL);
            if (!lib) { fprintf(stderr, "gemm_ab: %s\n", dlerror()); return 1; }
            gemm[nvariants] = (gemm_fn)dlsym(lib, "maskdm_sgemm_block_isa");
            if (!gemm[nvariants]) { fprintf(stderr, "gemm_ab: %s has no maskdm_sgemm_block_isa\n", eq + 1); return 1; }
            if (!peak) peak = (peak_fn)dlsym(lib, "maskdm_fma_peak_flops");
            if (!supported) supported = (supported_fn)dlsym(lib, "maskdm_gemm_isa_supported");
            labels[nvariants++] = argv[i];
        } else {
            usage();
        }
    }
    if (nvariants == 0 || rounds < 1) usage();
    for (int v = 0; v < nvariants; v++) {
        if (variant_isa[v] < 0) variant_isa[v] = isa;
        if (supported && !supported(variant_isa[v])) {
            fprintf(stderr, "gemm_ab: this CPU cannot run the %s kernel (variant %s)\n", isa_name(variant_isa[v]),
                    labels[v]);
            return 1;
        }
    }
    int builtin = nshapes == 0;
    if (builtin) {
        if (!strcmp(set, "masked") || !strcmp(set, "all")) nshapes = add_step_shapes(shapes, nshapes, 264, "masked");
        if (!strcmp(set, "unmasked") || !strcmp(set, "all")) nshapes = add_step_shapes(shapes, nshapes, 2056, "unmasked");
        if (nshapes == 0) usage();
    }

    // Operands (filled with small values), one workspace large enough for every build's blocking.
    float *a[MAX_SHAPES], *b[MAX_SHAPES], *c[MAX_SHAPES];
    for (int i = 0; i < nshapes; i++) {
        size_t na = (size_t)shapes[i].m * shapes[i].k, nb = (size_t)shapes[i].k * shapes[i].n;
        size_t nc = (size_t)shapes[i].m * shapes[i].n;
        a[i] = malloc(na * sizeof(float));
        b[i] = malloc(nb * sizeof(float));
        c[i] = calloc(nc, sizeof(float));
        if (!a[i] || !b[i] || !c[i]) { fprintf(stderr, "gemm_ab: out of memory\n"); return 1; }
        for (size_t j = 0; j < na; j++) a[i][j] = (float)(j % 7) * 0.125f - 0.375f;
        for (size_t j = 0; j < nb; j++) b[i][j] = (float)(j % 5) * 0.125f - 0.25f;
    }
    float *workspace = aligned_alloc(64, (size_t)64 << 20);
    size_t flush_floats = ((size_t)64 << 20) / sizeof(float);
    float *flush = malloc(flush_floats * sizeof(float));
    if (!workspace || !flush) { fprintf(stderr, "gemm_ab: out of memory\n"); return 1; }
    for (size_t j = 0; j < flush_floats; j++) flush[j] = 1;

    // Each variant's share is of its own kernel's peak: the FMA rate of its instruction set (the
    // emulated kernel runs AVX2 instructions; the bf16 kernel's peak is its dot product's).
    // Measured once per kernel code (1 to 4).
    double variant_peak[MAX_VARIANTS] = {0}, kernel_peak[5] = {0};
    for (int v = 0; peak && v < nvariants; v++) {
        int kernel = (variant_isa[v] & 0xff) == 3 ? 1 : variant_isa[v] & 0xff;
        if (kernel_peak[kernel] == 0) {
            double t0 = now(), flops = peak(kernel, 20000000);
            kernel_peak[kernel] = flops / (now() - t0) / 1e9;
        }
        variant_peak[v] = kernel_peak[kernel];
    }
    double peak_gflops = variant_peak[0];

    double *times = malloc(sizeof(double) * (size_t)nvariants * nshapes * rounds);
    if (!times) { fprintf(stderr, "gemm_ab: out of memory\n"); return 1; }
#define T(v, s, r) times[((size_t)(v) * nshapes + (s)) * rounds + (r)]
    // Variant v's product for shape s into `out`.
#define RUN(v, s, out)                                                                                          \
    gemm[v](variant_isa[v], shapes[s].ta, shapes[s].tb, shapes[s].m, shapes[s].n, shapes[s].k, 1, a[s],         \
            shapes[s].ta ? shapes[s].m : shapes[s].k, b[s], shapes[s].tb ? shapes[s].k : shapes[s].n, 0, out, \
            shapes[s].n, 0, workspace)
    volatile float sink = 0;
    for (int r = 0; r < rounds; r++) {
        for (int s = 0; s < nshapes; s++) {
            for (int k = 0; k < nvariants; k++) {
                int v = (k + r + s) % nvariants;   // rotate who goes first
                if (!warm) {
                    float acc = 0;
                    for (size_t j = 0; j < flush_floats; j += 16) acc += flush[j];
                    sink += acc;
                }
                double t0 = now();
                RUN(v, s, c[s]);
                T(v, s, r) = now() - t0;
            }
        }
    }

    printf("%d rounds, one thread, %s operands, isa %s unless a variant names one; measured peak %.1f GFLOP/s "
           "(the first variant's kernel; each share is of its variant's kernel's peak)\n",
           rounds, warm ? "cache-warm" : "cold (64 MiB read before each call)",
           isa_name(isa), peak_gflops);
    printf("%-22s %2s %5s %5s %5s", "shape", "op", "M", "N", "K");
    for (int v = 0; v < nvariants; v++) printf(" | %14.14s GF/s  share  change", labels[v]);
    printf("\n");
    // Change = the median over rounds of the paired ratio (the first variant's time over this
    // one's in the same round, measured moments apart), which cancels the machine's slow phases.
    double *sorted = malloc(sizeof(double) * rounds), *ratios = malloc(sizeof(double) * rounds);
    if (!sorted || !ratios) { fprintf(stderr, "gemm_ab: out of memory\n"); return 1; }
    for (int s = 0; s < nshapes; s++) {
        const shape *q = &shapes[s];
        double flops = 2.0 * q->m * q->n * q->k;
        printf("%-22s %c%c %5d %5d %5d", q->name, q->ta ? 'T' : 'N', q->tb ? 'T' : 'N', q->m, q->n, q->k);
        for (int v = 0; v < nvariants; v++) {
            for (int r = 0; r < rounds; r++) {
                sorted[r] = T(v, s, r);
                ratios[r] = T(0, s, r) / T(v, s, r);
            }
            qsort(sorted, rounds, sizeof(double), by_value);
            qsort(ratios, rounds, sizeof(double), by_value);
            double gflops = flops / sorted[rounds / 2] / 1e9;
            printf(" | %19.1f  %4.0f%%  %+5.1f%%", gflops, variant_peak[v] > 0 ? 100 * gflops / variant_peak[v] : 0,
                   100 * (ratios[rounds / 2] - 1));
        }
        printf("\n");
    }
    printf("%-40s", "all shapes: median total, change");
    for (int v = 0; v < nvariants; v++) {
        for (int r = 0; r < rounds; r++) {
            double mine = 0, first = 0;
            for (int s = 0; s < nshapes; s++) { mine += T(v, s, r); first += T(0, s, r); }
            sorted[r] = mine;
            ratios[r] = first / mine;
        }
        qsort(sorted, rounds, sizeof(double), by_value);
        qsort(ratios, rounds, sizeof(double), by_value);
        printf(" | %16.2f ms  %+5.1f%% (%+.1f..%+.1f)", sorted[rounds / 2] * 1e3, 100 * (ratios[rounds / 2] - 1),
               100 * (ratios[0] - 1), 100 * (ratios[rounds - 1] - 1));
    }
    // With both sets: the masked step's products against the unmasked step's, in time and in FLOPs
    // (the speedup the linear layers alone would give masked pre-training).
    if (builtin && !strcmp(set, "all")) {
        printf("\n%-40s", "unmasked / masked time (FLOPs 7.79x)");
        for (int v = 0; v < nvariants; v++) {
            for (int r = 0; r < rounds; r++) {
                double masked = 0, unmasked = 0;
                for (int s = 0; s < 12; s++) { masked += T(v, s, r); unmasked += T(v, s + 12, r); }
                ratios[r] = unmasked / masked;
            }
            qsort(ratios, rounds, sizeof(double), by_value);
            printf(" | %17.2fx (%.2f..%.2f)       ", ratios[rounds / 2], ratios[0], ratios[rounds - 1]);
        }
    }
    // The variants' results against the first one's (a faster build that computes something else
    // is no result): the largest difference over all shapes, relative to the largest |C| entry.
    // The operands are multiples of 1/8 below 1/2, so every sum is exact in fp32 whatever its
    // order: any difference is an error, not rounding.
    printf("\n%-40s", "max |C - first variant's C| / max |C|");
    size_t largest_c = 0;
    for (int s = 0; s < nshapes; s++) {
        size_t n = (size_t)shapes[s].m * shapes[s].n;
        if (n > largest_c) largest_c = n;
    }
    float *reference = malloc(largest_c * sizeof(float));
    double worst[MAX_VARIANTS] = {0};
    if (!reference) { fprintf(stderr, "gemm_ab: out of memory\n"); return 1; }
    for (int s = 0; s < nshapes; s++) {
        size_t n = (size_t)shapes[s].m * shapes[s].n;
        RUN(0, s, reference);
        double largest = 0;
        for (size_t j = 0; j < n; j++) largest = fmax(largest, fabs(reference[j]));
        for (int v = 1; v < nvariants; v++) {
            RUN(v, s, c[s]);
            double diff = 0;
            for (size_t j = 0; j < n; j++) {
                double d = fabs((double)c[s][j] - reference[j]);
                if (d > diff || d != d) diff = d;   // a NaN counts as the worst
            }
            double relative = largest > 0 ? diff / largest : diff;
            if (relative > worst[v] || relative != relative) worst[v] = relative;
        }
    }
    for (int v = 0; v < nvariants; v++) printf(" | %29.1e       ", worst[v]);
    printf("\n(change: median over rounds of the first variant's time over this one's in the same round;\n"
           " > 0 is faster; the total gives the range of single rounds)\n");
    (void)sink;
    return 0;
}
