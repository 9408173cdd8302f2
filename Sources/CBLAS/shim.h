#ifndef MASKDM_CBLAS_SHIM_H
#define MASKDM_CBLAS_SHIM_H
#include <cblas.h>
/* LAPACK routines used by Metrics (symmetric eigendecomposition for the FID matrix square root). */
void dsyevd_(const char *jobz, const char *uplo, const int *n, double *a, const int *lda, double *w,
             double *work, const int *lwork, int *iwork, const int *liwork, int *info);
#endif
