// One message's bytes while it is reassembled, its memory made as its fragments come: in blocks of
// kFragmentsPerBlock fragments, each made at the first fragment that falls in it and never zero-filled, so
// that what a peer makes the receiver hold grows with the fragments it sends, not with the length it
// announces (a frame of a few bytes may announce 1 GiB).
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <memory>
#include <new>
#include <utility>
#include <vector>

#include "protocol/delivery/wire_format.h"

namespace volley::delivery {

// 16 fragments: a block costs at most 16 times the fragment that makes it (17,600 bytes), and a 16 MiB
// message takes 954 of them.
constexpr uint64_t kFragmentsPerBlock = 16;
constexpr uint64_t kBlockBytes = kFragmentsPerBlock * kFragmentBytes;

class FragmentStore {
 public:
  FragmentStore() = default;
  // A store moved from holds nothing, as an empty one (slots move when their channel's queue grows).
  FragmentStore(FragmentStore&& other) noexcept { *this = std::move(other); }
  FragmentStore& operator=(FragmentStore&& other) noexcept {
    length_ = std::exchange(other.length_, 0);
    first_ = std::move(other.first_);
    other.first_ = Block{};
    rest_ = std::move(other.rest_);
    restCount_ = std::exchange(other.restCount_, 0);
    return *this;
  }

  // Ready for a message of `length` bytes (its table of blocks, 16 bytes a block, empty); false when the
  // table could not be made.
  bool Start(uint64_t length) {
    Clear();
    // The message is delivered as one buffer (Whole): a length size_t cannot hold (4 GiB or more on wasm32)
    // is refused, as memory refused is. Past this, every count and index here fits size_t.
    if (length > SIZE_MAX) return false;
    length_ = static_cast<size_t>(length);
    const size_t blocks = static_cast<size_t>(BlockCount(length));
    if (blocks > 1) {
      // Up to 1 GiB / kBlockBytes entries, on the I/O thread: a memory limit may refuse them. Refused without
      // an exception, so that the core also runs where exceptions are off (WebAssembly).
      rest_.reset(new (std::nothrow) Block[blocks - 1]);
      if (!rest_) return false;
      restCount_ = blocks - 1;
    }
    return true;
  }

  // Gives back every block and the table.
  void Clear() {
    first_ = Block{};
    rest_.reset();
    restCount_ = 0;
    length_ = 0;
  }

  bool Has(uint64_t fragment) const {
    return (At(fragment / kFragmentsPerBlock).seen >> (fragment % kFragmentsPerBlock) & 1u) != 0;
  }

  // Copies fragment `fragment` (its index and size checked by the caller) into its block, made if need be;
  // *made: the bytes of the block made for it (0: it had one). False when the block could not be made.
  bool Store(uint64_t fragment, const uint8_t* data, size_t size, uint64_t* made) {
    const uint64_t index = fragment / kFragmentsPerBlock;
    Block& block = At(index);
    *made = 0;
    if (!block.bytes) {
      const size_t bytes = BytesOf(index);
      block.bytes.reset(new (std::nothrow) uint8_t[bytes]);  // default-initialised: not zero-filled
      if (!block.bytes) return false;
      *made = bytes;
    }
    std::memcpy(block.bytes.get() + (fragment % kFragmentsPerBlock) * kFragmentBytes, data, size);
    block.seen |= 1u << (fragment % kFragmentsPerBlock);
    return true;
  }

  // The whole message (every fragment stored), taken: its one block into *block, or its blocks joined into
  // *joined. Returns its first byte. The store holds nothing of it after.
  const uint8_t* TakeWhole(std::vector<uint8_t>* joined, std::unique_ptr<uint8_t[]>* block) {
    if (restCount_ == 0) {
      *block = std::move(first_.bytes);
      first_ = Block{};
      return block->get();
    }
    joined->clear();
    joined->reserve(length_);
    for (size_t i = 0; i < 1 + restCount_; ++i) {
      const uint8_t* bytes = At(i).bytes.get();
      joined->insert(joined->end(), bytes, bytes + BytesOf(i));
    }
    Clear();
    return joined->data();
  }

  // Bytes held: the blocks made and the table (a walk over the table: for stats and tests).
  size_t held() const {
    size_t bytes = restCount_ * sizeof(Block);
    for (size_t i = 0; i < 1 + restCount_; ++i) {
      if (At(i).bytes) bytes += BytesOf(i);
    }
    return bytes;
  }

  static uint64_t BlockCount(uint64_t length) { return length == 0 ? 1 : (length + kBlockBytes - 1) / kBlockBytes; }

 private:
  struct Block {
    std::unique_ptr<uint8_t[]> bytes;
    uint32_t seen = 0;  // a bit per fragment stored
  };
  static_assert(kFragmentsPerBlock <= 32, "a block's fragments fit its bits");
  // index: at most restCount_, which size_t holds.
  Block& At(uint64_t index) { return index == 0 ? first_ : rest_[static_cast<size_t>(index - 1)]; }
  const Block& At(uint64_t index) const { return index == 0 ? first_ : rest_[static_cast<size_t>(index - 1)]; }
  size_t BytesOf(uint64_t index) const {  // the last is short
    return static_cast<size_t>(std::min<uint64_t>(kBlockBytes, length_ - index * kBlockBytes));
  }

  size_t length_ = 0;
  Block first_;  // in the slot: a message of one block (every whole one) makes no table
  std::unique_ptr<Block[]> rest_;  // the other blocks' table, restCount_ entries
  size_t restCount_ = 0;
};

}  // namespace volley::delivery
