// Self-test of the vectorised packer against the portable one, for every panel width the kernels
// use (6 and 16 for AVX2; 8, 14 (the streamed tile's rows) and 32 for AVX-512), so AVX-512's packing is checked even on CPUs
// that cannot run its micro-kernel; and the bf16 packer's vectorised paths against its portable one.
#include <stdlib.h>
#include <string.h>
#include "CKernels.h"
#include "gemm_internal.h"

/// Packs panels with `ref` and `vec` over every width, line count, depth and layout (contiguous
/// lines; contiguous depth; with `strided`, neither) and counts the 32-bit slots that differ.
/// `pairs`: panels hold two depths per slot (bf16). Returns -2 when out of memory.
static int compare_packers(mdm_packer ref, mdm_packer vec, const int *widths, int nwidths, const int *depths,
                           int ndepths, int strided, int pairs, float (*value)(size_t)) {
    int mismatches = 0;
    for (int wi = 0; wi < nwidths; wi++) {
        int w = widths[wi];
        const int lines[] = {1, w - 1, w, 3 * w + 5, 7 * w};
        for (int li = 0; li < 5; li++) {
            for (int di = 0; di < ndepths; di++) {
                for (int layout = 0; layout < 2 + strided; layout++) {
                    int n = lines[li], kc = depths[di];
                    long ls = layout == 0 ? 1 : layout == 1 ? kc + 5 : 2;
                    long ps = layout == 0 ? n + 3 : layout == 1 ? 1 : 2 * (long)n + 1;
                    size_t src_count = (size_t)((n - 1) * ls + (kc - 1) * ps + 1);
                    size_t slots = (size_t)((n + w - 1) / w * w) * (size_t)(pairs ? (kc + 1) / 2 : kc);
                    float *src = malloc(src_count * sizeof(float));
                    float *a = malloc(slots * sizeof(float)), *b = malloc(slots * sizeof(float));
                    if (!src || !a || !b) { free(src); free(a); free(b); return -2; }
                    for (size_t i = 0; i < src_count; i++) src[i] = value(i);
                    memset(a, 0xa5, slots * sizeof(float));   // unwritten slots differ
                    memset(b, 0x5a, slots * sizeof(float));
                    ref(src, ls, ps, n, kc, w, a);
                    vec(src, ls, ps, n, kc, w, b);
                    for (size_t i = 0; i < slots; i++) mismatches += memcmp(a + i, b + i, sizeof(float)) != 0;
                    free(src); free(a); free(b);
                }
            }
        }
    }
    return mismatches;
}

static float index_value(size_t i) { return (float)i; }

int maskdm_gemm_pack_self_test(void) {
    if (!maskdm_gemm_isa_supported(MASKDM_GEMM_ISA_AVX2)) return -1;
    const int widths[] = {MDM_AVX2_MR, MDM_AVX512_MR, MDM_AVX512S_MR, MDM_AVX2_NR, MDM_AVX512_NR};
    const int depths[] = {1, 7, 8, 17, 64, 70};
    return compare_packers(mdm_pack_generic, mdm_pack_avx2, widths, 5, depths, 6, 0, 0, index_value);
}

/// Source value i of the bf16 self-test: mostly values with low mantissa bits set (every rounding
/// case), with ties, denormals, signed zeros, infinities and NaNs mixed in.
static float bf16_test_value(size_t i) {
    unsigned int bits;
    switch (i % 11) {
    case 0: bits = 0x3f808000u + (unsigned)(i & 0x10000u); break;   // ties (even and odd)
    case 1: bits = 0x00012345u | (unsigned)(i & 1) << 31; break;    // denormals
    case 2: bits = (i & 1) ? 0x80000000u : 0; break;                // signed zeros
    case 3: bits = 0x7f800000u | (unsigned)(i & 1) << 31; break;    // infinities
    case 4: bits = 0x7f800001u + (unsigned)(i & 0x3fffffu); break;  // NaNs, signalling or quiet
    case 5: bits = 0x7f7fffffu; break;                              // rounds up to infinity
    default: bits = 0x3c000000u + (unsigned)(i * 2654435761u % 0x07ffffffu); break;
    }
    float x;
    memcpy(&x, &bits, sizeof x);
    return x;
}

int maskdm_gemm_pack_bf16_self_test(void) {
    if (!maskdm_gemm_isa_supported(MASKDM_GEMM_ISA_AVX512_BF16)) return -1;
    const int widths[] = {MDM_BF16_MR, MDM_BF16_NR};
    const int depths[] = {1, 2, 7, 16, 17, 33, 64};
    return compare_packers(mdm_pack_bf16_generic, mdm_pack_bf16, widths, 2, depths, 7, 1, 1, bf16_test_value);
}
