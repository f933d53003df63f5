#include "testing/delivery_binding.h"

#include <array>
#include <cmath>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "napi/binding_args.h"
#include "protocol/delivery/delivery.h"

namespace volley {

namespace {

using delivery::ChannelMode;
using delivery::DeliveryConfig;
using delivery::DeliveryCore;
using delivery::kPacketSkipKeyBytes;
using delivery::SendResult;

Napi::Value Throw(Napi::Env env, const std::string& message) {
  ThrowInvalidArgument(env, message);
  return env.Undefined();
}

bool ReadTime(const Napi::Value& value, uint64_t* out) {
  if (!value.IsNumber()) return false;
  const double number = value.As<Napi::Number>().DoubleValue();
  if (!std::isfinite(number) || number < 0 || number > kMaxExactInteger) return false;
  *out = static_cast<uint64_t>(number);
  return true;
}

// Optional positive integer option `name` of `options` into *out.
bool ReadOption(Napi::Env env, const Napi::Object& options, const char* name, double max, uint64_t* out) {
  if (!options.Has(name) || options.Get(name).IsUndefined()) return true;
  return ReadInteger(env, options.Get(name), std::string("options.") + name, 1, max, out);
}

// Marks the objects ReassemblyBudgetWrap makes, so that a core can tell one from any other object.
constexpr napi_type_tag kBudgetTag = {0x766f6c6c65796275, 0x64676574000000a1};

// new ReassemblyBudget(limitBytes): a budget cores made with { budget } share; used(), limit(), evictions(),
// refusals().
class ReassemblyBudgetWrap : public Napi::ObjectWrap<ReassemblyBudgetWrap> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "ReassemblyBudget",
                       {InstanceMethod<&ReassemblyBudgetWrap::UsedJs>("used"), InstanceMethod<&ReassemblyBudgetWrap::LimitJs>("limit"),
                        InstanceMethod<&ReassemblyBudgetWrap::EvictionsJs>("evictions"),
                        InstanceMethod<&ReassemblyBudgetWrap::RefusalsJs>("refusals")});
  }
  explicit ReassemblyBudgetWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<ReassemblyBudgetWrap>(info) {
    uint64_t limit = 0;
    if (!ReadInteger(info.Env(), info[0], "limitBytes", 1, kMaxExactInteger, &limit)) return;
    budget = std::make_shared<delivery::ReassemblyBudget>(limit);
    napi_type_tag_object(info.Env(), info.This(), &kBudgetTag);
  }
  // Shared with every core made with it: the budget outlives them, whichever is collected first.
  std::shared_ptr<delivery::ReassemblyBudget> budget;

 private:
  Napi::Value UsedJs(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), static_cast<double>(budget->used())); }
  Napi::Value LimitJs(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), static_cast<double>(budget->limit())); }
  Napi::Value EvictionsJs(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), static_cast<double>(budget->evictions())); }
  Napi::Value RefusalsJs(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), static_cast<double>(budget->refusals())); }
};

