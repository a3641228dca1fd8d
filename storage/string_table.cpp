#include "storage/string_table.hpp"

#include <algorithm>
#include <bit>
#include <functional>

#include "storage/directory_lookup.hpp"
#include "storage/storage_error.hpp"

namespace mssgate::storage {
namespace {

size_t hash_bytes(std::string_view text) {
  return std::hash<std::string_view>{}(text);
}

// The own part's hash, moved by the shared part's id: multiplying by an odd constant maps
// distinct ids to distinct low bits, so "contact@a.fr" and "contact@b.fr" land apart.
size_t split_hash(std::string_view own, uint32_t shared_id) {
  return hash_bytes(own) ^ ((static_cast<uint64_t>(shared_id) + 1) * 0x9E3779B97F4A7C15ull);
}

// Offsets and ids are 32-bit: a snapshot refuses to grow past them rather than wrap.
void check_room(size_t bytes_now, size_t adding, size_t ids_now) {
  if (bytes_now + adding > UINT32_MAX || ids_now >= IdSlots::kMaxIds) {
    throw StorageError(
        "the directory is too large for an in-memory snapshot (4 GiB of text or 2^26 strings)");
  }
}

template <class T>
void shrink(std::vector<T>& v) {
  if (v.capacity() > v.size()) v.shrink_to_fit();
}

}  // namespace

void IdSlots::reset_for(size_t ids) {
  size_t capacity = std::bit_ceil(std::max<size_t>(16, 2 * ids + 2));
  slots_.assign(capacity, 0);
}

void IdSlots::insert(size_t hash, uint32_t id) {
  size_t mask = slots_.size() - 1;
  size_t i = hash & mask;
  while (slots_[i] != 0)
    i = (i + 1) & mask;
  slots_[i] = tag_of(hash) | (id + 1);
}

void StringTable::reserve(size_t strings, size_t bytes) {
  bytes_.reserve(bytes);
  ends_.reserve(strings);
  if (slots_.full_for(strings)) {
    slots_.reset_for(strings);
    for (uint32_t id = 0; id < size(); ++id)
      slots_.insert(hash_bytes(at(id)), id);
  }
}

uint32_t StringTable::find(std::string_view text) const {
  return slots_.find(hash_bytes(text), [&](uint32_t id) { return at(id) == text; });
}

uint32_t StringTable::intern(std::string_view text) {
  size_t hash = hash_bytes(text);
  uint32_t found = slots_.find(hash, [&](uint32_t id) { return at(id) == text; });
  if (found != kNoId) return found;
  check_room(bytes_.size(), text.size(), ends_.size());
  if (slots_.full_for(size())) grow_slots();
  bytes_.insert(bytes_.end(), text.begin(), text.end());
  uint32_t id = size();
  ends_.push_back(static_cast<uint32_t>(bytes_.size()));
  slots_.insert(hash, id);
  return id;
}

void StringTable::grow_slots() {
  slots_.reset_for(size_t{2} * size());
  for (uint32_t id = 0; id < size(); ++id)
    slots_.insert(hash_bytes(at(id)), id);
}

void StringTable::shrink_to_fit() {
  shrink(bytes_);
  shrink(ends_);
}

size_t StringTable::memory_bytes() const {
  return bytes_.capacity() + ends_.capacity() * sizeof(uint32_t) + slots_.memory_bytes();
}

SplitStringTable::Parts SplitStringTable::split(std::string_view text) const {
  size_t at = text.rfind(separator_);
  if (at == std::string_view::npos) return {text, {}};
  if (shared_side_ == Shared::kTail) return {text.substr(0, at), text.substr(at)};
  return {text.substr(at + 1), text.substr(0, at + 1)};
}

void SplitStringTable::reserve(size_t strings, size_t own_bytes) {
  own_bytes_.reserve(own_bytes);
  entries_.reserve(strings);
  if (slots_.full_for(strings)) {
    slots_.reset_for(strings);
    for (uint32_t id = 0; id < size(); ++id)
      slots_.insert(split_hash(own_part(id), entries_[id].shared_id), id);
  }
}

uint32_t SplitStringTable::find(const Parts& parts, uint32_t shared_id, size_t hash) const {
  return slots_.find(hash, [&](uint32_t id) {
    return entries_[id].shared_id == shared_id && own_part(id) == parts.own;
  });
}

uint32_t SplitStringTable::find(std::string_view text) const {
  Parts parts = split(text);
  uint32_t shared_id = shared_parts_.find(parts.shared);
  if (shared_id == kNoId) return kNoId;  // nobody has this domain (or issuer)
  return find(parts, shared_id, split_hash(parts.own, shared_id));
}

uint32_t SplitStringTable::intern(std::string_view text) {
  Parts parts = split(text);
  uint32_t shared_id = shared_parts_.intern(parts.shared);
  size_t hash = split_hash(parts.own, shared_id);
  uint32_t found = find(parts, shared_id, hash);
  if (found != kNoId) return found;
  check_room(own_bytes_.size(), parts.own.size(), size());
  if (slots_.full_for(size())) grow_slots();
  own_bytes_.insert(own_bytes_.end(), parts.own.begin(), parts.own.end());
  uint32_t id = size();
  entries_.push_back({static_cast<uint32_t>(own_bytes_.size()), shared_id});
  slots_.insert(hash, id);
  return id;
}

std::string SplitStringTable::text(uint32_t id) const {
  std::string_view own = own_part(id);
  std::string_view shared = shared_parts_.at(entries_[id].shared_id);
  std::string out;
  out.reserve(own.size() + shared.size());
  if (shared_side_ == Shared::kHead) out.append(shared);
  out.append(own);
  if (shared_side_ == Shared::kTail) out.append(shared);
  return out;
}

void SplitStringTable::grow_slots() {
  slots_.reset_for(size_t{2} * size());
  for (uint32_t id = 0; id < size(); ++id)
    slots_.insert(split_hash(own_part(id), entries_[id].shared_id), id);
}

void SplitStringTable::shrink_to_fit() {
  shared_parts_.shrink_to_fit();
  shrink(own_bytes_);
  shrink(entries_);
}

size_t SplitStringTable::memory_bytes() const {
  return shared_parts_.memory_bytes() + own_bytes_.capacity() +
         entries_.capacity() * sizeof(Entry) + slots_.memory_bytes();
}

}  // namespace mssgate::storage
