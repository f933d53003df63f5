#include "protocol/delivery/reassembly_budget.h"

#include <algorithm>

#include "protocol/delivery/delivery.h"

namespace volley::delivery {

bool ReassemblyBudget::Take(DeliveryCore& core, uint64_t bytes, uint64_t nowUs) {
  // A take is no progress of its own (a refused one must not keep the taker from being evicted): the fragment
  // stored after it is (Progress).
  while (used_ + bytes > limit_) {
    // The stalest other than the taker: if it is not idle, none is.
    DeliveryCore* stalest = head_ == &core ? core.budgetNext_ : head_;
    if (stalest == nullptr || !stalest->IdleForBudget(nowUs)) {
      ++refusals_;
      return false;
    }
    ++evictions_;
    if (stalest->EvictForBudget()) stalled_.push_back(stalest);  // gives back all it held (Give), which takes it off the list
    if (stalest->budgetListed_) Unlink(*stalest);  // (never: but the loop must end whatever it kept)
  }
  used_ += bytes;
  core.budgetHeld_ += bytes;
  if (!core.budgetListed_) Append(core);
  return true;
}

void ReassemblyBudget::Give(DeliveryCore& core, uint64_t bytes) {
  used_ -= bytes;
  core.budgetHeld_ -= bytes;
  if (core.budgetHeld_ == 0 && core.budgetListed_) Unlink(core);
}

void ReassemblyBudget::Progress(DeliveryCore& core, uint64_t nowUs) {
  core.lastFragmentUs_ = nowUs;
  if (!core.budgetListed_ || tail_ == &core) return;
  Unlink(core);
  Append(core);
}

DeliveryCore* ReassemblyBudget::PollStalled() {
  if (stalledNext_ < stalled_.size()) return stalled_[stalledNext_++];
  stalled_.clear();
  stalledNext_ = 0;
  return nullptr;
}

void ReassemblyBudget::Forget(DeliveryCore& core) {
  const auto polled = stalled_.begin() + static_cast<std::ptrdiff_t>(stalledNext_);
  stalled_.erase(std::remove(polled, stalled_.end(), &core), stalled_.end());
}

void ReassemblyBudget::Append(DeliveryCore& core) {
  core.budgetPrev_ = tail_;
  core.budgetNext_ = nullptr;
  (tail_ != nullptr ? tail_->budgetNext_ : head_) = &core;
  tail_ = &core;
  core.budgetListed_ = true;
}

void ReassemblyBudget::Unlink(DeliveryCore& core) {
  (core.budgetPrev_ != nullptr ? core.budgetPrev_->budgetNext_ : head_) = core.budgetNext_;
  (core.budgetNext_ != nullptr ? core.budgetNext_->budgetPrev_ : tail_) = core.budgetPrev_;
  core.budgetPrev_ = core.budgetNext_ = nullptr;
  core.budgetListed_ = false;
}

}  // namespace volley::delivery
