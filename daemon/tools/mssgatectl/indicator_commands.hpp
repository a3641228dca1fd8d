#pragma once
// mssgatectl's "indicators" commands: the monthly export files and one mailbox's days.

#include <optional>
#include <string>

#include "daemon/tools/mssgatectl/arguments.hpp"

namespace mssgate::ctl {

// `indicators export|show`: the journal is `journal_option`, else the configuration's
// indicators.journal. Returns the exit code; throws UsageError or std::runtime_error.
int indicators(const std::string& verb, const Arguments& a, const std::string& config_path,
               const std::optional<std::string>& journal_option);

}  // namespace mssgate::ctl
