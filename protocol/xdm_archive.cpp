#include "protocol/xdm_archive.hpp"

#include <zip.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "protocol/ascii.hpp"

namespace mssgate::protocol {
namespace {

struct ArchiveCloser {
  void operator()(zip_t* archive) const { zip_discard(archive); }
};
struct FileCloser {
  void operator()(zip_file_t* file) const { zip_fclose(file); }
};

bool suspicious(std::string_view name) {
  return name.empty() || name.front() == '/' || name.find('\\') != std::string_view::npos ||
         name.find("..") != std::string_view::npos || name.find(':') != std::string_view::npos;
}

// "IHE_XDM/SUBSET01/DOC0001.XML" -> true for any XML file inside a SUBSET folder.
bool in_subset(std::string_view name, std::string_view& file) {
  if (!ascii_istarts_with(name, "IHE_XDM/")) return false;
  std::string_view rest = name.substr(8);
  size_t slash = rest.find('/');
  if (slash == std::string_view::npos || !ascii_istarts_with(rest, "SUBSET")) return false;
  file = rest.substr(slash + 1);
  return !file.empty() && file.find('/') == std::string_view::npos;
}

bool ends_with_ci(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && ascii_iequals(s.substr(s.size() - suffix.size()), suffix);
}

using Archive = std::unique_ptr<zip_t, ArchiveCloser>;

// Opens the zip held in memory. Null when it cannot be opened, `status` then says why.
Archive open_archive(std::string_view zip_bytes, XdmFacts::Status& status) {
  zip_error_t error;
  zip_error_init(&error);
  zip_source_t* source = zip_source_buffer_create(zip_bytes.data(), zip_bytes.size(), 0, &error);
  if (!source) return nullptr;
  Archive archive(zip_open_from_source(source, ZIP_RDONLY | ZIP_CHECKCONS, &error));
  if (!archive) {
    int code = zip_error_code_zip(&error);
    zip_source_free(source);
    status = code == ZIP_ER_NOZIP ? XdmFacts::Status::kNotZip : XdmFacts::Status::kTruncated;
  }
  zip_error_fini(&error);
  return archive;
}

// One entry inflated, or why the archive cannot be read further.
struct InflatedEntry {
  std::optional<XdmFacts::Status> stop;
  bool over_document_cap = false;  // too large to be read as a document: content left empty
  std::string content;
};

// How often, in bytes inflated, the reader is asked whether to go on.
constexpr uint64_t kCheckEvery = 256 << 10;

// Inflates entry `index` while counting: the sizes the archive declares are not trusted.
// `total` counts the bytes inflated from the whole archive, `meter` those of the message;
// `compressed` is the entry's compressed size, 0 when unknown.
InflatedEntry inflate_entry(zip_t* archive, zip_uint64_t index, uint64_t compressed,
                            const XdmLimits& limits, uint64_t& total, InspectionMeter& meter) {
  InflatedEntry inflated;
  std::unique_ptr<zip_file_t, FileCloser> entry(zip_fopen_index(archive, index, 0));
  if (!entry) {
    inflated.stop = XdmFacts::Status::kTruncated;
    return inflated;
  }
  std::string& content = inflated.content;
  char buffer[16384];
  for (;;) {
    zip_int64_t n = zip_fread(entry.get(), buffer, sizeof buffer);
    if (n < 0) {
      inflated.stop = XdmFacts::Status::kTruncated;
      return inflated;
    }
    if (n == 0) break;
    bool checkpoint = total / kCheckEvery != (total + static_cast<uint64_t>(n)) / kCheckEvery;
    total += static_cast<uint64_t>(n);
    if (!meter.spend_inflated(static_cast<uint64_t>(n)) || (checkpoint && !meter.go_on())) {
      inflated.stop = XdmFacts::Status::kStopped;
      return inflated;
    }
    if (total > limits.max_total_bytes) {
      inflated.stop = XdmFacts::Status::kTooLarge;
      return inflated;
    }
    if (compressed > 0 &&
        content.size() + static_cast<size_t>(n) > limits.max_ratio * compressed + 4096) {
      inflated.stop = XdmFacts::Status::kRatio;
      return inflated;
    }
    if (content.size() + static_cast<size_t>(n) > limits.cda.max_bytes) {
      content.clear();
      inflated.over_document_cap = true;
      break;
    }
    content.append(buffer, static_cast<size_t>(n));
  }
  return inflated;
}

// Reads entry `index` into `facts`. False when the archive cannot be read further:
// facts.status then says why.
bool read_entry(zip_t* archive, zip_uint64_t index, const XdmLimits& limits, uint64_t& total,
                InspectionMeter& meter, XdmFacts& facts) {
  zip_stat_t stat;
  if (zip_stat_index(archive, index, 0, &stat) != 0 || !(stat.valid & ZIP_STAT_NAME)) {
    facts.status = XdmFacts::Status::kTruncated;
    return false;
  }
  std::string_view name = stat.name;
  if (suspicious(name)) {
    ++facts.suspicious_names;
    return true;
  }
  if (ascii_istarts_with(name, "IHE_XDM/")) facts.has_xdm_folder = true;
  std::string_view file;
  if (!in_subset(name, file) || !ends_with_ci(file, ".XML")) return true;
  bool metadata = ascii_iequals(file, "METADATA.XML");
  if (metadata) ++facts.subsets;
  // No password is known: an encrypted document is named for what it is, not taken for damage.
  if ((stat.valid & ZIP_STAT_ENCRYPTION_METHOD) && stat.encryption_method != ZIP_EM_NONE) {
    facts.status = XdmFacts::Status::kEncrypted;
    return false;
  }
  if (!meter.go_on()) {
    facts.status = XdmFacts::Status::kStopped;
    return false;
  }
  uint64_t compressed = (stat.valid & ZIP_STAT_COMP_SIZE) ? stat.comp_size : 0;
  InflatedEntry inflated = inflate_entry(archive, index, compressed, limits, total, meter);
  if (inflated.stop) {
    facts.status = *inflated.stop;
    return false;
  }
  if (inflated.over_document_cap) ++facts.unreadable_documents;  // counted, never read
  if (metadata || inflated.content.empty()) return true;
  // The document's nodes are counted before it is parsed: one over the budget is never parsed.
  if (!meter.spend_document() || !meter.spend_nodes(count_xml_markup(inflated.content)) ||
      !meter.go_on()) {
    facts.status = XdmFacts::Status::kStopped;
    return false;
  }
  CdaFacts document = read_cda(inflated.content, limits.cda);
  if (document.status == CdaFacts::Status::kRead) {
    facts.documents.push_back(std::move(document));
  } else if (document.status != CdaFacts::Status::kNotCda) {
    ++facts.unreadable_documents;
  }
  return true;
}

}  // namespace

XdmFacts read_xdm(std::string_view zip_bytes, const XdmLimits& limits, InspectionMeter* meter) {
  InspectionMeter unlimited(InspectionBudget{UINT64_MAX, SIZE_MAX, UINT64_MAX});
  if (!meter) meter = &unlimited;
  XdmFacts facts;
  Archive archive = open_archive(zip_bytes, facts.status);
  if (!archive) return facts;
  zip_int64_t entries = zip_get_num_entries(archive.get(), 0);
  if (entries < 0 || static_cast<uint64_t>(entries) > limits.max_entries) {
    facts.status = XdmFacts::Status::kTooManyEntries;
    return facts;
  }
  facts.status = XdmFacts::Status::kRead;
  uint64_t total = 0;
  for (zip_int64_t i = 0; i < entries; ++i) {
    if (!read_entry(archive.get(), static_cast<zip_uint64_t>(i), limits, total, *meter, facts))
      return facts;
  }
  return facts;
}

std::string_view to_string(XdmFacts::Status status) {
  switch (status) {
    case XdmFacts::Status::kRead:
      return "read";
    case XdmFacts::Status::kNotZip:
      return "not_zip";
    case XdmFacts::Status::kTruncated:
      return "zip_truncated";
    case XdmFacts::Status::kEncrypted:
      return "zip_encrypted";
    case XdmFacts::Status::kTooManyEntries:
      return "zip_too_many_entries";
    case XdmFacts::Status::kTooLarge:
      return "zip_too_large";
    case XdmFacts::Status::kRatio:
      return "zip_ratio";
    case XdmFacts::Status::kStopped:
      return "stopped";
  }
  return "?";
}

}  // namespace mssgate::protocol
