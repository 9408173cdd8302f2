// Portable packing of GEMM operand panels (see mdm_packer in gemm_internal.h).
#include "gemm_internal.h"

void mdm_pack_generic(const float *src, long ls, long ps, int n, int kc, int w, float *dst) {
    for (int l0 = 0; l0 < n; l0 += w) {
        int lines = n - l0 < w ? n - l0 : w;
        const float *s = src + (long)l0 * ls;
        if (ps == 1) {
            // Depth is contiguous within a line: walk each line, scatter with stride w.
            for (int l = 0; l < lines; l++) {
                const float *sl = s + (long)l * ls;
                for (int p = 0; p < kc; p++) dst[(long)p * w + l] = sl[p];
            }
            for (int l = lines; l < w; l++) {
                for (int p = 0; p < kc; p++) dst[(long)p * w + l] = 0;
            }
        } else {
            for (int p = 0; p < kc; p++) {
                const float *sp = s + (long)p * ps;
                float *d = dst + (long)p * w;
                for (int l = 0; l < lines; l++) d[l] = sp[(long)l * ls];
                for (int l = lines; l < w; l++) d[l] = 0;
            }
        }
        dst += (long)kc * w;
    }
}
