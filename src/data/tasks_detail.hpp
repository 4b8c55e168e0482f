// Internal helpers of the task datasets (tasks.cpp, listops.cpp, spam.cpp, fashion_mnist.cpp).
#pragma once
#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/fs.hpp"
#include "core/hash.hpp"
#include "core/process.hpp"
#include "data/text_io.hpp"
#include "linformer/tasks.hpp"

namespace linformer::task_detail {

inline constexpr const char* kSplitNames[3] = {"train", "valid", "test"};

// Writes a task folder: the three split files (atomically, each renamed into place by commit()),
// optionally train.txt (the training texts, one non-blank line per line, an empty line after each
// example: the text format of `linformer tokenizer train`), and task.json last.
class TaskWriter {
 public:
  TaskWriter(const std::string& dir, TaskInfo info, bool write_train_txt);
  // split: 0 train, 1 valid, 2 test; label: index into info.labels. The text must not be empty.
  void add(int split, int32_t label, std::string_view text);
  size_t count(int split) const { return count_[split]; }
  // Renames the split files into place, then writes task.json with `extra` merged in.
  void commit(const nlohmann::json& extra = nlohmann::json::object());
  const TaskInfo& info() const { return info_; }

 private:
  std::string dir_;
  TaskInfo info_;
  std::array<std::unique_ptr<core::AtomicFile>, 3> files_;
  std::unique_ptr<core::AtomicFile> train_txt_;
  std::array<size_t, 3> count_{0, 0, 0};
  std::string buf_;
};

// Checks a label name for the task format (non-empty, no tab/CR/LF, valid UTF-8); ConfigError.
void check_label_name(const std::string& name);

// ListOps inside the generator and the evaluator: operators 0-3 (MIN MAX MED SM), digits 4-13,
// 14 the closing bracket; adding kListOpsFirstOp gives the vocabulary id.
inline constexpr const char* kListOpsOpNames[4] = {"[MIN", "[MAX", "[MED", "[SM"};
inline constexpr uint8_t kListOpsCodeDigit = 4, kListOpsCodeClose = 14;
static_assert(kListOpsFirstOp + kListOpsCodeDigit == kListOpsFirstDigit &&
              kListOpsFirstOp + kListOpsCodeClose == kListOpsClose);
// The value of operator `op` over v[0..n) (MED sorts v).
int listops_apply(int op, int* v, int n);

}  // namespace linformer::task_detail
