#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iostream>
#include <optional>
#include <string>

#include "config/config.hpp"
#include "daemon/app/gateway.hpp"

namespace {

constexpr const char* kDefaultConfig = "/etc/mssgate/mssgate.toml";

void usage(std::ostream& out) {
  out << "usage: mssgate [--config FILE] [--pid-file FILE]\n"
      << "                                    serve (default " << kDefaultConfig << ")\n"
      << "       mssgate --check-config FILE  validate a configuration and exit\n"
      << "       mssgate --version\n";
}

// The process's PID in a file while it serves (for scripts that start mssgate through a command
// that forks, such as runuser, where $! is not mssgate's PID). Written whole (beside, then
// renamed), removed at exit if it still names this process.
class PidFile {
 public:
  explicit PidFile(std::string path) : path_(std::move(path)) {
    std::string partial = path_ + ".partial";
    {
      std::ofstream out(partial, std::ios::trunc);
      out << ::getpid() << "\n";
      out.flush();
      if (!out) throw std::runtime_error(why("cannot write the PID file " + partial));
    }
    if (std::rename(partial.c_str(), path_.c_str()) != 0) {
      std::string error = why("cannot write the PID file " + path_);
      std::remove(partial.c_str());
      throw std::runtime_error(error);
    }
  }
  ~PidFile() {
    std::ifstream in(path_);
    long pid = 0;
    if (in >> pid && pid == static_cast<long>(::getpid())) std::remove(path_.c_str());
  }
  PidFile(const PidFile&) = delete;
  PidFile& operator=(const PidFile&) = delete;

 private:
  static std::string why(const std::string& what) { return what + ": " + std::strerror(errno); }
  std::string path_;
};

}  // namespace

int main(int argc, char** argv) {
  std::string config_path = kDefaultConfig;
  bool check_only = false;
  std::optional<std::string> pid_path;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "--pid-file" && i + 1 < argc) {
      pid_path = argv[++i];
    } else if ((arg == "--config" || arg == "-c" || arg == "--check-config") && i + 1 < argc) {
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
  std::optional<PidFile> pid_file;
  try {
    config = mssgate::config::load_config(config_path);
    if (check_only) {
      mssgate::daemon::check_gateway_config(config);
      for (const auto& warning : mssgate::config::config_warnings(config))
        std::cerr << "mssgate: warning: " << warning.key << ": " << warning.text << "\n";
      std::cout << "mssgate: configuration " << config_path << " is valid\n";
      return 0;
    }
    if (pid_path) pid_file.emplace(*pid_path);
  } catch (const mssgate::config::ConfigError& e) {
    std::cerr << e.what() << "\n";
    return 1;
  } catch (const std::exception& e) {
    std::cerr << "mssgate: " << e.what() << "\n";
    return 1;
  }
  return mssgate::daemon::run_gateway(config);
}
