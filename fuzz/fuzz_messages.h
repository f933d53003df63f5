// The messages the fuzz targets send through the delivery layer, and the checks on what arrives of them.
#pragma once

#include <cstdint>
#include <cstring>
#include <vector>

#include "protocol/delivery/delivery.h"
#include "fuzz_input.h"

namespace volley::fuzz {

// A message's bytes: its channel, its index among that channel's messages, then a pattern of both.
inline void FillMessage(uint8_t channel, uint32_t index, std::vector<uint8_t>* out) {
  for (size_t i = 0; i < out->size(); ++i) (*out)[i] = static_cast<uint8_t>(index * 7 + i + channel);
  (*out)[0] = channel;
  for (int i = 0; i < 4; ++i) (*out)[1 + i] = static_cast<uint8_t>(index >> (8 * i));
}

// What one side delivers of the messages its peer sent (FillMessage's, counted in `sent`).
class DeliveredMessages {
 public:
  explicit DeliveredMessages(const delivery::DeliveryConfig* config)
      : config_(config), sent(config->channels.size(), 0), lastIndex_(config->channels.size(), -1), seen_(config->channels.size()) {}

  // Checked always: the channel exists and the size is within the maximum. While `unchecked` is false
  // (nothing forged reached this side, and the connection is the first): the message is one the peer
  // sent, intact; reliable channels deliver in order, sequenced ones never go backwards, none twice.
  void Check(uint8_t channel, const uint8_t* data, size_t size) {
    if (channel >= config_->channels.size()) Fail("a message on a channel that does not exist");
    if (size > config_->maxMessageBytes) Fail("a delivered message is larger than the maximum");
    if (unchecked) return;
    if (size < 5 || data[0] != channel) Fail("a message the peer never sent");
    uint32_t index = 0;
    for (int i = 0; i < 4; ++i) index |= uint32_t{data[1 + i]} << (8 * i);
    if (index >= sent[channel]) Fail("a message index the peer never used");
    std::vector<uint8_t> expected(size);
    FillMessage(channel, index, &expected);
    if (std::memcmp(expected.data(), data, size) != 0) Fail("a message's bytes changed");
    const delivery::ChannelMode mode = config_->channels[channel];
    if (mode == delivery::ChannelMode::kReliable && index != lastIndex_[channel] + 1) Fail("reliable: out of order or lost");
    if (mode == delivery::ChannelMode::kSequenced && static_cast<int64_t>(index) <= lastIndex_[channel]) Fail("sequenced: went backwards");
    if (seen_[channel].size() <= index) seen_[channel].resize(index + 1);
    if (seen_[channel][index]) Fail("a message delivered twice");
    seen_[channel][index] = true;
    lastIndex_[channel] = index;
  }

 private:
  const delivery::DeliveryConfig* config_;

 public:
  std::vector<uint32_t> sent;  // per channel: messages the peer queued
  bool unchecked = false;

 private:
  std::vector<int64_t> lastIndex_;  // per channel: the index of the last message delivered
  std::vector<std::vector<bool>> seen_;
};

}  // namespace volley::fuzz
