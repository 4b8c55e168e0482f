// Communicator over MPI_COMM_WORLD, or a single process. See communicator.hpp.
#include "dist/communicator.hpp"

#include <pthread.h>
#include <signal.h>

#include <chrono>
#include <climits>
#include <cstdlib>

#include <fmt/format.h>

#include "linformer/error.hpp"

#ifdef LINFORMER_WITH_MPI
// The C API only: Open MPI's mpi.h otherwise pulls in its deprecated C++ bindings (libmpi_cxx).
#define OMPI_SKIP_MPICXX 1
#define MPICH_SKIP_MPICXX 1
#include <mpi.h>
#endif

namespace linformer::dist {

namespace {

Communicator g_world;

// Adds the time of one collective to the communicator's total.
struct CommTimer {
  double& total;
  std::chrono::steady_clock::time_point t0 = std::chrono::steady_clock::now();
  explicit CommTimer(double& t) : total(t) {}
  ~CommTimer() { total += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(); }
};

#ifdef LINFORMER_WITH_MPI
// MPI counts are ints: larger buffers go in pieces.
constexpr size_t kMaxPiece = (size_t)1 << 30;

void check(int rc, const char* what) {
  if (rc != MPI_SUCCESS) throw Error(fmt::format("MPI: {} failed (error code {})", what, rc));
}

template <class T>
void allreduce_pieces(T* data, size_t n, MPI_Datatype type) {
  for (size_t off = 0; off < n; off += kMaxPiece)
    check(MPI_Allreduce(MPI_IN_PLACE, data + off, (int)std::min(kMaxPiece, n - off), type, MPI_SUM, MPI_COMM_WORLD),
          "MPI_Allreduce");
}
#endif

}  // namespace

bool built_with_mpi() {
#ifdef LINFORMER_WITH_MPI
  return true;
#else
  return false;
#endif
}

bool launched_by_mpi() {
  for (const char* v : {"OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_RANK"})
    if (std::getenv(v)) return true;
  return false;
}

void init_from_environment(int* argc, char*** argv) {
  if (!launched_by_mpi()) return;
#ifdef LINFORMER_WITH_MPI
  // MPI_Init starts helper threads (PMIx, progress); they inherit the signal mask, so block SIGINT
  // and SIGTERM while it runs: the stop signals of training (run_dir.hpp) then reach the main thread.
  sigset_t stop_signals, old_mask;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop_signals, &old_mask);
  int provided = 0;
  const int rc = MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided);
  pthread_sigmask(SIG_SETMASK, &old_mask, nullptr);
  check(rc, "MPI_Init_thread");
  g_world.mpi_ = true;
  MPI_Comm_rank(MPI_COMM_WORLD, &g_world.rank_);
  MPI_Comm_size(MPI_COMM_WORLD, &g_world.size_);
#else
  (void)argc;
  (void)argv;
  throw Error("started by an MPI launcher (OMPI_COMM_WORLD_SIZE, PMIX_RANK or PMI_RANK is set) but this linformer was "
              "built without MPI: install libopenmpi-dev and rebuild (scripts/setup.sh)");
#endif
}

void finalize() {
#ifdef LINFORMER_WITH_MPI
  if (g_world.mpi_) {
    MPI_Finalize();
    g_world.mpi_ = false;
  }
#endif
}

const Communicator& world() { return g_world; }

void Communicator::allreduce_sum(float* data, size_t n) const {
  if (size_ == 1 || n == 0) return;
#ifdef LINFORMER_WITH_MPI
  CommTimer t(comm_seconds_);
  allreduce_pieces(data, n, MPI_FLOAT);
#else
  (void)data;
#endif
}

void Communicator::allreduce_sum(double* data, size_t n) const {
  if (size_ == 1 || n == 0) return;
#ifdef LINFORMER_WITH_MPI
  CommTimer t(comm_seconds_);
  allreduce_pieces(data, n, MPI_DOUBLE);
#else
  (void)data;
#endif
}

void Communicator::broadcast(void* data, size_t bytes, int root) const {
  if (size_ == 1 || bytes == 0) return;
#ifdef LINFORMER_WITH_MPI
  CommTimer t(comm_seconds_);
  char* p = static_cast<char*>(data);
  for (size_t off = 0; off < bytes; off += kMaxPiece)
    check(MPI_Bcast(p + off, (int)std::min(kMaxPiece, bytes - off), MPI_BYTE, root, MPI_COMM_WORLD), "MPI_Bcast");
#else
  (void)data;
  (void)root;
#endif
}

std::vector<uint64_t> Communicator::allgather(uint64_t value) const {
  std::vector<uint64_t> all((size_t)size_, value);
  if (size_ == 1) return all;
#ifdef LINFORMER_WITH_MPI
  CommTimer t(comm_seconds_);
  check(MPI_Allgather(&value, 1, MPI_UINT64_T, all.data(), 1, MPI_UINT64_T, MPI_COMM_WORLD), "MPI_Allgather");
#endif
  return all;
}

void Communicator::barrier() const {
  if (size_ == 1) return;
#ifdef LINFORMER_WITH_MPI
  CommTimer t(comm_seconds_);
  check(MPI_Barrier(MPI_COMM_WORLD), "MPI_Barrier");
#endif
}

void Communicator::abort(int code) const {
#ifdef LINFORMER_WITH_MPI
  if (mpi_) MPI_Abort(MPI_COMM_WORLD, code);
#endif
  std::exit(code);
}

}  // namespace linformer::dist
