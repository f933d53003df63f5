// The packet numbers a receiver has seen, as disjoint ranges newest first: what its ACK frames say,
// and whether a packet number is new. At most kKeptRanges are kept, so memory stays bounded: of a packet
// older than the oldest kept range nothing can be told (Remembers is false), and Add takes it as seen. What
// was forgotten stays so, though ranges merge and fewer than kKeptRanges are kept again.
#pragma once

#include <algorithm>
#include <cstdint>
#include <vector>

namespace volley::delivery {

class ReceivedPackets {
 public:
  struct Range {
    uint64_t low;
    uint64_t high;  // inclusive
  };
  static constexpr size_t kKeptRanges = 64;

  // Records `number`; false when it was seen already (or is too old to tell).
  bool Add(uint64_t number) {
    if (!Remembers(number)) return false;
    // Compared as low − 1, never number + 1: the peer may send the largest number, 2^64 − 1, and one
    // more wrapped to 0 (a range from 2^64 − 1 down to its packets 0..n: duplicates seen as new).
    size_t i = 0;
    while (i < ranges_.size() && ranges_[i].low > number && ranges_[i].low - 1 > number) ++i;  // wholly above number
    if (i < ranges_.size() && number >= ranges_[i].low && number <= ranges_[i].high) return false;
    if (i < ranges_.size() && ranges_[i].low > number && ranges_[i].low - 1 == number) {
      ranges_[i].low = number;
      // May now touch the range below.
      if (i + 1 < ranges_.size() && ranges_[i + 1].high + 1 == number) {
        ranges_[i].low = ranges_[i + 1].low;
        ranges_.erase(ranges_.begin() + static_cast<long>(i) + 1);
      }
    } else if (i < ranges_.size() && ranges_[i].high + 1 == number) {
      ranges_[i].high = number;
    } else {
      ranges_.insert(ranges_.begin() + static_cast<long>(i), Range{number, number});
      if (ranges_.size() > kKeptRanges) {
        forgottenBelow_ = std::max(forgottenBelow_, ranges_.back().high + 1);  // (never the largest number: 64 ranges above it)
        ranges_.pop_back();
      }
    }
    return true;
  }

  // False for a number older than every kept range once kKeptRanges are kept, or below a range forgotten
  // before: seen or not, forgotten. (Else a late packet that merged two ranges made a copy of a forgotten
  // one new again, and it delivered its unreliable messages twice.)
  bool Remembers(uint64_t number) const {
    return number >= forgottenBelow_ && (ranges_.size() < kKeptRanges || number >= ranges_.back().low);
  }

  // Whether a number is in a kept range (see Remembers for one older than them).
  bool Contains(uint64_t number) const {
    for (const Range& range : ranges_) {
      if (number > range.high) return false;
      if (number >= range.low) return true;
    }
    return false;
  }

  bool empty() const { return ranges_.empty(); }
  uint64_t largest() const { return ranges_.empty() ? 0 : ranges_.front().high; }
  const std::vector<Range>& ranges() const { return ranges_; }

 private:
  std::vector<Range> ranges_;  // disjoint, not adjacent, descending
  uint64_t forgottenBelow_ = 0;  // above every range dropped for kKeptRanges
};

}  // namespace volley::delivery
