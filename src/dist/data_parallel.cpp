// See data_parallel.hpp.
#include "dist/data_parallel.hpp"

#include "core/hash.hpp"

#include <algorithm>

#include <fmt/format.h>

#include "linformer/error.hpp"
#include "linformer/params.hpp"

namespace linformer::dist {

void allreduce_gradients(const Communicator& comm, ParamTable& params) {
  if (comm.size() == 1) return;
  std::vector<float>& g = params.all_grad();
  // Buckets bound the size of one reduction (and of Open MPI's temporary buffers for it); they are
  // also the unit at which an overlapped version would start reductions during the backward pass.
  for (size_t off = 0; off < g.size(); off += kGradBucketFloats)
    comm.allreduce_sum(g.data() + off, std::min(kGradBucketFloats, g.size() - off));
}

uint64_t checksum(const std::vector<float>& v) {
  return core::fnv1a_words(reinterpret_cast<const uint32_t*>(v.data()), v.size());
}

uint64_t checksum(const std::vector<uint64_t>& values) {
  uint64_t h = core::kFnvOffset;
  for (uint64_t v : values) {
    unsigned char bytes[8];  // little-endian, whatever the machine
    for (int byte = 0; byte < 8; ++byte) bytes[byte] = (unsigned char)(v >> (8 * byte));
    h = core::fnv1a(bytes, 8, h);
  }
  return h;
}

void check_same_on_all_ranks(const Communicator& comm, uint64_t value, const std::string& what) {
  const std::vector<uint64_t> all = comm.allgather(value);
  for (size_t r = 1; r < all.size(); ++r)
    if (all[r] != all[0])
      throw Error(fmt::format("{}: not the same on every rank (checksum {:016x} on rank 0, {:016x} on rank {}); every "
                              "rank must start from the same run folder, data files and options",
                              what, all[0], all[r], r));
}

uint64_t rank_seed(uint64_t seed, int rank) { return seed + (uint64_t)rank * 0x9E3779B97F4A7C15ULL; }

}  // namespace linformer::dist
