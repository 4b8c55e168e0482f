// Buffers that are allocated once and reused: growing only, never shrinking, so that a buffer's
// pages are touched once (first touch of a fresh page is expensive in these VMs, DESIGN.md).
#pragma once
#include <cstddef>
#include <vector>

namespace linformer::core {

// v grown to at least n elements (never shrunk); returns its data.
template <class T>
T* grow(std::vector<T>& v, size_t n) {
  if (v.size() < n) v.resize(n);
  return v.data();
}

}  // namespace linformer::core
