// Open MPI's C API (Debian: libopenmpi-dev), found through pkg-config `ompi-c`.
// Swift never imports this directly: CMPIShim wraps the macro-defined handles in functions.
#include <mpi.h>
