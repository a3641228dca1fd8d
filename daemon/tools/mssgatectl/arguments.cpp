#include "daemon/tools/mssgatectl/arguments.hpp"

#include <algorithm>

namespace mssgate::ctl {

Arguments split_arguments(const std::vector<std::string>& args, size_t from) {
  Arguments out;
  for (size_t i = from; i < args.size(); ++i) {
    if (std::find(kFlags.begin(), kFlags.end(), args[i]) != kFlags.end()) {
      out.options[args[i]] = "";
    } else if (args[i].rfind("--", 0) == 0) {
      if (i + 1 >= args.size()) throw UsageError("option " + args[i] + " needs a value");
      out.options[args[i]] = args[i + 1];
      ++i;
    } else {
      out.positional.push_back(args[i]);
    }
  }
  return out;
}

void allow_only(const Arguments& a, std::initializer_list<const char*> names, size_t positional) {
  for (const auto& [name, value] : a.options) {
    bool known = false;
    for (const char* n : names)
      known = known || name == n;
    if (!known) throw UsageError("unknown option " + name);
  }
  if (a.positional.size() != positional) throw UsageError("wrong number of arguments");
}

}  // namespace mssgate::ctl
