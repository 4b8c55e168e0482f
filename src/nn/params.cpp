// ParamTable (include/linformer/params.hpp): registration, the flat blocks, zeroing gradients.
#include "linformer/params.hpp"

#include <omp.h>

#include <algorithm>

#include "linformer/error.hpp"

namespace linformer {

int ParamTable::add(std::string name, std::vector<int64_t> shape, bool decay, bool trainable) {
  return add(std::move(name), std::move(shape), ParamInit::Unset, decay, trainable);
}

int ParamTable::add(std::string name, std::vector<int64_t> shape, ParamInit init, bool decay, bool trainable) {
  if (!data_.empty() || view_) throw Error("ParamTable::add after finalize: " + name);
  if (find(name) >= 0) throw Error("duplicate parameter name: " + name);
  ParamInfo p;
  p.name = std::move(name);
  p.numel = 1;
  for (int64_t s : shape) p.numel *= static_cast<size_t>(s);
  p.shape = std::move(shape);
  p.offset = total_;
  p.decay = decay && trainable;
  p.trainable = trainable;
  p.init = init;
  // Keep every tensor 64-byte aligned inside the block (16 floats).
  total_ += (p.numel + 15) / 16 * 16;
  infos_.push_back(std::move(p));
  return static_cast<int>(infos_.size()) - 1;
}

void ParamTable::finalize() {
  data_.assign(total_, 0.0f);
  grad_.assign(total_, 0.0f);
}

void ParamTable::view_data_of(const ParamTable& src) {
  if (!data_.empty() || view_) throw Error("ParamTable::view_data_of after finalize");
  bool same = src.total_ == total_ && src.infos_.size() == infos_.size();
  for (size_t i = 0; same && i < infos_.size(); ++i)
    same = src.infos_[i].name == infos_[i].name && src.infos_[i].shape == infos_[i].shape;
  if (!same || src.base() == nullptr) throw Error("ParamTable::view_data_of: the tables hold different tensors");
  view_ = src.base();
}

void ParamTable::release_grad() { std::vector<float>().swap(grad_); }

int ParamTable::find(const std::string& name) const {
  for (size_t i = 0; i < infos_.size(); ++i)
    if (infos_[i].name == name) return static_cast<int>(i);
  return -1;
}

// Every step clears all gradients (340 MB for RoBERTa-base): split over the threads, as one
// thread alone does not use the memory bandwidth a second core adds.
void ParamTable::zero_grad() {
  const size_t n = grad_.size(), chunk = 1 << 16;
  const ptrdiff_t chunks = (ptrdiff_t)((n + chunk - 1) / chunk);
  float* g = grad_.data();
#pragma omp parallel for schedule(static)
  for (ptrdiff_t c = 0; c < chunks; ++c) {
    const size_t b = (size_t)c * chunk;
    std::fill(g + b, g + std::min(n, b + chunk), 0.0f);
  }
}

}  // namespace linformer
