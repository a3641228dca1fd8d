#include <cstring>
#include <iostream>
#include <string>

#include "config/config.hpp"
#include "daemon/app/gateway.hpp"

namespace {

constexpr const char* kDefaultConfig = "/etc/mssgate/mssgate.toml";

void usage(std::ostream& out) {
  out << "usage: mssgate [--config FILE]      serve (default " << kDefaultConfig << ")\n"
      << "       mssgate --check-config FILE  validate a configuration and exit\n"
      << "       mssgate --version\n";
}

}  // namespace

int main(int argc, char** argv) {
  std::string config_path = kDefaultConfig;
  bool check_only = false;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if ((arg == "--config" || arg == "-c" || arg == "--check-config") && i + 1 < argc) {
      check_only = check_only || arg == "--check-config";
      config_path = argv[++i];
    } else if (arg == "--version") {
      std::cout << "mssgate " << MSSGATE_VERSION << "\n";
      return 0;
    } else if (arg == "--help" || arg == "-h") {
      usage(std::cout);
      return 0;
    } else {
      std::cerr << "mssgate: unexpected argument '" << arg << "'\n";
      usage(std::cerr);
      return 2;
    }
  }
  mssgate::config::Config config;
  try {
    config = mssgate::config::load_config(config_path);
    if (check_only) {
      mssgate::daemon::check_gateway_config(config);
      for (const auto& warning : mssgate::config::config_warnings(config))
        std::cerr << "mssgate: warning: " << warning.key << ": " << warning.text << "\n";
      std::cout << "mssgate: configuration " << config_path << " is valid\n";
      return 0;
    }
  } catch (const mssgate::config::ConfigError& e) {
    std::cerr << e.what() << "\n";
    return 1;
  } catch (const std::exception& e) {
    std::cerr << "mssgate: " << e.what() << "\n";
    return 1;
  }
  return mssgate::daemon::run_gateway(config);
}
