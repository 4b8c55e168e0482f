// include/linformer/parallel.hpp: the public face of the job's processes, forwarding to the
// communicator the training loops use (dist/communicator.hpp).
#include "linformer/parallel.hpp"

#include "dist/communicator.hpp"

namespace linformer::parallel {

void init_from_environment(int* argc, char*** argv) { dist::init_from_environment(argc, argv); }
void finalize() { dist::finalize(); }
int rank() { return dist::world().rank(); }
int size() { return dist::world().size(); }
bool is_root() { return dist::world().is_root(); }
void abort(int code) { dist::world().abort(code); }

}  // namespace linformer::parallel
