#include "maskdm_mpi.h"

#include <stdio.h>
#include <string.h>

#ifdef MASKDM_WITH_MPI
#include <mpi.h>

// Counts above INT_MAX are sent in pieces (MPI counts are int).
#define CHUNK ((int64_t)1 << 28)

int maskdm_mpi_available(void) { return 1; }

int maskdm_mpi_init(int *rank, int *size) {
    int initialised = 0;
    MPI_Initialized(&initialised);
    if (!initialised) {
        int provided = 0;
        int rc = MPI_Init_thread(NULL, NULL, MPI_THREAD_FUNNELED, &provided);
        if (rc != MPI_SUCCESS) return rc;
    }
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    int rc = MPI_Comm_rank(MPI_COMM_WORLD, rank);
    if (rc != MPI_SUCCESS) return rc;
    return MPI_Comm_size(MPI_COMM_WORLD, size);
}

int maskdm_mpi_finalize(void) {
    int initialised = 0, finalised = 0;
    MPI_Initialized(&initialised);
    MPI_Finalized(&finalised);
    if (!initialised || finalised) return 0;
    return MPI_Finalize();
}

int maskdm_mpi_allreduce_sum_float(float *buffer, int64_t count) {
    for (int64_t done = 0; done < count; done += CHUNK) {
        int64_t n = count - done < CHUNK ? count - done : CHUNK;
        int rc = MPI_Allreduce(MPI_IN_PLACE, buffer + done, (int)n, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
        if (rc != MPI_SUCCESS) return rc;
    }
    return 0;
}

int maskdm_mpi_allreduce_sum_double(double *buffer, int count) {
    return MPI_Allreduce(MPI_IN_PLACE, buffer, count, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
}

int maskdm_mpi_broadcast_float(float *buffer, int64_t count, int root) {
    for (int64_t done = 0; done < count; done += CHUNK) {
        int64_t n = count - done < CHUNK ? count - done : CHUNK;
        int rc = MPI_Bcast(buffer + done, (int)n, MPI_FLOAT, root, MPI_COMM_WORLD);
        if (rc != MPI_SUCCESS) return rc;
    }
    return 0;
}

int maskdm_mpi_allgather_int64(const int64_t *values, int count, int64_t *out) {
    return MPI_Allgather(values, count, MPI_INT64_T, out, count, MPI_INT64_T, MPI_COMM_WORLD);
}

int maskdm_mpi_gather_float(const float *values, int count, float *out, const int *counts, const int *offsets, int root) {
    return MPI_Gatherv(values, count, MPI_FLOAT, out, counts, offsets, MPI_FLOAT, root, MPI_COMM_WORLD);
}

int maskdm_mpi_barrier(void) { return MPI_Barrier(MPI_COMM_WORLD); }

void maskdm_mpi_abort(int code) { MPI_Abort(MPI_COMM_WORLD, code); }

void maskdm_mpi_error_string(int code, char *buffer, int length) {
    if (length <= 0) return;
    char text[MPI_MAX_ERROR_STRING];
    int n = 0;
    if (MPI_Error_string(code, text, &n) != MPI_SUCCESS) n = snprintf(text, sizeof text, "MPI error %d", code);
    snprintf(buffer, (size_t)length, "%.*s", n, text);
}

#else  // built without the MPI trait

int maskdm_mpi_available(void) { return 0; }
int maskdm_mpi_init(int *rank, int *size) { *rank = 0; *size = 1; return MASKDM_MPI_UNAVAILABLE; }
int maskdm_mpi_finalize(void) { return 0; }
int maskdm_mpi_allreduce_sum_float(float *buffer, int64_t count) { (void)buffer; (void)count; return MASKDM_MPI_UNAVAILABLE; }
int maskdm_mpi_allreduce_sum_double(double *buffer, int count) { (void)buffer; (void)count; return MASKDM_MPI_UNAVAILABLE; }
int maskdm_mpi_broadcast_float(float *buffer, int64_t count, int root) { (void)buffer; (void)count; (void)root; return MASKDM_MPI_UNAVAILABLE; }
int maskdm_mpi_allgather_int64(const int64_t *values, int count, int64_t *out) { (void)values; (void)count; (void)out; return MASKDM_MPI_UNAVAILABLE; }
int maskdm_mpi_gather_float(const float *values, int count, float *out, const int *counts, const int *offsets, int root) {
    (void)values; (void)count; (void)out; (void)counts; (void)offsets; (void)root;
    return MASKDM_MPI_UNAVAILABLE;
}
int maskdm_mpi_barrier(void) { return MASKDM_MPI_UNAVAILABLE; }
void maskdm_mpi_abort(int code) { (void)code; }
void maskdm_mpi_error_string(int code, char *buffer, int length) {
    if (length > 0) snprintf(buffer, (size_t)length, "this build has no MPI (code %d): build with --traits MPI (make mpi)", code);
}

#endif
