#pragma once
// What the stores are opened with, from [storage], and what the indicator reports are written
// as, from [indicators.export]: shared by the daemon and mssgatectl.

#include <string>
#include <vector>

#include "config/config.hpp"
#include "protocol/ascii.hpp"
#include "storage/indicator_report_columns.hpp"
#include "storage/indicator_reports.hpp"
#include "storage/postgresql.hpp"

namespace mssgate::config {

inline storage::PostgresqlSettings postgresql_settings(const StorageConfig& storage,
                                                       std::string application_name) {
  return {storage.postgresql, storage.password, storage.connect_timeout,
          std::move(application_name), storage.statement_timeout};
}

// One report's file for a month: its configured name with "{month}" and "{format}" replaced,
// and its configured columns (empty: the report's default ones). The per-LPS report's name and
// columns are not configurable.
struct ReportFile {
  std::string name;
  std::vector<std::string> columns;
};
inline ReportFile report_file(const IndicatorExportConfig& exports, storage::Report report,
                              const std::string& month, const std::string& format) {
  ReportFile file;
  std::string_view pattern = storage::kLpsFileName;
  switch (report) {
    case storage::Report::kConnections:
      pattern = exports.connections_file;
      file.columns = exports.connections_columns;
      break;
    case storage::Report::kMessages:
      pattern = exports.messages_file;
      file.columns = exports.messages_columns;
      break;
    case storage::Report::kDocuments:
      pattern = exports.documents_file;
      file.columns = exports.documents_columns;
      break;
    case storage::Report::kAcknowledgements:
      pattern = exports.acknowledgements_file;
      file.columns = exports.acknowledgements_columns;
      break;
    case storage::Report::kLps:
      break;
  }
  file.name = protocol::replace_all(protocol::replace_all(std::string(pattern), "{month}", month),
                                    "{format}", format);
  return file;
}

}  // namespace mssgate::config
