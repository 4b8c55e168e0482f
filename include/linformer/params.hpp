// Named parameters in one flat block, with a gradient block of the same layout.
// Zeroing, the optimizer and checkpoints are flat loops over this table.
#pragma once
#include <cstddef>
#include <string>
#include <vector>

namespace linformer {

// How Model::init fills a tensor, chosen where the tensor is registered (docs/model.md
// "Initialisation"). Unset: registered without a kind (Model::init refuses such a tensor).
enum class ParamInit {
  Unset,
  Normal,            // N(0, init_std): weight matrices, embeddings, learned E/F, conv kernels
  Zeros,             // biases, LayerNorm biases
  Ones,              // LayerNorm weights
  RandomProjection,  // frozen N(0, 1/k), k = the second-to-last dimension (projection "random")
};

struct ParamInfo {
  std::string name;            // e.g. "blk.0.attn_q.weight"
  std::vector<int64_t> shape;  // row-major
  size_t offset = 0;           // in floats, into ParamTable::data / grad
  size_t numel = 0;
  bool decay = true;           // weight decay applies (false for biases, LayerNorm, embeddings)
  bool trainable = true;       // false: frozen (the random projection); no gradient, the optimizer skips it
  ParamInit init = ParamInit::Unset;
};

class ParamTable {
 public:
  // Registers a tensor; returns its index. Call before finalize().
  int add(std::string name, std::vector<int64_t> shape, bool decay, bool trainable = true);
  // The same with the tensor's initialisation kind (the model's tensors all have one).
  int add(std::string name, std::vector<int64_t> shape, ParamInit init, bool decay, bool trainable = true);
  // Allocates data and grad (zeroed). Pointers stay valid afterwards.
  void finalize();
  // Instead of finalize(): reads the data of `src` in place (no copy) and has no gradient block,
  // so that several inference-only models share one set of weights (Model::sharing_weights_of).
  // The tensors must be those of src, added in the same order (Error otherwise). src must outlive
  // this table and keep its data where it is; all_data() is empty and grad() unusable here.
  void view_data_of(const ParamTable& src);
  bool is_view() const { return view_ != nullptr; }
  // Frees the gradient block of a table used for inference only; grad() is unusable afterwards.
  void release_grad();
  bool has_grad() const { return !grad_.empty(); }

  float* data(int i) { return base() + infos_[i].offset; }
  const float* data(int i) const { return base() + infos_[i].offset; }
  float* grad(int i) { return grad_.data() + infos_[i].offset; }
  const float* grad(int i) const { return grad_.data() + infos_[i].offset; }

  const std::vector<ParamInfo>& infos() const { return infos_; }
  const ParamInfo& info(int i) const { return infos_[i]; }
  int size() const { return static_cast<int>(infos_.size()); }
  // Index of a name, or -1.
  int find(const std::string& name) const;

  std::vector<float>& all_data() { return data_; }
  const std::vector<float>& all_data() const { return data_; }
  std::vector<float>& all_grad() { return grad_; }
  const std::vector<float>& all_grad() const { return grad_; }
  size_t total() const { return total_; }

  void zero_grad();

 private:
  float* base() const { return view_ ? view_ : const_cast<float*>(data_.data()); }
  std::vector<ParamInfo> infos_;
  std::vector<float> data_, grad_;
  size_t total_ = 0;
  float* view_ = nullptr;  // view_data_of: src's data block
};

}  // namespace linformer
