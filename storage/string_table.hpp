#pragma once
// Compact string sets for the directory snapshot: strings packed end to end in one buffer,
// each known by a dense id (0, 1, 2… in the order added) and found by hash. No node per
// string: a million addresses cost their bytes plus a few bytes of tables each.

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace mssgate::storage {

inline constexpr uint32_t kNoId = UINT32_MAX;

// Ids found by hash: open addressing with linear probing over a power-of-two array of 32-bit
// slots, kept at most half full so that a search ends after a few slots. A slot holds id + 1
// (0: empty) in its low 26 bits and 6 bits of the hash above: a slot of another hash is passed
// over without reading its string, 63 times in 64.
class IdSlots {
 public:
  static constexpr uint32_t kMaxIds = (1u << 26) - 2;

  // Whether one more id needs a larger array first.
  bool full_for(size_t ids) const { return 2 * (ids + 1) > slots_.size(); }
  // An empty array with room for `ids` ids at most half full.
  void reset_for(size_t ids);
  // The first id whose slot follows `hash` and for which `matches(id)`, or kNoId.
  template <class Matches>
  uint32_t find(size_t hash, Matches&& matches) const {
    if (slots_.empty()) return kNoId;
    size_t mask = slots_.size() - 1;
    uint32_t tag = tag_of(hash);
    for (size_t i = hash & mask;; i = (i + 1) & mask) {
      uint32_t slot = slots_[i];
      if (slot == 0) return kNoId;
      if ((slot & kTagMask) == tag && matches((slot & kIdMask) - 1)) return (slot & kIdMask) - 1;
    }
  }
  // Room must exist (see full_for); id below kMaxIds.
  void insert(size_t hash, uint32_t id);
  size_t memory_bytes() const { return slots_.capacity() * sizeof(uint32_t); }

 private:
  static constexpr uint32_t kIdMask = (1u << 26) - 1;
  static constexpr uint32_t kTagMask = ~kIdMask;
  // The hash's top bits: the low ones choose the slot.
  static uint32_t tag_of(size_t hash) { return static_cast<uint32_t>(hash >> 58) << 26; }

  std::vector<uint32_t> slots_;
};

// A set of strings with ids.
class StringTable {
 public:
  void reserve(size_t strings, size_t bytes);
  // The id of `text`, added when new. Throws StorageError past 4 GiB or IdSlots::kMaxIds.
  uint32_t intern(std::string_view text);
  uint32_t find(std::string_view text) const;  // kNoId when absent
  std::string_view at(uint32_t id) const {
    uint32_t begin = id == 0 ? 0 : ends_[id - 1];
    return {bytes_.data() + begin, ends_[id] - begin};
  }
  uint32_t size() const { return static_cast<uint32_t>(ends_.size()); }
  // Gives back what the growth of the buffers left unused (the slots keep their size).
  void shrink_to_fit();
  size_t memory_bytes() const;

 private:
  void grow_slots();

  std::vector<char> bytes_;
  std::vector<uint32_t> ends_;  // string i is bytes_[ends_[i - 1], ends_[i])
  IdSlots slots_;
};

// A set of strings made of a part many share (a mail domain, a certificate issuer) and a part
// of their own, split at the last `separator`: each shared part is stored once. "dr.x@a.fr" is
// "dr.x" (own) + "@a.fr" (shared, the tail); "CN=CA|1F" is "CN=CA|" (shared, the head) + "1F".
// A string without the separator is all its own. Equality is byte for byte on the whole.
class SplitStringTable {
 public:
  enum class Shared { kHead, kTail };
  SplitStringTable(char separator, Shared shared) : separator_(separator), shared_side_(shared) {}

  void reserve(size_t strings, size_t own_bytes);
  uint32_t intern(std::string_view text);
  uint32_t find(std::string_view text) const;  // kNoId when absent
  std::string text(uint32_t id) const;
  uint32_t size() const { return static_cast<uint32_t>(entries_.size()); }
  void shrink_to_fit();
  size_t memory_bytes() const;

 private:
  struct Parts {
    std::string_view own;
    std::string_view shared;
  };
  Parts split(std::string_view text) const;
  std::string_view own_part(uint32_t id) const {
    uint32_t begin = id == 0 ? 0 : entries_[id - 1].own_end;
    return {own_bytes_.data() + begin, entries_[id].own_end - begin};
  }
  uint32_t find(const Parts& parts, uint32_t shared_id, size_t hash) const;
  void grow_slots();

  char separator_;
  Shared shared_side_;
  // Side by side, so that checking a candidate reads one place.
  struct Entry {
    uint32_t own_end;  // the own part of string i is own_bytes_[entries_[i - 1].own_end, own_end)
    uint32_t shared_id;
  };

  StringTable shared_parts_;  // separator included
  std::vector<char> own_bytes_;
  std::vector<Entry> entries_;
  IdSlots slots_;
};

}  // namespace mssgate::storage
