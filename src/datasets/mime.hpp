// An RFC-822 / MIME reader, just enough to get the text out of an e-mail (docs/tasks.md): header
// blocks unfolded, multipart structure walked, base64 and quoted-printable text parts decoded.
// Used by the SpamAssassin dataset (spam.cpp); email_body_text itself is declared in
// linformer/datasets.hpp.
#pragma once
#include <algorithm>
#include <string>
#include <string_view>
#include <vector>

namespace linformer::mime {

std::string lower(std::string_view s);
// Spaces and tabs removed from both ends.
std::string_view trim(std::string_view s);

// Header fields of one header block (the message's or a MIME part's), unfolded.
struct Headers {
  std::string content_type;  // lower-cased value, "" when absent
  std::string boundary;      // as written (case matters)
  std::string encoding;      // lower-cased Content-Transfer-Encoding
  std::string subject;       // as written

  void add(const std::string& field) {
    const size_t colon = field.find(':');
    if (colon == std::string::npos) return;
    const std::string name = lower(trim(std::string_view(field).substr(0, colon)));
    const std::string_view value = trim(std::string_view(field).substr(colon + 1));
    if (name == "content-type") {
      content_type = lower(value);
      size_t b = content_type.find("boundary");
      while (b != std::string::npos) {  // boundary [spaces] = [spaces] value
        size_t e = b + 8;
        while (e < content_type.size() && content_type[e] == ' ') ++e;
        if (e < content_type.size() && content_type[e] == '=') {
          b = e + 1;
          break;
        }
        b = content_type.find("boundary", b + 8);
      }
      if (b != std::string::npos) {
        std::string_view v = trim(value.substr(b));  // same offsets: lower() keeps the length
        if (!v.empty() && v.front() == '"') {
          v.remove_prefix(1);
          v = v.substr(0, v.find('"'));
        } else {
          v = v.substr(0, std::min(v.find(';'), v.find(' ')));
        }
        boundary = std::string(v);
      }
    } else if (name == "content-transfer-encoding") {
      encoding = lower(value);
    } else if (name == "subject") {
      subject = std::string(value);
    }
  }
  bool multipart() const { return content_type.rfind("multipart/", 0) == 0 && !boundary.empty(); }
  // Text we keep: no Content-Type (text/plain by default), text/*, or message/*.
  bool keep() const {
    return content_type.empty() || content_type.rfind("text/", 0) == 0 || content_type.rfind("message/", 0) == 0;
  }
};

// The lines of s, split at '\n' (a last line without one included).
std::vector<std::string_view> split_lines(std::string_view s);
// Reads a header block starting at lines[i]; stops after the empty line that ends it.
Headers read_headers(const std::vector<std::string_view>& lines, size_t& i);
// Runs of the characters in `spaces` (by default any whitespace, line ends included) as one
// space, trimmed at both ends.
std::string collapse_ws(std::string_view s, std::string_view spaces = " \t\n\r");
// CRLF and CR line ends as LF.
std::string normalise_newlines(std::string_view m);

}  // namespace linformer::mime
