// The server's lookups by key (connected clients by address, for every datagram it receives; by client
// id; handshakes and recently released clients by address; tokens seen): an open-addressing table
// (linear probing, at most half full, deletion by backward shift) in one flat array, so a lookup touches
// one or two cache lines instead of a bucket list, and nothing is allocated per entry. The hash is SipHash
// under a key made at each start, so that keys cannot be chosen to collide. Each entry keeps its hash:
// a probe compares it before the key, and growing or a deletion's shift never hashes again. Tables made
// with one hash key give a key one hash, which a caller that looks it up in several computes once.
#pragma once

#include <sodium.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <type_traits>
#include <vector>

#include "protocol/netcode/server_address.h"

namespace volley::netcode {

// An address as a key: 16 address bytes (IPv4 in the first 4), the port, the IPv6 scope (two peers with
// one link-local address on two interfaces are two peers), the family.
struct AddressKey {
  uint8_t bytes[22] = {};
  uint8_t family = 0;
  bool operator==(const AddressKey& other) const {
    return family == other.family && std::memcmp(bytes, other.bytes, sizeof(bytes)) == 0;
  }
  static AddressKey Of(const ServerAddress& address) {
    AddressKey key;
    key.family = address.ip.family;
    std::memcpy(key.bytes, address.ip.bytes, address.ip.family == 4 ? 4 : 16);
    key.bytes[16] = static_cast<uint8_t>(address.port >> 8);
    key.bytes[17] = static_cast<uint8_t>(address.port);
    std::memcpy(key.bytes + 18, &address.ip.scopeId, 4);
    return key;
  }
};

static_assert(sizeof(AddressKey) == 23, "an AddressKey is hashed as its 23 bytes");

// The SipHash key of one or more tables: random, made at each start.
struct TableHashKey {
  uint8_t bytes[crypto_shorthash_KEYBYTES];
  static TableHashKey Random() {
    TableHashKey key;
    randombytes_buf(key.bytes, sizeof(key.bytes));
    return key;
  }
};

// Key: trivially copyable, compared with ==, hashed as its object bytes (so: no padding). The calls that
// take a hash take Hash(key) of this table (or of one made with the same hash key).
template <typename Key>
class FlatTable {
 public:
  static constexpr uint32_t kNone = UINT32_MAX;

  // Room for `capacity` entries without growing.
  explicit FlatTable(size_t capacity, const TableHashKey& hashKey = TableHashKey::Random()) : hashKey_(hashKey) {
    size_t slots = 16;
    while (slots < capacity * 2) slots *= 2;
    entries_.resize(slots);
    mask_ = slots - 1;
  }

  uint64_t Hash(const Key& key) const {
    uint8_t out[crypto_shorthash_BYTES];
    crypto_shorthash(out, reinterpret_cast<const uint8_t*>(&key), sizeof(Key), hashKey_.bytes);
    uint64_t hash;
    std::memcpy(&hash, out, sizeof(hash));
    return hash;
  }

  // Asks for the cache line where a lookup of this hash starts, ahead of the lookup: in a table of 10k+
  // entries that line is seldom in the cache, and the wait for it is most of the lookup's time.
  void Prefetch(uint64_t hash) const { __builtin_prefetch(&entries_[hash & mask_]); }

  uint32_t Find(const Key& key) const { return Find(key, Hash(key)); }
  uint32_t Find(const Key& key, uint64_t hash) const {
    const uint32_t tag = Tag(hash);
    for (size_t i = hash & mask_;; i = (i + 1) & mask_) {
      const Entry& entry = entries_[i];
      if (entry.value == kNone) return kNone;
      if (entry.hash == tag && entry.key == key) return entry.value;
    }
  }

  // False (and nothing changes) when the key is there already.
  bool Insert(const Key& key, uint32_t value) { return Insert(key, Hash(key), value); }
  bool Insert(const Key& key, uint64_t hash, uint32_t value) {
    Entry& entry = Place(key, hash);
    if (entry.value != kNone) return false;
    entry.key = key;
    entry.hash = Tag(hash);
    entry.value = value;
    ++size_;
    return true;
  }

  // Inserts the key, or gives it this value when it is there already.
  void Set(const Key& key, uint32_t value) { Set(key, Hash(key), value); }
  void Set(const Key& key, uint64_t hash, uint32_t value) {
    Entry& entry = Place(key, hash);
    if (entry.value == kNone) {
      entry.key = key;
      entry.hash = Tag(hash);
      ++size_;
    }
    entry.value = value;
  }

  bool Erase(const Key& key) { return Erase(key, Hash(key)); }
  bool Erase(const Key& key, uint64_t hash) {
    const uint32_t tag = Tag(hash);
    size_t i = hash & mask_;
    for (;; i = (i + 1) & mask_) {
      if (entries_[i].value == kNone) return false;
      if (entries_[i].hash == tag && entries_[i].key == key) break;
    }
    // Backward shift: move later entries of the probe run into the hole, so no tombstones are needed.
    for (size_t hole = i, next = (i + 1) & mask_;; next = (next + 1) & mask_) {
      Entry& candidate = entries_[next];
      if (candidate.value == kNone) {
        entries_[hole].value = kNone;
        break;
      }
      const size_t home = candidate.hash & mask_;
      // The candidate may fill the hole when its home is not within (hole, next], cyclically.
      const bool stays = hole <= next ? (home > hole && home <= next) : (home > hole || home <= next);
      if (!stays) {
        entries_[hole] = candidate;
        hole = next;
      }
    }
    --size_;
    return true;
  }

  size_t size() const { return size_; }

 private:
  static_assert(std::has_unique_object_representations_v<Key>, "the hash reads the key's bytes");
  struct Entry {
    Key key;
    uint32_t hash = 0;      // the low 32 bits of the key's: its home (tables stay under 2^32 entries), and a quick compare
    uint32_t value = kNone;  // kNone: an empty slot
  };
  static uint32_t Tag(uint64_t hash) { return static_cast<uint32_t>(hash); }

  // The entry that holds the key, or the empty one where it would go (growing first when needed).
  Entry& Place(const Key& key, uint64_t hash) {
    if ((size_ + 1) * 2 > entries_.size()) Grow();
    const uint32_t tag = Tag(hash);
    for (size_t i = hash & mask_;; i = (i + 1) & mask_) {
      Entry& entry = entries_[i];
      if (entry.value == kNone || (entry.hash == tag && entry.key == key)) return entry;
    }
  }

  void Grow() {
    std::vector<Entry> old;
    old.swap(entries_);
    entries_.resize(old.size() * 2);
    mask_ = entries_.size() - 1;
    for (const Entry& entry : old) {
      if (entry.value == kNone) continue;
      size_t i = entry.hash & mask_;
      while (entries_[i].value != kNone) i = (i + 1) & mask_;
      entries_[i] = entry;
    }
  }

  std::vector<Entry> entries_;
  size_t mask_ = 0;
  size_t size_ = 0;
  TableHashKey hashKey_;
};

using AddressTable = FlatTable<AddressKey>;

}  // namespace volley::netcode
