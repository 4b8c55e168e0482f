// The classifier's evaluation as the fine-tuning loop runs it: shared out among the ranks of a
// data-parallel run (classifier.cpp; the public evaluate_classifier is its single-process form).
#pragma once
#include <cstdint>
#include <vector>

#include "linformer/finetune.hpp"
#include "dist/communicator.hpp"

namespace linformer {

// evaluate_classifier, with the sequences shared out among the ranks of `comm` (each runs a
// contiguous part; the confusion matrices and losses are summed). Collective.
ClassifierEval evaluate_classifier_on(const dist::Communicator& comm, Model& model,
                                      const std::vector<std::vector<int32_t>>& seqs,
                                      const std::vector<int32_t>& labels, int batch_size);

}  // namespace linformer
