// A small C layer over MPI for the Swift `MPI` module. Open MPI defines its handles
// (MPI_COMM_WORLD, MPI_FLOAT, MPI_SUM, ...) as macros over global structs that Swift cannot
// import, so every call the library needs is exported here with plain C types.
//
// Built without the package's `MPI` trait, every function returns MASKDM_MPI_UNAVAILABLE and
// nothing links against Open MPI.
#ifndef MASKDM_MPI_H
#define MASKDM_MPI_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/// Returned by every call when the package was built without the `MPI` trait.
#define MASKDM_MPI_UNAVAILABLE (-1000)

/// 1 when this build links Open MPI, else 0.
int maskdm_mpi_available(void);

/// MPI_Init_thread (funneled: only the thread that called this calls MPI) on MPI_COMM_WORLD,
/// with errors returned rather than aborting. Writes the rank and size. 0 on success.
int maskdm_mpi_init(int *rank, int *size);

/// MPI_Finalize (no-op when not initialised or already finalised).
int maskdm_mpi_finalize(void);

/// In-place sum over all ranks of `count` floats / doubles.
int maskdm_mpi_allreduce_sum_float(float *buffer, int64_t count);
int maskdm_mpi_allreduce_sum_double(double *buffer, int count);

/// Rank `root`'s `count` floats copied to every rank.
int maskdm_mpi_broadcast_float(float *buffer, int64_t count, int root);

/// Every rank's `count` int64 values, concatenated in rank order into `out` (size * count).
int maskdm_mpi_allgather_int64(const int64_t *values, int count, int64_t *out);

/// Gathers `count` floats from every rank into `out` on `root` at `offsets[r]` (counts[r] each).
int maskdm_mpi_gather_float(const float *values, int count, float *out, const int *counts, const int *offsets, int root);

/// Blocks until every rank arrives.
int maskdm_mpi_barrier(void);

/// Ends every rank of the job with `code` (MPI_Abort).
void maskdm_mpi_abort(int code);

/// The MPI error text of `code` into `buffer` (NUL-terminated).
void maskdm_mpi_error_string(int code, char *buffer, int length);

#ifdef __cplusplus
}
#endif
#endif
