#!/usr/bin/env bash
# Fuzzing of the native protocol cores with libFuzzer, AddressSanitizer and UndefinedBehaviorSanitizer:
#   fuzz/delivery_fuzz.cc  the delivery layer between two peers on a link the input controls, with forged
#                          (raw, and well-formed frames at the edges), tampered and truncated packets;
#                          checks order, exactly-once and memory bounds
#   fuzz/netcode_fuzz.cc   the netcode server and clients, with forged, tampered and replayed packets and
#                          arbitrary private token contents; checks that nothing forged is ever answered
#   fuzz/stack_fuzz.cc     the engine's protocol glue (netcode and delivery together, as the engine drives
#                          them), with a hostile client's payloads; checks the records handed to JavaScript
#
#   scripts/fuzz.sh [--seconds N | --runs N] [--seed N] [target...]
#
# --seconds N: explore for N seconds per target (default 60), from the corpora kept in $VOLLEY_FUZZ_DIR
# (default /tmp/volley-fuzz), which later runs go on from; --runs N --seed S: exactly N inputs from seed S
# and an empty corpus (deterministic: what CI runs). Needs clang++ with libFuzzer (apt-get install clang
# libclang-rt-14-dev) and libsodium-dev.
# Exit status: 0 nothing found; 1 a finding (the input that shows it is printed: replay it with
# $VOLLEY_FUZZ_DIR/<target> <file>); 2 the fuzzers could not be built.
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
WORK=${VOLLEY_FUZZ_DIR:-/tmp/volley-fuzz}
SECONDS_PER_TARGET=60
RUNS=""
SEED=""
TARGETS=()
while [ $# -gt 0 ]; do
  case "$1" in
    --seconds|--runs|--seed)
      [ $# -ge 2 ] || { echo "fuzz: $1 needs a value" >&2; exit 2; }
      case "$1" in --seconds) SECONDS_PER_TARGET=$2 ;; --runs) RUNS=$2 ;; --seed) SEED=$2 ;; esac
      shift 2 ;;
    -h|--help) sed -n '2,15p' "$0"; exit 0 ;;
    -*) echo "fuzz: unknown option $1" >&2; exit 2 ;;
    *) TARGETS+=("$1"); shift ;;
  esac
done
[ ${#TARGETS[@]} -eq 0 ] && TARGETS=(delivery netcode stack)

CXX=${FUZZ_CXX:-clang++}
command -v "$CXX" >/dev/null || { echo "fuzz: $CXX not found (apt-get install clang)" >&2; exit 2; }
SODIUM=/usr/lib/$(gcc -print-multiarch 2>/dev/null || echo x86_64-linux-gnu)/libsodium.a
[ -f "$SODIUM" ] || { echo "fuzz: $SODIUM not found (apt-get install libsodium-dev)" >&2; exit 2; }

N="$ROOT/native"
sources() {
  case "$1" in
    delivery) echo "$ROOT/fuzz/delivery_fuzz.cc $N/protocol/delivery/delivery_receive.cc $N/protocol/delivery/delivery_send.cc $N/protocol/delivery/reassembly_budget.cc" ;;
    netcode) echo "$ROOT/fuzz/netcode_fuzz.cc $N/protocol/netcode/server.cc $N/protocol/netcode/client.cc $N/protocol/netcode/packet.cc" \
      "$N/protocol/netcode/connect_token.cc $N/protocol/netcode/challenge_token.cc $N/protocol/netcode/aead.cc $N/protocol/netcode/server_address.cc $N/util/address.cc" ;;
    stack) echo "$ROOT/fuzz/stack_fuzz.cc $N/sockets/netcode_sockets.cc $N/sockets/socket_protocol.cc $N/sockets/network_simulator.cc" \
      "$N/protocol/delivery/delivery_receive.cc $N/protocol/delivery/delivery_send.cc $N/protocol/delivery/reassembly_budget.cc $N/protocol/netcode/server.cc $N/protocol/netcode/client.cc" \
      "$N/protocol/netcode/packet.cc $N/protocol/netcode/connect_token.cc $N/protocol/netcode/challenge_token.cc $N/protocol/netcode/aead.cc $N/protocol/netcode/server_address.cc" \
      "$N/util/address.cc" ;;
    *) return 1 ;;
  esac
}

mkdir -p "$WORK"
FINDINGS=0
for target in "${TARGETS[@]}"; do
  files=$(sources "$target") || { echo "fuzz: unknown target $target (delivery, netcode, stack)" >&2; exit 2; }
  binary="$WORK/$target"
  # shellcheck disable=SC2086
  if ! "$CXX" -std=c++17 -Wall -Wextra -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
      -I"$N" $files "$SODIUM" -o "$binary"; then
    echo "fuzz: could not build $target" >&2
    exit 2
  fi
  corpus="$WORK/corpus-$target"
  [ -n "$RUNS" ] && corpus="$WORK/corpus-$target-runs" && rm -rf "$corpus"  # deterministic: from nothing
  mkdir -p "$corpus" "$WORK/findings"
  if [ -n "$RUNS" ]; then limits=(-runs="$RUNS" -seed="${SEED:-1}"); else limits=(-max_total_time="$SECONDS_PER_TARGET"); [ -n "$SEED" ] && limits+=(-seed="$SEED"); fi
  log="$WORK/$target.log"
  echo "fuzz: $target (${limits[*]}), corpus $corpus"
  ASAN_OPTIONS=detect_leaks=1 "$binary" "${limits[@]}" -max_len=4096 -artifact_prefix="$WORK/findings/$target-" "$corpus" >"$log" 2>&1
  status=$?
  echo "  $(grep -E "^#[0-9]+\s" "$log" | tail -1 | grep -oE "cov: [0-9]+ ft: [0-9]+ corp: [^ ]+") $(grep -E "^Done " "$log")"
  if [ $status -ne 0 ]; then
    FINDINGS=$((FINDINGS + 1))
    echo "fuzz: FINDING in $target:"
    grep -E "fuzz: FAILED|ERROR: |runtime error|SUMMARY" "$log" | head -5
    grep -E "Test unit written to" "$log"
  fi
done
[ $FINDINGS -eq 0 ] && echo "fuzz: nothing found" && exit 0
exit 1
