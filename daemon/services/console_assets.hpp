#pragma once
// The operator console's files (services/console/) and the OpenAPI document, compiled into the
// binary at build time.

#include <string_view>

namespace mssgate::daemon {

std::string_view console_page_template();  // index.html, with {{month}} where the month goes
std::string_view console_script();         // console.js
std::string_view console_style();          // console.css
// The provisioning API's OpenAPI document (docs/openapi.json), served at /api/openapi.json.
std::string_view openapi_document();

}  // namespace mssgate::daemon
