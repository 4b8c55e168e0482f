// The MIME reader (mime.hpp) and email_body_text (linformer/datasets.hpp).
#include "datasets/mime.hpp"

#include <cctype>

#include "data/text_io.hpp"
#include "linformer/datasets.hpp"

namespace linformer {

namespace mime {

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = (char)std::tolower((unsigned char)c);
  return out;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

std::vector<std::string_view> split_lines(std::string_view s) {
  std::vector<std::string_view> out;
  size_t pos = 0;
  while (pos <= s.size()) {
    size_t e = s.find('\n', pos);
    if (e == std::string_view::npos) e = s.size();
    out.push_back(s.substr(pos, e - pos));
    pos = e + 1;
  }
  return out;
}


Headers read_headers(const std::vector<std::string_view>& lines, size_t& i) {
  Headers h;
  std::string field;
  for (; i < lines.size(); ++i) {
    const std::string_view l = lines[i];
    if (data_detail::is_blank(l)) {
      ++i;
      break;
    }
    if ((l[0] == ' ' || l[0] == '\t') && !field.empty()) {
      field += ' ';
      field += trim(l);
    } else {
      if (!field.empty()) h.add(field);
      field = std::string(l);
    }
  }
  if (!field.empty()) h.add(field);
  return h;
}

std::string collapse_ws(std::string_view s, std::string_view spaces) {
  std::string out;
  out.reserve(s.size());
  for (char c : s) {
    if (spaces.find(c) != std::string_view::npos) {
      if (!out.empty() && out.back() != ' ') out += ' ';
    } else {
      out += c;
    }
  }
  if (!out.empty() && out.back() == ' ') out.pop_back();
  return out;
}

std::string normalise_newlines(std::string_view m) {
  std::string s;
  s.reserve(m.size());
  for (size_t i = 0; i < m.size(); ++i) {
    if (m[i] == '\r') {
      s += '\n';
      if (i + 1 < m.size() && m[i + 1] == '\n') ++i;
    } else {
      s += m[i];
    }
  }
  return s;
}

}  // namespace mime

namespace {

using namespace mime;

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}


std::string no_spaces(std::string_view s) {
  std::string out;
  for (char c : s)
    if (c != ' ' && c != '\t') out += c;
  return out;
}

bool is_blank_text(std::string_view s) {
  return s.find_first_not_of(" \t\r\n\f\v") == std::string_view::npos;
}

// Base64 (characters outside the alphabet are skipped, '=' ends the data).
std::string decode_base64(std::string_view s) {
  std::string out;
  out.reserve(s.size() * 3 / 4);
  uint32_t acc = 0;
  int bits = 0;
  for (char c : s) {
    int v;
    if (c >= 'A' && c <= 'Z') v = c - 'A';
    else if (c >= 'a' && c <= 'z') v = c - 'a' + 26;
    else if (c >= '0' && c <= '9') v = c - '0' + 52;
    else if (c == '+') v = 62;
    else if (c == '/') v = 63;
    else if (c == '=') break;
    else continue;
    acc = (acc << 6) | (uint32_t)v;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out += (char)((acc >> bits) & 0xFF);
    }
  }
  return out;
}

// Quoted-printable: "=" at the end of a line joins it to the next (soft line break), =XX is the
// byte XX; anything else is kept as written.
std::string decode_quoted_printable(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '=') {
      size_t j = i + 1;
      while (j < s.size() && (s[j] == ' ' || s[j] == '\t')) ++j;  // "=  \n" is a soft break too
      if (j < s.size() && s[j] == '\n') {
        i = j;
        continue;
      }
      if (i + 2 < s.size()) {
        const int a = hex_value(s[i + 1]), b = hex_value(s[i + 2]);
        if (a >= 0 && b >= 0) {
          out += (char)(a * 16 + b);
          i += 2;
          continue;
        }
      }
    }
    out += s[i];
  }
  return out;
}

// Bytes that are not UTF-8 are read as ISO-8859-1 (the commonest charset of the corpus); the
// result is always valid UTF-8.
std::string to_utf8(std::string s) {
  if (data_detail::find_invalid_utf8(s) == std::string::npos) return s;
  std::string out;
  out.reserve(s.size() + s.size() / 8);
  for (unsigned char c : s) {
    if (c < 0x80) {
      out += (char)c;
    } else {
      out += (char)(0xC0 | (c >> 6));
      out += (char)(0x80 | (c & 0x3F));
    }
  }
  return out;
}

std::string decode_transfer(const std::string& raw, const std::string& encoding) {
  std::string bytes;
  if (encoding.find("base64") != std::string::npos) bytes = decode_base64(raw);
  else if (encoding.find("quoted-printable") != std::string::npos) bytes = decode_quoted_printable(raw);
  else bytes = raw;
  return normalise_newlines(to_utf8(std::move(bytes)));
}

}  // namespace

