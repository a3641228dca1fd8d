#pragma once
// Generated samples shared by the unit tests: CDA documents, IHE_XDM archives made in memory
// with libzip.

#include <zip.h>

#include <string>
#include <utility>
#include <vector>

namespace mssgate::test_samples {

// A well-formed INS matricule (a Corsican one: department 2A) and its control key; no one's.
inline const std::string kWellFormedIns = "284032A00412323";

inline std::string cda(const std::string& code, const std::string& ins_oid = "1.2.250.1.213.1.4.8",
                       bool birth_time = true, const std::string& sex = "F",
                       const std::string& ins_value = kWellFormedIns) {
  return R"(<?xml version="1.0" encoding="UTF-8"?>
<ClinicalDocument xmlns="urn:hl7-org:v3">
  <code code=")" +
         code + R"(" codeSystem="2.16.840.1.113883.6.1" displayName="CR"/>
  <recordTarget><patientRole>
    <id root="1.2.250.1.213.1.4.8.999" extension="local-id"/>
    <id root=")" +
         ins_oid + R"(" extension=")" + ins_value + R"("/>
    <patient>
      <name><given>MARIE</given><family qualifier="BR">DURAND</family></name>
      <administrativeGenderCode code=")" +
         sex + R"(" codeSystem="2.16.840.1.113883.5.1"/>
      )" +
         (birth_time ? R"(<birthTime value="19480922"/>)" : "") + R"(
    </patient>
  </patientRole></recordTarget>
</ClinicalDocument>)";
}

inline const std::string kMetadata =
    R"(<?xml version="1.0"?><SubmitObjectsRequest xmlns="urn:oasis:names:tc:ebxml-regrep:xsd:lcm:3.0"/>)";

// An archive made in memory with libzip; the entry named `encrypted` (if any) is encrypted with
// `method` and the password "secret".
inline std::string make_zip(const std::vector<std::pair<std::string, std::string>>& files,
                            const std::string& encrypted = "",
                            zip_uint16_t method = ZIP_EM_TRAD_PKWARE) {
  zip_error_t error;
  zip_error_init(&error);
  zip_source_t* source = zip_source_buffer_create(nullptr, 0, 0, &error);
  zip_source_keep(source);
  zip_t* archive = zip_open_from_source(source, ZIP_TRUNCATE, &error);
  // The entries' bytes are read where they are, by zip_close(), while `files` is still alive.
  for (const auto& [name, content] : files) {
    zip_source_t* file = zip_source_buffer(archive, content.data(), content.size(), 0);
    zip_int64_t index = zip_file_add(archive, name.c_str(), file, ZIP_FL_OVERWRITE);
    if (name == encrypted)
      zip_file_set_encryption(archive, static_cast<zip_uint64_t>(index), method, "secret");
  }
  zip_close(archive);
  zip_source_open(source);
  zip_source_seek(source, 0, SEEK_END);
  auto size = zip_source_tell(source);
  zip_source_seek(source, 0, SEEK_SET);
  std::string bytes(static_cast<size_t>(size), '\0');
  zip_source_read(source, bytes.data(), static_cast<zip_uint64_t>(size));
  zip_source_close(source);
  zip_source_free(source);
  zip_error_fini(&error);
  return bytes;
}

inline std::string xdm(const std::vector<std::pair<std::string, std::string>>& documents) {
  std::vector<std::pair<std::string, std::string>> files{
      {"README.TXT", "readme"},
      {"INDEX.HTM", "<html/>"},
      {"IHE_XDM/SUBSET01/METADATA.XML", kMetadata}};
  for (const auto& d : documents)
    files.push_back(d);
  return make_zip(files);
}

}  // namespace mssgate::test_samples
