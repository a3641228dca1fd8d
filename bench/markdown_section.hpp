#pragma once
// Writes one section of docs/benchmarks.md for the benchmark programs: the section under its
// "## " heading (up to the next "## " heading or the end) is replaced, or appended; the rest of
// the file is kept as it is.

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <string_view>

namespace mssgate::bench {

inline std::string trim_trailing_newlines(std::string text) {
  while (!text.empty() && text.back() == '\n')
    text.pop_back();
  return text;
}

// `section` starts with its heading line (`heading`). False when the file cannot be written.
inline bool write_markdown_section(const std::filesystem::path& path, std::string_view heading,
                                   const std::string& section) {
  std::string existing = "# Benchmarks\n\nWritten by the programs in `bench/`.\n";
  if (std::ifstream in{path, std::ios::binary}) {
    std::ostringstream content;
    content << in.rdbuf();
    existing = content.str();
  }
  const std::string line = std::string(heading) + "\n";
  size_t start = existing.rfind(line, 0) == 0 ? 0 : existing.find("\n" + line);
  std::string updated;
  if (start == std::string::npos) {
    updated = trim_trailing_newlines(existing) + "\n\n" + section;
  } else {
    if (start != 0) ++start;  // past the newline before the heading
    size_t end = existing.find("\n## ", start + line.size());
    updated = existing.substr(0, start) + trim_trailing_newlines(section);
    // A blank line before the next heading: `end` is at the newline that ends the section.
    if (end != std::string::npos) updated += "\n" + existing.substr(end);
  }
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << trim_trailing_newlines(updated) << "\n";
  out.close();
  return static_cast<bool>(out);
}

}  // namespace mssgate::bench
