// The delivery layer's packet format (version 2; version 1 had no SETTINGS frame), carried as the payload of one netcode payload packet
// (at most 1200 bytes). All integers are LEB128 varints unless a size is given, at most 2^53 − 1 (a larger
// one makes the packet malformed: JavaScript's exact integers, so that src/protocol/delivery/wire-format.ts reads
// every packet as this layer does).
//
//   packet   = u8 marker (0xD1) | varint packet number (per direction, from 0) | frame+
//   ACK      = u8 0x01 | varint largest | varint ack delay (µs) | varint first range (packets acked
//              below largest, contiguously) | varint range count | (varint gap | varint length)*
//              (QUIC's ACK frame: each gap counts the packets not acked, minus one, below the previous range)
//   PING     = u8 0x02 | varint ping id | varint sender's clock (µs)   (answered by a PONG, not an ACK)
//   PONG     = u8 0x03 | varint ping id | varint the ping's sender clock, echoed | varint responder's clock
//              when the ping arrived (µs) | varint responder's processing delay (µs)
//   PROBE    = u8 0x04   (asks for an ACK and nothing else: sent on a probe timeout with nothing to
//              resend, and beside each PING while reliable data awaits an ACK)
//   SETTINGS = u8 0x05 | u8 role (0: leads the pings, a client; 1: follows them, a server) | varint the
//              sender's largest message (1 to 2^30) | varint channel count (1 to 255) | u8 mode per channel
//              (1 reliable, 2 unreliable, 3 sequenced)   (in every packet, after any ACK and ahead of the
//              other frames, until a PONG shows the peer has them; the receiver keeps the first and
//              compares it with its own. Its own role coming back means a peer without channels echoes
//              this side's packets; a packet without SETTINGS before the receiver has them, a peer of
//              version 1)
//   MESSAGE  = u8 0x10 | u8 channel | varint message sequence (per channel, from 0) | varint length | data
//   FRAGMENT = u8 0x11 | u8 channel | varint message sequence | varint message length | varint fragment
//              index | data (kFragmentBytes, or what is left in the last fragment)
//
// A packet carries at most one ACK, PING, PONG and SETTINGS frame; a second of any makes it malformed.
// A packet with a PROBE, MESSAGE or FRAGMENT frame is ack-eliciting: the receiver acknowledges it. ACK,
// PING, PONG and SETTINGS frames ask for no ACK: a ping's answer is its pong, and a lost ping or pong costs one RTT
// and clock sample, nothing else. A frame of a type the receiver does not know makes the whole packet
// malformed: a new frame type is a new version of the format, which both sides must run.
#pragma once

#include <cstddef>
#include <cstdint>

namespace volley::delivery {

constexpr uint8_t kPacketMarker = 0xD1;
enum FrameType : uint8_t { kFrameAck = 0x01, kFramePing = 0x02, kFramePong = 0x03, kFrameProbe = 0x04,
                           kFrameSettings = 0x05, kFrameMessage = 0x10, kFrameFragment = 0x11 };

// The largest delivery packet: the netcode payload limit.
constexpr size_t kMaxPacketBytes = 1200;
// Messages up to this size travel whole; larger ones in fragments of exactly this size (the last one less).
constexpr size_t kFragmentBytes = 1100;
// What a SETTINGS frame may say (the options' own bounds).
constexpr uint64_t kMaxMessageBytesLimit = uint64_t{1} << 30;
constexpr size_t kMaxChannels = 255;
// Ranges in one ACK frame, newest first; older ones are left out (their packets were acked before).
constexpr size_t kMaxAckRanges = 32;

inline uint64_t FragmentCount(uint64_t messageBytes) { return (messageBytes + kFragmentBytes - 1) / kFragmentBytes; }

}  // namespace volley::delivery
