#pragma once
// The command line's words after the command: positional arguments and --options, and the
// error that tells the operator how to call mssgatectl.

#include <array>
#include <initializer_list>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace mssgate::ctl {

class UsageError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Arguments after the command words: positional ones, --options with a value, and the flags
// (kFlags: options without one).
struct Arguments {
  std::vector<std::string> positional;
  std::map<std::string, std::string> options;

  std::optional<std::string> option(const std::string& name) const {
    auto it = options.find(name);
    if (it == options.end()) return std::nullopt;
    return it->second;
  }
  bool flag(const std::string& name) const { return options.count(name) > 0; }
};

// The options that take no value.
inline constexpr std::array<std::string_view, 4> kFlags{"--overwrite", "--sync", "--dry-run",
                                                        "--if-missing"};

Arguments split_arguments(const std::vector<std::string>& args, size_t from);
// Refuses any option not in `names`, and a number of positional arguments other than
// `positional` (UsageError).
void allow_only(const Arguments& a, std::initializer_list<const char*> names, size_t positional);

}  // namespace mssgate::ctl
