#include "storage/directory_snapshot.hpp"

#include <algorithm>
#include <numeric>

#include "storage/storage_error.hpp"

namespace mssgate::storage {
namespace {

// A mailbox row in one byte: bit 7 set when the row exists, the type in bits 2-3, the status
// in bits 0-1.
constexpr uint8_t kHasRow = 0x80;

uint8_t encode_mailbox_row(protocol::MailboxType type, protocol::MailboxStatus status) {
  return kHasRow | static_cast<uint8_t>(static_cast<unsigned>(type) << 2) |
         static_cast<uint8_t>(status);
}

// Attachments pack the address id (below IdSlots::kMaxIds, 2^26) and the role in 32 bits.
uint32_t encode_attachment(uint32_t address_id, HolderRole role) {
  return address_id << 2 | static_cast<uint32_t>(role);
}

template <class T>
void sort_unique(std::vector<T>& v) {
  std::sort(v.begin(), v.end());
  v.erase(std::unique(v.begin(), v.end()), v.end());
  v.shrink_to_fit();
}

}  // namespace

std::span<const uint32_t> DirectorySnapshot::IdLists::of(uint32_t key) const {
  if (key == kNoId || key + 1 >= first.size()) return {};
  return {values.data() + first[key], values.data() + first[key + 1]};
}

void DirectorySnapshot::IdLists::fill(const std::vector<std::pair<uint32_t, uint32_t>>& pairs,
                                      uint32_t keys) {
  first.assign(static_cast<size_t>(keys) + 1, 0);
  for (const auto& [key, value] : pairs)
    ++first[key + 1];
  std::partial_sum(first.begin(), first.end(), first.begin());
  values.clear();
  values.reserve(pairs.size());
  for (const auto& [key, value] : pairs)
    values.push_back(value);
}

size_t DirectorySnapshot::IdLists::memory_bytes() const {
  return (first.capacity() + values.capacity()) * sizeof(uint32_t);
}

Lookup<std::optional<Mailbox>> DirectorySnapshot::find_mailbox(std::string_view address) const {
  Lookup<std::optional<Mailbox>> result;
  uint32_t id = addresses_.find(address);
  if (id == kNoId) return result;
  uint8_t row = mailbox_rows_[id];
  if (!(row & kHasRow)) return result;
  result.value = Mailbox{std::string(address), static_cast<protocol::MailboxType>((row >> 2) & 3),
                         static_cast<protocol::MailboxStatus>(row & 3)};
  return result;
}

void DirectorySnapshot::add_bound(std::span<const uint32_t> ids,
                                  std::vector<std::string>& out) const {
  for (uint32_t id : ids)
    out.push_back(addresses_.text(id));
}

Lookup<std::vector<std::string>> DirectorySnapshot::mailboxes_for_certificate(
    const CertificateKeys& keys) const {
  Lookup<std::vector<std::string>> result;
  add_bound(spki_mailboxes_.of(spki_keys_.find(keys.spki_sha256)), result.value);
  add_bound(issuer_serial_mailboxes_.of(issuer_serial_keys_.find(keys.issuer_serial)),
            result.value);
  if (!keys.organisation.empty()) {
    add_bound(organisation_mailboxes_.of(organisation_keys_.find(keys.organisation)), result.value);
  }
  std::sort(result.value.begin(), result.value.end());
  result.value.erase(std::unique(result.value.begin(), result.value.end()), result.value.end());
  return result;
}

Lookup<std::vector<std::string>> DirectorySnapshot::allowed_senders(
    std::string_view mailbox) const {
  Lookup<std::vector<std::string>> result;
  uint32_t id = addresses_.find(mailbox);
  if (id == kNoId) return result;
  auto [begin, end] = std::equal_range(
      mailbox_senders_.begin(), mailbox_senders_.end(), std::pair<uint32_t, uint32_t>{id, 0},
      [](const auto& a, const auto& b) { return a.first < b.first; });
  for (auto it = begin; it != end; ++it)
    result.value.emplace_back(senders_.at(it->second));
  std::sort(result.value.begin(), result.value.end());
  return result;
}

Lookup<std::optional<HolderRole>> DirectorySnapshot::holder_role(std::string_view holder,
                                                                 std::string_view mailbox) const {
  Lookup<std::optional<HolderRole>> result;
  uint32_t address = addresses_.find(mailbox);
  if (address == kNoId) return result;
  auto attachments = holder_attachments_.of(holders_.find(holder));
  auto it = std::lower_bound(attachments.begin(), attachments.end(), address,
                             [](uint32_t packed, uint32_t id) { return (packed >> 2) < id; });
  if (it != attachments.end() && (*it >> 2) == address) result.value = HolderRole(*it & 3);
  return result;
}

size_t DirectorySnapshot::memory_bytes() const {
  return sizeof(*this) + addresses_.memory_bytes() + mailbox_rows_.capacity() +
         spki_keys_.memory_bytes() + spki_mailboxes_.memory_bytes() +
         issuer_serial_keys_.memory_bytes() + issuer_serial_mailboxes_.memory_bytes() +
         organisation_keys_.memory_bytes() + organisation_mailboxes_.memory_bytes() +
         holders_.memory_bytes() + holder_attachments_.memory_bytes() + senders_.memory_bytes() +
         mailbox_senders_.capacity() * sizeof(mailbox_senders_[0]);
}

DirectorySnapshotBuilder::DirectorySnapshotBuilder() : snapshot_(new DirectorySnapshot()) {}

void DirectorySnapshotBuilder::reserve(const DirectoryCounts& expected) {
  // Guesses for the text: an address's own part, a key, a professional's idNat.
  constexpr size_t kOwnBytes = 24, kKeyBytes = 64, kHolderBytes = 12;
  size_t addresses = expected.mailboxes + expected.bindings / 8;
  snapshot_->addresses_.reserve(addresses, addresses * kOwnBytes);
  snapshot_->mailbox_rows_.reserve(addresses);
  snapshot_->spki_keys_.reserve(expected.bindings, expected.bindings * kKeyBytes);
  spki_pairs_.reserve(expected.bindings);
  snapshot_->holders_.reserve(expected.holders, expected.holders * kHolderBytes);
  holder_pairs_.reserve(expected.attachments);
  snapshot_->mailbox_senders_.reserve(expected.senders);
}

uint32_t DirectorySnapshotBuilder::address_id(std::string_view address) {
  uint32_t id = snapshot_->addresses_.intern(address);
  if (id == snapshot_->mailbox_rows_.size()) snapshot_->mailbox_rows_.push_back(0);
  return id;
}

void DirectorySnapshotBuilder::add_mailbox(std::string_view address, protocol::MailboxType type,
                                           protocol::MailboxStatus status) {
  uint8_t& row = snapshot_->mailbox_rows_[address_id(address)];
  if (!(row & kHasRow)) row = encode_mailbox_row(type, status);
}

void DirectorySnapshotBuilder::add_binding(CertificateMatch match, std::string_view value,
                                           std::string_view mailbox) {
  uint32_t address = address_id(mailbox);
  if (match == CertificateMatch::kSpkiSha256) {
    spki_pairs_.emplace_back(snapshot_->spki_keys_.intern(value), address);
  } else if (match == CertificateMatch::kIssuerSerial) {
    issuer_serial_pairs_.emplace_back(snapshot_->issuer_serial_keys_.intern(value), address);
  } else {
    organisation_pairs_.emplace_back(snapshot_->organisation_keys_.intern(value), address);
  }
}

void DirectorySnapshotBuilder::add_sender(std::string_view mailbox, std::string_view sender) {
  uint32_t address = address_id(mailbox);
  snapshot_->mailbox_senders_.emplace_back(address, snapshot_->senders_.intern(sender));
}

void DirectorySnapshotBuilder::add_attachment(std::string_view holder, std::string_view mailbox,
                                              HolderRole role) {
  uint32_t address = address_id(mailbox);
  holder_pairs_.emplace_back(snapshot_->holders_.intern(holder), encode_attachment(address, role));
}

std::shared_ptr<const DirectorySnapshot> DirectorySnapshotBuilder::build() {
  DirectorySnapshot& s = *snapshot_;
  sort_unique(spki_pairs_);
  s.spki_mailboxes_.fill(spki_pairs_, s.spki_keys_.size());
  sort_unique(issuer_serial_pairs_);
  s.issuer_serial_mailboxes_.fill(issuer_serial_pairs_, s.issuer_serial_keys_.size());
  sort_unique(organisation_pairs_);
  s.organisation_mailboxes_.fill(organisation_pairs_, s.organisation_keys_.size());
  // One role per professional and mailbox: sorted, the first is the lowest role.
  std::sort(holder_pairs_.begin(), holder_pairs_.end());
  holder_pairs_.erase(std::unique(holder_pairs_.begin(), holder_pairs_.end(),
                                  [](const auto& a, const auto& b) {
                                    return a.first == b.first && (a.second >> 2) == (b.second >> 2);
                                  }),
                      holder_pairs_.end());
  s.holder_attachments_.fill(holder_pairs_, s.holders_.size());
  sort_unique(s.mailbox_senders_);

  s.counts_.mailboxes = static_cast<size_t>(std::count_if(
      s.mailbox_rows_.begin(), s.mailbox_rows_.end(), [](uint8_t row) { return row & kHasRow; }));
  s.counts_.bindings =
      spki_pairs_.size() + issuer_serial_pairs_.size() + organisation_pairs_.size();
  s.counts_.holders = s.holders_.size();
  s.counts_.attachments = holder_pairs_.size();
  s.counts_.senders = s.mailbox_senders_.size();
  for (auto* table : {&s.spki_keys_, &s.holders_, &s.senders_})
    table->shrink_to_fit();
  s.addresses_.shrink_to_fit();
  s.issuer_serial_keys_.shrink_to_fit();
  s.organisation_keys_.shrink_to_fit();
  s.mailbox_rows_.shrink_to_fit();

  std::shared_ptr<const DirectorySnapshot> built(snapshot_.release());
  *this = DirectorySnapshotBuilder();
  return built;
}

}  // namespace mssgate::storage
