// Self-test of the vectorised packer against the portable one, for every panel width the kernels
// use (6 and 16 for AVX2, 14 and 32 for AVX-512), so AVX-512's packing is checked even on CPUs
// that cannot run its micro-kernel.
#include <stdlib.h>
#include <string.h>
#include "CKernels.h"
#include "gemm_internal.h"

int maskdm_gemm_pack_self_test(void) {
    if (!maskdm_gemm_isa_supported(MASKDM_GEMM_ISA_AVX2)) return -1;
    const int widths[] = {6, 14, 16, 32};
    const int depths[] = {1, 7, 8, 17, 64};
    int mismatches = 0;
    for (int wi = 0; wi < 4; wi++) {
        int w = widths[wi];
        const int lines[] = {1, w - 1, w, 3 * w + 5, 7 * w};
        for (int li = 0; li < 5; li++) {
            for (int di = 0; di < 5; di++) {
                for (int contiguous_lines = 0; contiguous_lines < 2; contiguous_lines++) {
                    int n = lines[li], kc = depths[di];
                    long ls = contiguous_lines ? 1 : kc + 5, ps = contiguous_lines ? n + 3 : 1;
                    size_t src_count = (size_t)(contiguous_lines ? kc * ps : n * ls);
                    size_t dst_count = (size_t)((n + w - 1) / w * w * kc);
                    float *src = malloc(src_count * sizeof(float));
                    float *a = malloc(dst_count * sizeof(float)), *b = malloc(dst_count * sizeof(float));
                    if (!src || !a || !b) { free(src); free(a); free(b); return -2; }
                    for (size_t i = 0; i < src_count; i++) src[i] = (float)i;
                    memset(a, 0xff, dst_count * sizeof(float));   // NaN: unwritten slots differ
                    memset(b, 0xff, dst_count * sizeof(float));
                    mdm_pack_generic(src, ls, ps, n, kc, w, a);
                    mdm_pack_avx2(src, ls, ps, n, kc, w, b);
                    for (size_t i = 0; i < dst_count; i++) mismatches += memcmp(a + i, b + i, sizeof(float)) != 0;
                    free(src); free(a); free(b);
                }
            }
        }
    }
    return mismatches;
}
