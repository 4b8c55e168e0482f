// The whole public API of the linformer library in one include (datasets.hpp, the dataset
// preparation tools beside the library, excepted). docs/library.md.
#pragma once

#include "linformer/analysis.hpp"
#include "linformer/batch.hpp"
#include "linformer/checkpoint.hpp"
#include "linformer/config.hpp"
#include "linformer/data.hpp"
#include "linformer/error.hpp"
#include "linformer/finetune.hpp"
#include "linformer/inference.hpp"
#include "linformer/model.hpp"
#include "linformer/optimizer.hpp"
#include "linformer/params.hpp"
#include "linformer/precision.hpp"
#include "linformer/tasks.hpp"
#include "linformer/tokenizer.hpp"
#include "linformer/trainer.hpp"
#include "linformer/version.hpp"
