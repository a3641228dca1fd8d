#pragma once
// mssgatectl's "directory" commands: the whole directory imported from a file (added to, or
// made equal to it with --sync) and exported to one, in CSV or JSON Lines.

#include <string>

#include "daemon/tools/mssgatectl/arguments.hpp"
#include "storage/directory_store.hpp"

namespace mssgate::ctl {

// `directory import|export`. Returns the exit code; throws UsageError or std::runtime_error.
int directory_command(const std::string& verb, const Arguments& a,
                      storage::DirectoryStore& directory);

}  // namespace mssgate::ctl
