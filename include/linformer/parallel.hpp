// The processes of a data-parallel job (docs/distributed.md), as a program sees them: started by an
// MPI launcher (mpirun, srun --mpi=pmix) the process is one rank of a job; started on its own it is
// the only process and nothing here touches MPI. Call init_from_environment first thing in main(),
// finalize before a normal exit. Only the main thread calls these functions.
#pragma once

namespace linformer::parallel {

// Initialises MPI when an MPI launcher started this process (a plain run never pays for it); call
// once. Error (naming the launcher variable) when launched by MPI but built without it.
void init_from_environment(int* argc, char*** argv);
// Finalises MPI if init_from_environment started it.
void finalize();
// This process's rank in the job (0 for a single process), the job's size, and whether this is
// rank 0 (the one that prints).
int rank();
int size();
bool is_root();
// Ends every process of the job with `code` (MPI_Abort); a single process just exits.
[[noreturn]] void abort(int code);

}  // namespace linformer::parallel
