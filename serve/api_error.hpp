// The server's typed errors: each becomes a JSON body {"error": message, "error_type": type} with
// an HTTP status (docs/serving.md, "Errors"). The types follow text-embeddings-inference's where it
// has one (validation, empty, overloaded, unhealthy, payload_too_large).
#pragma once
#include <stdexcept>
#include <string>

namespace linformer::serve {

class ApiError : public std::runtime_error {
 public:
  ApiError(int status, std::string type, const std::string& message)
      : std::runtime_error(message), status_(status), type_(std::move(type)) {}
  int status() const { return status_; }
  const std::string& type() const { return type_; }

 private:
  int status_;
  std::string type_;
};

// The statuses and types the server uses, in one place.
inline ApiError malformed(const std::string& m) { return {400, "malformed", m}; }         // not JSON, wrong types
inline ApiError unauthorized(const std::string& m) { return {401, "unauthorized", m}; }   // missing or wrong key
inline ApiError too_large(const std::string& m) { return {413, "payload_too_large", m}; } // body, inputs, tokens
inline ApiError validation(const std::string& m) { return {422, "validation", m}; }       // bad values, UTF-8, length
inline ApiError empty_input(const std::string& m) { return {422, "empty", m}; }           // no input or an empty text
inline ApiError not_supported(const std::string& m) { return {422, "not_supported", m}; } // the model cannot answer
inline ApiError overloaded(const std::string& m) { return {429, "overloaded", m}; }       // the queue is full
inline ApiError unhealthy(const std::string& m) { return {503, "unhealthy", m}; }         // loading or draining

}  // namespace linformer::serve