class DeliveryCoreWrap : public Napi::ObjectWrap<DeliveryCoreWrap> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "DeliveryCore",
                       {InstanceMethod<&DeliveryCoreWrap::SendJs>("send"),
                        InstanceMethod<&DeliveryCoreWrap::ReceiveJs>("receive"),
                        InstanceMethod<&DeliveryCoreWrap::FlushJs>("flush"),
                        InstanceMethod<&DeliveryCoreWrap::UpdateJs>("update"),
                        InstanceMethod<&DeliveryCoreWrap::TakeJs>("take"),
                        InstanceMethod<&DeliveryCoreWrap::NextDeadlineJs>("nextDeadlineUs"),
                        InstanceMethod<&DeliveryCoreWrap::StatsJs>("stats"),
                        InstanceMethod<&DeliveryCoreWrap::PeerSettingsJs>("peerSettings"),
                        InstanceMethod<&DeliveryCoreWrap::MismatchJs>("mismatch"),
                        InstanceMethod<&DeliveryCoreWrap::StalledJs>("stalled"),
                        InstanceMethod<&DeliveryCoreWrap::AnnounceSettingsJs>("announceSettings")});
  }

  // new DeliveryCore({ channels: ('reliable' | 'unreliable' | 'sequenced')[], maxMessageBytes?, sendQueueBytes?,
  //                    reassemblyBytes?, reliableWindow?, fragmentTimeoutUs?, pingIntervalUs?, maxAckDelayUs?,
  //                    followsPings?, packetSkipKey?: Uint8Array of kPacketSkipKeyBytes (else no number is skipped),
  //                    reliableStallUs?, budget?: a ReassemblyBudget })
  explicit DeliveryCoreWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<DeliveryCoreWrap>(info) {
    Napi::Env env = info.Env();
    DeliveryConfig config;
    std::array<uint8_t, kPacketSkipKeyBytes> skipKey{};
    bool skipping = false;
    if (info.Length() > 0 && info[0].IsObject()) {
      const Napi::Object options = info[0].As<Napi::Object>();
      if (options.Has("channels")) {
        if (!options.Get("channels").IsArray()) {
          Throw(env, "options.channels must be an array of 'reliable', 'unreliable' or 'sequenced'");
          return;
        }
        const Napi::Array channels = options.Get("channels").As<Napi::Array>();
        const uint32_t count = channels.Length();  // read once: an element's getter may change it
        if (count < 1 || count > 255) {
          Throw(env, "options.channels must hold 1 to 255 channels");
          return;
        }
        config.channels.clear();
        for (uint32_t i = 0; i < count; ++i) {
          const std::string mode = channels.Get(i).IsString() ? channels.Get(i).As<Napi::String>().Utf8Value() : "";
          if (mode == "reliable") config.channels.push_back(ChannelMode::kReliable);
          else if (mode == "unreliable") config.channels.push_back(ChannelMode::kUnreliable);
          else if (mode == "sequenced") config.channels.push_back(ChannelMode::kSequenced);
          else {
            Throw(env, "options.channels[" + std::to_string(i) + "] must be 'reliable', 'unreliable' or 'sequenced'");
            return;
          }
        }
      }
      uint64_t window = config.reliableWindow;
      if (!ReadOption(env, options, "maxMessageBytes", 1u << 30, &config.maxMessageBytes) ||
          !ReadOption(env, options, "sendQueueBytes", 1u << 30, &config.sendQueueBytes) ||
          !ReadOption(env, options, "reassemblyBytes", 1u << 30, &config.reassemblyBytes) ||
          !ReadOption(env, options, "reliableWindow", 65536, &window) ||
          !ReadOption(env, options, "fragmentTimeoutUs", 3.6e9, &config.fragmentTimeoutUs) ||
          !ReadOption(env, options, "reliableStallUs", 3.6e9, &config.reliableStallUs) ||
          !ReadOption(env, options, "pingIntervalUs", 3.6e9, &config.pingIntervalUs) ||
          !ReadOption(env, options, "maxAckDelayUs", 1e6, &config.maxAckDelayUs)) {
        return;
      }
      config.reliableWindow = static_cast<uint32_t>(window);
      config.followsPings = options.Has("followsPings") && BoolOr(options.Get("followsPings"));
      const Napi::Value key = options.Get("packetSkipKey");
      if (!key.IsUndefined() && !key.IsNull()) {
        if (!key.IsTypedArray() || key.As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array ||
            key.As<Napi::Uint8Array>().ByteLength() != kPacketSkipKeyBytes) {
          Throw(env, "options.packetSkipKey must be a Uint8Array of " + std::to_string(kPacketSkipKeyBytes) + " bytes");
          return;
        }
        std::memcpy(skipKey.data(), key.As<Napi::Uint8Array>().Data(), kPacketSkipKeyBytes);
        skipping = true;
      }
      const Napi::Value budget = options.Get("budget");
      if (!budget.IsUndefined() && !budget.IsNull()) {
        bool tagged = false;
        if (budget.IsObject()) napi_check_object_type_tag(env, budget, &kBudgetTag, &tagged);
        if (!tagged) {
          Throw(env, "options.budget must be a ReassemblyBudget");
          return;
        }
        budget_ = ReassemblyBudgetWrap::Unwrap(budget.As<Napi::Object>())->budget;
      }
    }
    core_ = std::make_unique<DeliveryCore>(config, skipping ? skipKey.data() : nullptr, budget_.get());
  }

 private:
  Napi::Value SendJs(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    uint64_t now;
    if (!info[0].IsNumber() || !info[1].IsTypedArray() || !ReadTime(info[2], &now)) return Throw(env, "send(channel, data, nowUs)");
    const Napi::Uint8Array data = info[1].As<Napi::Uint8Array>();
    const double channel = info[0].As<Napi::Number>().DoubleValue();
    // Channels are 0 to 254: anything else (a fraction, NaN, 255 and above) names none.
    if (!(channel >= 0 && channel < 255) || channel != static_cast<double>(static_cast<uint8_t>(channel))) {
      return Napi::String::New(env, "no-channel");
    }
    switch (core_->Send(static_cast<uint8_t>(channel), data.Data(), data.ByteLength(), now)) {
      case SendResult::kQueued: return Napi::String::New(env, "queued");
      case SendResult::kQueueFull: return Napi::String::New(env, "queue-full");
      case SendResult::kTooLarge: return Napi::String::New(env, "too-large");
      default: return Napi::String::New(env, "no-channel");
    }
  }
  Napi::Value ReceiveJs(const Napi::CallbackInfo& info) {
    uint64_t now;
    if (!info[0].IsTypedArray() || !ReadTime(info[1], &now)) return Throw(info.Env(), "receive(packet, nowUs)");
    const Napi::Uint8Array data = info[0].As<Napi::Uint8Array>();
    core_->Receive(data.Data(), data.ByteLength(), now);
    // Taken at once, as the engine takes them: some point into the packet.
    while (delivery::DeliveredMessage* message = core_->PollMessage()) {
      messages_.push_back({message->channel, message->joined.empty() ? std::vector<uint8_t>(message->data, message->data + message->size)
                                                                     : std::move(message->joined)});
    }
    return info.Env().Undefined();
  }
  Napi::Value FlushJs(const Napi::CallbackInfo& info) {
    uint64_t now;
    if (!ReadTime(info[0], &now)) return Throw(info.Env(), "flush(nowUs)");
    TakePackets(now);
    return info.Env().Undefined();
  }
  Napi::Value UpdateJs(const Napi::CallbackInfo& info) {
    uint64_t now;
    if (!ReadTime(info[0], &now)) return Throw(info.Env(), "update(nowUs)");
    core_->Update(now);
    TakePackets(now);
    return info.Env().Undefined();
  }
  // take() -> { packets: Uint8Array[], messages: { channel, data }[] } produced since the last take()
  Napi::Value TakeJs(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Napi::Object out = Napi::Object::New(env);
    Napi::Array packets = Napi::Array::New(env, packets_.size());
    for (size_t i = 0; i < packets_.size(); ++i) {
      packets.Set(static_cast<uint32_t>(i), Napi::Buffer<uint8_t>::Copy(env, packets_[i].data(), packets_[i].size()));
    }
    Napi::Array messages = Napi::Array::New(env, messages_.size());
    for (size_t i = 0; i < messages_.size(); ++i) {
      Napi::Object message = Napi::Object::New(env);
      message.Set("channel", messages_[i].channel);
      message.Set("data", Napi::Buffer<uint8_t>::Copy(env, messages_[i].data.data(), messages_[i].data.size()));
      messages.Set(static_cast<uint32_t>(i), message);
    }
    packets_.clear();
    messages_.clear();
    out.Set("packets", packets);
    out.Set("messages", messages);
    return out;
  }
  Napi::Value NextDeadlineJs(const Napi::CallbackInfo& info) {
    uint64_t now;
    if (!ReadTime(info[0], &now)) return Throw(info.Env(), "nextDeadlineUs(nowUs)");
    return Napi::Number::New(info.Env(), static_cast<double>(core_->NextDeadlineUs(now)));
  }
  Napi::Value StatsJs(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    uint64_t now = 0;
    if (info.Length() > 0 && !ReadTime(info[0], &now)) return Throw(env, "stats(nowUs)");
    const delivery::DeliveryStats& s = core_->stats();
    Napi::Object out = Napi::Object::New(env);
    const std::pair<const char*, uint64_t> fields[] = {
        {"packetsIn", s.packetsIn}, {"packetsOut", s.packetsOut}, {"bytesIn", s.bytesIn}, {"bytesOut", s.bytesOut},
        {"messagesIn", s.messagesIn}, {"messagesOut", s.messagesOut}, {"messageBytesIn", s.messageBytesIn},
        {"messageBytesOut", s.messageBytesOut}, {"ackElicitingOut", s.ackElicitingOut}, {"packetsAcked", s.packetsAcked},
        {"packetsLost", s.packetsLost}, {"resends", s.resends}, {"probeTimeouts", s.probeTimeouts},
        {"persistentCongestion", s.persistentCongestion}, {"rttDrains", s.rttDrains}, {"spuriousLosses", s.spuriousLosses},
        {"malformed", s.malformed}, {"duplicatePackets", s.duplicatePackets}, {"duplicateMessages", s.duplicateMessages},
        {"staleSequenced", s.staleSequenced}, {"overBudget", s.overBudget}, {"expiredFragments", s.expiredFragments},
        {"unknownChannel", s.unknownChannel}, {"oversized", s.oversized}, {"mismatched", s.mismatched}, {"forgottenPackets", s.forgottenPackets}, {"reassemblyMade", s.reassemblyMade}, {"partialScans", s.partialScans}, {"queueGiveBacks", s.queueGiveBacks},
        {"smoothedRttUs", core_->rtt().smoothedUs()}, {"rttVariationUs", core_->rtt().variationUs()},
        {"minRttUs", core_->rtt().minUs()}, {"pathMinRttUs", core_->rtt().pathMinUs()}, {"maxRttUs", core_->rtt().maxUs()}, {"rttSamples", core_->rtt().samples()},
        {"congestionWindow", core_->congestionWindow()}, {"congestionState", static_cast<uint64_t>(core_->congestionState())}, {"congestionCuts", core_->congestionCuts()}, {"draining", core_->draining() ? 1u : 0u}, {"bytesInFlight", core_->bytesInFlight()},
        {"queuedBytes", core_->queuedBytes()}, {"queuedMessages", core_->queuedMessages()},
        {"reassemblyUsed", core_->reassemblyUsed()}, {"reassemblyHeld", core_->reassemblyHeld()}, {"clockSamples", core_->clock().samples()},
        {"sentRecords", core_->sentRecords()}, {"sentRecordsHeld", core_->sentRecordsHeld()}, {"queueSlots", core_->queueSlots()},
        {"receiveSlotBytes", DeliveryCore::receiveSlotBytes()}, {"heldMessageBytes", DeliveryCore::heldMessageBytes()},
        {"lostRecords", core_->lostRecords()}, {"spareBytes", core_->spareBytes()}, {"budgetHeld", core_->budgetHeld()}};
    for (const auto& field : fields) out.Set(field.first, Napi::Number::New(env, static_cast<double>(field.second)));
    out.Set("jitterUs", Napi::Number::New(env, core_->rtt().jitterUs()));
    out.Set("rttVarianceUs2", Napi::Number::New(env, core_->rtt().varianceUs2()));
    out.Set("bandwidthBytesPerSec", Napi::Number::New(env, core_->bandwidthBytesPerUs() * 1e6));
    out.Set("pacingRateBytesPerSec", Napi::Number::New(env, core_->pacingRateBytesPerUs() * 1e6));
    out.Set("clockOffsetUs", Napi::Number::New(env, core_->clock().OffsetUs(now)));
    out.Set("clockErrorBoundUs", Napi::Number::New(env, core_->clock().ErrorBoundUs(now)));
    out.Set("countsAgree", Napi::Boolean::New(env, core_->CountsAgree()));
    return out;
  }

  // peerSettings() -> { maxMessageBytes, channels: ('reliable' | 'unreliable' | 'sequenced')[] } | null
  Napi::Value PeerSettingsJs(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    const delivery::PeerSettings& peer = core_->peerSettings();
    if (!peer.known) return env.Null();
    Napi::Object out = Napi::Object::New(env);
    out.Set("maxMessageBytes", Napi::Number::New(env, static_cast<double>(peer.maxMessageBytes)));
    Napi::Array channels = Napi::Array::New(env, peer.channels.size());
    for (size_t i = 0; i < peer.channels.size(); ++i) {
      const ChannelMode mode = peer.channels[i];
      channels.Set(static_cast<uint32_t>(i), mode == ChannelMode::kReliable ? "reliable" : mode == ChannelMode::kUnreliable ? "unreliable" : "sequenced");
    }
    out.Set("channels", channels);
    return out;
  }
  // announceSettings(nowUs, copies)
  Napi::Value AnnounceSettingsJs(const Napi::CallbackInfo& info) {
    uint64_t now;
    if (!ReadTime(info[0], &now) || !info[1].IsNumber()) return Throw(info.Env(), "announceSettings(nowUs, copies)");
    core_->AnnounceSettings(std::min(16, std::max(0, info[1].As<Napi::Number>().Int32Value())));
    TakePackets(now);
    return info.Env().Undefined();
  }
  Napi::Value StalledJs(const Napi::CallbackInfo& info) { return Napi::Boolean::New(info.Env(), core_->stalled()); }
  // mismatch() -> 'none' | 'channel-modes' | 'no-delivery-layer'
  Napi::Value MismatchJs(const Napi::CallbackInfo& info) {
    switch (core_->mismatch()) {
      case delivery::Mismatch::kChannelModes: return Napi::String::New(info.Env(), "channel-modes");
      case delivery::Mismatch::kNoDeliveryLayer: return Napi::String::New(info.Env(), "no-delivery-layer");
      default: return Napi::String::New(info.Env(), "none");
    }
  }

  // The packets due now, kept for take().
  void TakePackets(uint64_t now) {
    delivery::SendDuePackets(*core_, now, [this](const uint8_t* data, size_t size) { packets_.emplace_back(data, data + size); });
  }

  struct Delivered {
    uint8_t channel;
    std::vector<uint8_t> data;
  };
  std::shared_ptr<delivery::ReassemblyBudget> budget_;  // declared before core_: the core goes first
  std::unique_ptr<DeliveryCore> core_;
  std::vector<std::vector<uint8_t>> packets_;
  std::vector<Delivered> messages_;
};

}  // namespace

Napi::Function DeliveryCoreBinding(Napi::Env env) { return DeliveryCoreWrap::Define(env); }

Napi::Function ReassemblyBudgetBinding(Napi::Env env) { return ReassemblyBudgetWrap::Define(env); }

}  // namespace volley