std::string email_body_text(std::string_view message) {
  const std::string msg = normalise_newlines(message);
  const std::vector<std::string_view> lines = split_lines(msg);
  size_t i = 0;
  const Headers top = read_headers(lines, i);
  const size_t i0 = i;  // the first body line

  // Open multiparts: their boundary, whether they are multipart/alternative (the same content in
  // several forms: only the first text part is kept) and whether a part of them was kept.
  struct Container {
    std::string boundary;
    bool alternative;
    bool kept = false;
  };
  std::vector<Container> containers;
  // The current part: keep its content? how is it encoded? its raw lines.
  bool keep = false;
  std::string encoding;
  std::string raw;
  std::string text;  // the result, before the final clean-up

  int parent = -1;  // index of the multipart the current part belongs to
  auto finish_part = [&] {
    if (keep && !is_blank_text(raw)) {
      std::string decoded = decode_transfer(raw, encoding);
      if (!is_blank_text(decoded)) {
        if (!text.empty()) text += "\n\n";
        text += decoded;
        if (parent >= 0 && parent < (int)containers.size()) containers[parent].kept = true;
      }
    }
    raw.clear();
  };
  auto start_part = [&](const Headers& h, int parent_index) {
    parent = parent_index;
    if (h.multipart()) {
      containers.push_back({h.boundary, h.content_type.rfind("multipart/alternative", 0) == 0});
      keep = false;  // its preamble
      return;
    }
    keep = h.keep() && !(parent >= 0 && containers[parent].alternative && containers[parent].kept);
    encoding = h.encoding;
  };
  start_part(top, -1);

  for (; i < lines.size(); ++i) {
    const std::string_view l = lines[i];
    // Some messages of the corpus lost their top-level Content-Type (or have it below a stray
    // empty line): a "--xxxxxxxxxx" line followed by a Content-* header line is taken as the
    // boundary of an undeclared multipart.
    if (l.size() >= 12 && l[0] == '-' && l[1] == '-' && i + 1 < lines.size() &&
        lower(lines[i + 1].substr(0, 8)) == "content-") {
      const std::string t = no_spaces(l.substr(2));
      const bool known = std::any_of(containers.begin(), containers.end(), [&](const Container& c) {
        const std::string b = no_spaces(c.boundary);
        return t == b || t == b + "--";
      });
      if (!known) containers.push_back({std::string(trim(l.substr(2))), false});
    }
    // A boundary line of an open multipart: "--B" opens a part, "--B--" closes the multipart.
    if (l.size() > 2 && l[0] == '-' && l[1] == '-' && !containers.empty()) {
      // Compared without spaces: some spammers' mailers declare "=Multipart Boundary 1" and
      // write "--= Multipart Boundary 1".
      const std::string t = no_spaces(l.substr(2));
      int found = -1;
      bool closing = false;
      for (int c = (int)containers.size() - 1; c >= 0 && found < 0; --c) {
        const std::string b = no_spaces(containers[c].boundary);
        if (t == b) found = c;
        else if (t.size() == b.size() + 2 && t.substr(0, b.size()) == b && t.substr(b.size()) == "--")
          found = c, closing = true;
      }
      if (found >= 0) {
        finish_part();
        containers.resize((size_t)found + 1);  // a boundary of an outer multipart closes the inner ones
        if (closing) {
          containers.pop_back();
          if (containers.empty() && !top.multipart()) {
            start_part(top, -1);  // an undeclared multipart ended: the message's own text goes on
          } else {
            keep = false;  // the epilogue
          }
          continue;
        }
        ++i;
        const Headers part = read_headers(lines, i);
        --i;
        start_part(part, (int)containers.size() - 1);
        continue;
      }
    }
    if (!keep) continue;
    raw.append(l.data(), l.size());
    raw += '\n';
  }
  finish_part();
  // Broken MIME (a boundary line that does not match its declaration) can leave nothing: then the
  // body is taken as written.
  if (is_blank_text(text) && i0 < lines.size()) {
    raw.clear();
    for (size_t k = i0; k < lines.size(); ++k) {
      raw.append(lines[k].data(), lines[k].size());
      raw += '\n';
    }
    text = decode_transfer(raw, top.multipart() ? std::string() : top.encoding);
  }

  // Control characters become spaces, trailing spaces go, runs of empty lines collapse, empty
  // lines at both ends are trimmed.
  std::string out;
  out.reserve(text.size());
  bool gap = false;
  for (std::string_view l : split_lines(text)) {
    std::string line(l);
    for (char& c : line)
      if (((unsigned char)c < 0x20 && c != '\t') || c == 0x7F) c = ' ';
    while (!line.empty() && (line.back() == ' ' || line.back() == '\t')) line.pop_back();
    if (line.empty() || data_detail::is_blank(line)) {
      gap = !out.empty();
      continue;
    }
    if (gap) out += "\n\n";
    else if (!out.empty()) out += '\n';
    gap = false;
    out += line;
  }
  return out;
}

}  // namespace linformer
