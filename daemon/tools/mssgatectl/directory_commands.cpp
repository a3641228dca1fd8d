#include "daemon/tools/mssgatectl/directory_commands.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <vector>

#include "storage/directory_file.hpp"

namespace mssgate::ctl {
namespace {

namespace storage = mssgate::storage;

// At most this many bad rows are printed; the count says how many there were.
constexpr size_t kErrorsShown = 100;

storage::DirectoryFileFormat file_format(const Arguments& a, const std::string& path,
                                         bool default_csv) {
  if (auto text = a.option("--format")) {
    auto format = storage::parse_directory_file_format(*text);
    if (!format) throw UsageError("--format is csv or jsonl");
    return *format;
  }
  if (auto format = storage::directory_file_format_of(path)) return *format;
  if (default_csv) return storage::DirectoryFileFormat::kCsv;
  throw UsageError("cannot tell the format of '" + path +
                   "' from its name: say --format csv or --format jsonl");
}

// Reads the file (or standard input for "-") through the reader, a block at a time.
storage::ImportRows read_file(const std::string& path, storage::DirectoryFileFormat format,
                              std::vector<storage::ImportError>& errors) {
  int fd = path == "-" ? STDIN_FILENO : ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw std::runtime_error("cannot read " + path + ": " + std::strerror(errno));
  storage::DirectoryFileReader reader(format);
  std::vector<char> block(1 << 20);
  for (;;) {
    ssize_t n = ::read(fd, block.data(), block.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      int error = errno;
      if (fd != STDIN_FILENO) ::close(fd);
      throw std::runtime_error("cannot read " + path + ": " + std::strerror(error));
    }
    if (n == 0) break;
    reader.feed({block.data(), static_cast<size_t>(n)});
  }
  if (fd != STDIN_FILENO) ::close(fd);
  return reader.finish(errors);
}

// The bad rows, as a compiler names its errors ("FILE:LINE: what"); nothing was changed.
int report_errors(const std::string& path, const std::vector<storage::ImportError>& errors) {
  std::string name = path == "-" ? "<stdin>" : path;
  for (size_t i = 0; i < errors.size() && i < kErrorsShown; ++i)
    std::cerr << name << ":" << errors[i].line << ": " << errors[i].message << "\n";
  if (errors.size() > kErrorsShown)
    std::cerr << "... and " << errors.size() - kErrorsShown << " more\n";
  std::cerr << "mssgatectl: " << errors.size() << (errors.size() == 1 ? " error" : " errors")
            << " in " << name << ": nothing was changed\n";
  return 1;
}

int import_directory(const Arguments& a, storage::DirectoryStore& directory) {
  allow_only(a, {"--format", "--sync", "--absent", "--dry-run"}, 1);
  const std::string& path = a.positional[0];
  auto format = file_format(a, path, false);
  auto absent = storage::AbsentMailboxes::kKeep;
  if (auto text = a.option("--absent")) {
    if (!a.flag("--sync")) throw UsageError("--absent goes with --sync");
    auto chosen = storage::parse_absent_mailboxes(*text);
    if (!chosen) throw UsageError("--absent is suspend, close or remove");
    absent = *chosen;
  } else if (a.flag("--sync")) {
    absent = storage::AbsentMailboxes::kSuspend;
  }
  std::vector<storage::ImportError> errors;
  storage::ImportRows rows = read_file(path, format, errors);
  if (!errors.empty()) return report_errors(path, errors);

  const bool dry_run = a.flag("--dry-run");
  storage::DirectoryChanges planned;
  directory.change_whole(
      [&](const storage::DirectoryContents& current) -> std::optional<storage::DirectoryChanges> {
        planned = storage::plan_changes(current, rows, absent, errors);
        if (!errors.empty() || dry_run) return std::nullopt;
        return planned;
      });
  if (!errors.empty()) return report_errors(path, errors);
  if (dry_run) {
    for (const auto& line : storage::describe_changes(planned))
      std::cout << line << "\n";
    std::cout << "would change (--dry-run, nothing changed): "
              << storage::summarize_changes(planned) << "\n";
    return 0;
  }
  std::cout << "imported " << (path == "-" ? "<stdin>" : path)
            << " in one transaction: " << storage::summarize_changes(planned) << "\n";
  return 0;
}

int export_directory(const Arguments& a, storage::DirectoryStore& directory) {
  allow_only(a, {"--format", "--out", "--overwrite"}, 0);
  auto out_path = a.option("--out");
  auto format = file_format(a, out_path.value_or(""), true);
  if (out_path && !a.flag("--overwrite") && std::filesystem::exists(*out_path)) {
    throw std::runtime_error(*out_path + " exists; nothing was written (--overwrite replaces it)");
  }
  storage::DirectoryContents contents = directory.read_whole();
  if (!out_path) {
    storage::write_directory_file(contents, format, std::cout);
    std::cout.flush();
    if (!std::cout) throw std::runtime_error("cannot write to standard output");
    return 0;
  }
  // Written beside, then renamed: the file is whole or absent, never half an export.
  std::string partial = *out_path + ".partial";
  {
    std::ofstream file(partial, std::ios::binary | std::ios::trunc);
    if (!file) throw std::runtime_error("cannot write " + partial + ": " + std::strerror(errno));
    storage::write_directory_file(contents, format, file);
    file.flush();
    if (!file) {
      int error = errno;
      std::filesystem::remove(partial);
      throw std::runtime_error("cannot write " + partial + ": " + std::strerror(error));
    }
  }
  std::error_code ec;
  std::filesystem::rename(partial, *out_path, ec);
  if (ec) {
    std::filesystem::remove(partial);
    throw std::runtime_error("cannot write " + *out_path + ": " + ec.message());
  }
  std::cout << "exported " << contents.mailboxes.size() << " mailboxes, " << contents.senders.size()
            << " allowed senders, " << contents.holders.size() << " holders, "
            << contents.attachments.size() << " attachments, " << contents.bindings.size()
            << " certificate bindings to " << *out_path << " (" << storage::to_string(format)
            << ")\n";
  return 0;
}

}  // namespace

int directory_command(const std::string& verb, const Arguments& a,
                      storage::DirectoryStore& directory) {
  if (verb == "import") return import_directory(a, directory);
  if (verb == "export") return export_directory(a, directory);
  throw UsageError("unknown command 'directory " + verb + "'");
}

}  // namespace mssgate::ctl
