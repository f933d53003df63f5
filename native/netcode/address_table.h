// The server's lookups by key (connected clients by address, for every datagram it receives; by client
// id; handshakes and recently released clients by address; tokens seen): an open-addressing table
// (linear probing, at most half full, deletion by backward shift) in one flat array, so a lookup touches
// one or two cache lines instead of a bucket list, and nothing is allocated per entry. The hash is SipHash under a key made at each start, so that keys cannot be chosen to collide.
#pragma once

#include <sodium.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <type_traits>
#include <vector>

#include "server_address.h"

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

// Key: trivially copyable, compared with ==, hashed as its object bytes (so: no padding).
template <typename Key>
class FlatTable {
 public:
  static constexpr uint32_t kNone = UINT32_MAX;

  // Room for `capacity` entries without growing.
  explicit FlatTable(size_t capacity) {
    size_t slots = 16;
    while (slots < capacity * 2) slots *= 2;
    entries_.resize(slots);
    mask_ = slots - 1;
    randombytes_buf(hashKey_, sizeof(hashKey_));
  }

  uint32_t Find(const Key& key) const {
    for (size_t i = Hash(key) & mask_;; i = (i + 1) & mask_) {
      const Entry& entry = entries_[i];
      if (entry.value == kNone) return kNone;
      if (entry.key == key) return entry.value;
    }
  }

  // False (and nothing changes) when the key is there already.
  bool Insert(const Key& key, uint32_t value) {
    Entry& entry = Place(key);
    if (entry.value != kNone) return false;
    entry.key = key;
    entry.value = value;
    ++size_;
    return true;
  }

  // Inserts the key, or gives it this value when it is there already.
  void Set(const Key& key, uint32_t value) {
    Entry& entry = Place(key);
    if (entry.value == kNone) {
      entry.key = key;
      ++size_;
    }
    entry.value = value;
  }

  bool Erase(const Key& key) {
    size_t i = Hash(key) & mask_;
    for (;; i = (i + 1) & mask_) {
      if (entries_[i].value == kNone) return false;
      if (entries_[i].key == key) break;
    }
    // Backward shift: move later entries of the probe run into the hole, so no tombstones are needed.
    for (size_t hole = i, next = (i + 1) & mask_;; next = (next + 1) & mask_) {
      Entry& candidate = entries_[next];
      if (candidate.value == kNone) {
        entries_[hole].value = kNone;
        break;
      }
      const size_t home = Hash(candidate.key) & mask_;
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
    uint32_t value = kNone;  // kNone: an empty slot
  };

  // The entry that holds the key, or the empty one where it would go (growing first when needed).
  Entry& Place(const Key& key) {
    if ((size_ + 1) * 2 > entries_.size()) Grow();
    for (size_t i = Hash(key) & mask_;; i = (i + 1) & mask_) {
      Entry& entry = entries_[i];
      if (entry.value == kNone || entry.key == key) return entry;
    }
  }

  size_t Hash(const Key& key) const {
    uint8_t out[crypto_shorthash_BYTES];
    crypto_shorthash(out, reinterpret_cast<const uint8_t*>(&key), sizeof(Key), hashKey_);
    uint64_t hash;
    std::memcpy(&hash, out, sizeof(hash));
    return static_cast<size_t>(hash);
  }

  void Grow() {
    std::vector<Entry> old;
    old.swap(entries_);
    entries_.resize(old.size() * 2);
    mask_ = entries_.size() - 1;
    size_ = 0;
    for (const Entry& entry : old) {
      if (entry.value != kNone) Insert(entry.key, entry.value);
    }
  }

  std::vector<Entry> entries_;
  size_t mask_ = 0;
  size_t size_ = 0;
  uint8_t hashKey_[crypto_shorthash_KEYBYTES];
};

using AddressTable = FlatTable<AddressKey>;

}  // namespace volley::netcode
