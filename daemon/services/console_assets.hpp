#pragma once
// The operator console's files (services/console/), compiled into the binary at build time.

#include <string_view>

namespace mssgate::daemon {

std::string_view console_page_template();  // index.html, with {{month}} where the month goes
std::string_view console_script();         // console.js
std::string_view console_style();          // console.css

}  // namespace mssgate::daemon
