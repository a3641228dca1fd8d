#pragma once
// The directory the snapshot benchmark measures: generated (deterministic for a seed), then
// written into a SQLite directory.

#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "storage/directory_store.hpp"

namespace mssgate::bench {

struct DirectoryShape {
  size_t mailboxes = 1'000'000;
  size_t spki_bindings = 150'000;  // one per applicative mailbox
  size_t issuer_serial_certificates = 12'500;
  size_t mailboxes_per_issuer_serial_certificate = 4;
  size_t holders = 300'000;  // each the owner of one personal mailbox
  size_t delegations = 100'000;
  size_t co_holdings = 30'000;
  size_t senders = 10'000;
};

// The shape above with every count in proportion to `mailboxes` (at least 1).
DirectoryShape shape_for(size_t mailboxes);

struct GeneratedDirectory {
  std::vector<storage::Mailbox> mailboxes;
  std::vector<storage::CertificateBinding> bindings;
  std::vector<std::string> holders;
  std::vector<storage::HolderAttachment> attachments;
  std::vector<std::pair<std::string, std::string>> senders;  // mailbox, sender
  // Counts by type (PER, ORG, APP, CAB) and of distinct domains.
  size_t per = 0, org = 0, app = 0, cab = 0, domains = 0;
  size_t address_bytes = 0;  // the addresses' text, summed
};

// Realistic addresses: personal mailboxes "prenom.nom" under a profession's national domain
// or an establishment's, organisational ones "service.specialite", applicative ones
// "app.logiciel.N", cabinets "cabinet.nom", establishments "<kind>-<city>.mssante.fr"; a number
// is appended where a name repeats. About 70 % PER, 12 % ORG, 15 % APP, 3 % CAB; 96 % active.
GeneratedDirectory generate_directory(const DirectoryShape& shape, uint64_t seed);

// Writes `directory` into a new SQLite directory at `path` (schema made by the store), in one
// transaction; returns the seconds the transaction took.
double import_directory(const GeneratedDirectory& directory, const std::string& path);

}  // namespace mssgate::bench
