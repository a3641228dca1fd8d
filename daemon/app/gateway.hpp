#pragma once

#include "config/config.hpp"

namespace mssgate::daemon {

// Binds the listeners of `config`, serves until SIGTERM or SIGINT, and returns the exit code.
// Start-up problems (a certificate that does not load, a port already taken) are reported on
// standard error and give exit code 1.
int run_gateway(const config::Config& config);

// Loads everything a start would load, without binding or serving. Throws on the first
// problem, with a sentence for the operator.
void check_gateway_config(const config::Config& config);

}  // namespace mssgate::daemon
