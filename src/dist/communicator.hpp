// The processes of a data-parallel job (docs/distributed.md) behind a small interface, so that the
// training loops read the same with or without MPI.
//
// `linformer` started by mpirun (or srun with MPI) initialises MPI in main() and world() is then
// MPI_COMM_WORLD; started on its own it never touches MPI and world() is a single process whose
// collectives do nothing. Only the main thread calls these functions (MPI_THREAD_FUNNELED); the
// OpenMP threads of a rank never communicate.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace linformer::dist {

class Communicator {
 public:
  int rank() const { return rank_; }
  int size() const { return size_; }
  bool is_root() const { return rank_ == 0; }

  // In place: data[i] becomes the sum of data[i] over all ranks (the same bits on every rank).
  void allreduce_sum(float* data, size_t n) const;
  void allreduce_sum(double* data, size_t n) const;
  // Copies `bytes` bytes at `data` from rank `root` to every other rank.
  void broadcast(void* data, size_t bytes, int root = 0) const;
  // Every rank's value, indexed by rank.
  std::vector<uint64_t> allgather(uint64_t value) const;
  void barrier() const;
  // Ends every process of the job with `code` (MPI_Abort); a single process just exits.
  [[noreturn]] void abort(int code) const;

  // Seconds this process has spent inside the collectives above (including waiting for slower
  // ranks), for the communication share that training reports.
  double comm_seconds() const { return comm_seconds_; }

 private:
  friend void init_from_environment(int* argc, char*** argv);
  friend void finalize();
  int rank_ = 0, size_ = 1;
  bool mpi_ = false;
  mutable double comm_seconds_ = 0;
};

// True when this process was started by an MPI launcher: mpirun / mpiexec (Open MPI sets
// OMPI_COMM_WORLD_SIZE), or a PMI/PMIx launcher such as Slurm's srun --mpi=pmix (PMIX_RANK, PMI_RANK).
bool launched_by_mpi();
// Initialises MPI when launched_by_mpi() (a plain run never pays for it); call once, first thing
// in main(). Error (naming the launcher variable) when launched by MPI but built without it.
void init_from_environment(int* argc, char*** argv);
// Finalises MPI if init_from_environment started it (call before a normal exit).
void finalize();
// The job's processes (a single process unless MPI was initialised).
const Communicator& world();
// Whether this build can run under MPI (find_package(MPI) found it at configure time).
bool built_with_mpi();

}  // namespace linformer::dist
