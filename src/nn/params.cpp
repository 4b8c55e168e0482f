#include "linformer/params.hpp"

#include <algorithm>

#include "linformer/error.hpp"

namespace linformer {

int ParamTable::add(std::string name, std::vector<int64_t> shape, bool decay, bool trainable) {
  if (!data_.empty()) throw Error("ParamTable::add after finalize: " + name);
  if (find(name) >= 0) throw Error("duplicate parameter name: " + name);
  ParamInfo p;
  p.name = std::move(name);
  p.numel = 1;
  for (int64_t s : shape) p.numel *= static_cast<size_t>(s);
  p.shape = std::move(shape);
  p.offset = total_;
  p.decay = decay && trainable;
  p.trainable = trainable;
  // Keep every tensor 64-byte aligned inside the block (16 floats).
  total_ += (p.numel + 15) / 16 * 16;
  infos_.push_back(std::move(p));
  return static_cast<int>(infos_.size()) - 1;
}

void ParamTable::finalize() {
  data_.assign(total_, 0.0f);
  grad_.assign(total_, 0.0f);
}

int ParamTable::find(const std::string& name) const {
  for (size_t i = 0; i < infos_.size(); ++i)
    if (infos_[i].name == name) return static_cast<int>(i);
  return -1;
}

void ParamTable::zero_grad() { std::fill(grad_.begin(), grad_.end(), 0.0f); }

}  // namespace linformer
