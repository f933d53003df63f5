#!/usr/bin/env bash
# Builds prebuilds/wasm/volley-protocols.cjs: the protocol cores of native/ (netcode, delivery, and the engine's
# socket protocols that join them) as WebAssembly, with libsodium inside, for the fallback engine. Needs Debian's
# emscripten and dpkg-dev (apt-get install emscripten dpkg-dev); libsodium's source is Debian's, the version of
# the libsodium-dev the addon links, fetched with apt-get source into build/wasm (the system's apt sources are
# not changed). The module is one file (the wasm inlined), committed like the prebuild; its source hash is
# checked by scripts/check-prebuild.mjs. With --no-install it is left in build/wasm/ (CI: the build is checked,
# the committed module is what the tests run). --testing builds build/wasm/volley-protocols-testing.cjs instead,
# never shipped: the same module with a deterministic random source to switch to (native/testing/wasm_exports.cc),
# for the differential test against the test bindings' addon (test/engine/protocols-twins.toolchain.test.ts).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
OUT=$ROOT/build/wasm
N=$ROOT/native
export NODE_PATH=${NODE_PATH:-/usr/share/nodejs}  # Debian's emscripten runs its tools on Node with them there
mkdir -p "$OUT/obj" "$OUT/sodium-obj"
jobs=$(nproc)

# libsodium's source, once.
version=$(dpkg-query -W -f='${Version}' libsodium-dev)
sodium_src=$(ls -d "$OUT"/libsodium-src/libsodium-*/ 2>/dev/null | head -1 || true)
if [ -z "$sodium_src" ] || [ "$(cat "$OUT/libsodium-src/version" 2>/dev/null)" != "$version" ]; then
  rm -rf "$OUT/libsodium-src" "$OUT/apt" "$OUT/sodium-obj" "$OUT/libsodium.a"
  mkdir -p "$OUT/apt/lists/partial" "$OUT/apt/parts" "$OUT/libsodium-src" "$OUT/sodium-obj"
  cat > "$OUT/apt/parts/debian-src.sources" <<SOURCES
Types: deb-src
URIs: http://deb.debian.org/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SOURCES
  apt=(apt-get -q -o Dir::Etc::SourceList=/dev/null -o "Dir::Etc::SourceParts=$OUT/apt/parts" -o "Dir::State::Lists=$OUT/apt/lists")
  "${apt[@]}" update >/dev/null
  (cd "$OUT/libsodium-src" && "${apt[@]}" source "libsodium=$version" >/dev/null 2>&1)
  echo "$version" > "$OUT/libsodium-src/version"
  sodium_src=$(ls -d "$OUT"/libsodium-src/libsodium-*/ | head -1)
fi

# libsodium as a static wasm archive: every .c with the defines its configure would set here.
if [ ! -f "$OUT/libsodium.a" ]; then
  S=${sodium_src%/}/src/libsodium
  mkdir -p "$OUT/sodium-include/sodium"
  upstream=${version%%-*}
  sed -e "s/@VERSION@/$upstream/" -e 's/@SODIUM_LIBRARY_VERSION_MAJOR@/10/' -e 's/@SODIUM_LIBRARY_VERSION_MINOR@/3/' \
      -e 's/@SODIUM_LIBRARY_MINIMAL_DEF@//' "$S/include/sodium/version.h.in" > "$OUT/sodium-include/sodium/version.h"
  cp "$S/include/sodium.h" "$OUT/sodium-include/"
  cp "$S"/include/sodium/*.h "$OUT/sodium-include/sodium/"
  export SODIUM_FLAGS="-O3 -DCONFIGURED=1 -DNATIVE_LITTLE_ENDIAN=1 -DHAVE_WEAK_SYMBOLS=1 -D_GNU_SOURCE=1 -I$OUT/sodium-include/sodium -I$S/include/sodium -I$S/include/sodium/private"
  export S OUT
  find "$S" -name '*.c' | xargs -P "$jobs" -I{} sh -c 'f={}; o=$OUT/sodium-obj/$(echo "${f#$S/}" | tr / _ | sed "s/\.c$/.o/"); emcc $SODIUM_FLAGS -c "$f" -o "$o"'
  emar rcs "$OUT/libsodium.a" "$OUT"/sodium-obj/*.o
fi

# The cores and the exports, -Wall -Wextra clean, and with no 64-bit value cut to 32 bits unsaid (size_t is 32
# bits here).
hash=$(node "$ROOT/scripts/source-hash.mjs" --wasm)
sources=(
  "$N"/protocol/netcode/*.cc "$N"/protocol/delivery/*.cc "$N"/util/address.cc
  "$N"/sockets/netcode_sockets.cc "$N"/sockets/socket_protocol.cc "$N"/sockets/network_simulator.cc "$N"/sockets/protocol_request.cc
  "$N"/wasm/protocols.cc
)
name=volley-protocols
obj=$OUT/obj
if [ "${1:-}" = "--testing" ]; then
  sources+=("$N"/testing/deterministic_random.cc "$N"/testing/wasm_exports.cc)
  name=volley-protocols-testing
  obj=$OUT/obj-testing
fi
mkdir -p "$obj"
rm -f "$obj"/*.o
log=$OUT/compile.log
: > "$log"
printf '%s\n' "${sources[@]}" | xargs -P "$jobs" -I{} sh -c \
  'f={}; em++ -std=c++17 -O3 -Wall -Wextra -Wshorten-64-to-32 -ffp-contract=off -fno-exceptions -I'"$N"' -I'"$OUT"'/sodium-include -DVOLLEY_SOURCE_HASH=\"'"$hash"'\" -c "$f" -o '"$obj"'/$(echo "${f#'"$N"'/}" | tr / _ | sed "s/\.cc$/.o/") 2>>'"$log" || { cat "$log"; exit 1; }
if grep -E "warning|error" "$log"; then echo "the WebAssembly build is not -Wall -Wextra clean"; exit 1; fi

# One module shared by every fallback socket of a process: 512 MiB of memory, fixed, so that the views
# JavaScript keeps on it (the peers' counters) stay valid; pages are committed only as they are used.
em++ -O3 "$obj"/*.o "$OUT/libsodium.a" -o "$OUT/$name.cjs" \
  -sMODULARIZE=1 -sEXPORT_NAME=createVolleyProtocols -sENVIRONMENT=node -sSINGLE_FILE=1 -sWASM_ASYNC_COMPILATION=0 \
  -sINITIAL_MEMORY=536870912 -sALLOW_MEMORY_GROWTH=0 -sABORTING_MALLOC=0 -sNODEJS_CATCH_EXIT=0 -sNODEJS_CATCH_REJECTION=0 -sTOTAL_STACK=1048576 -sFILESYSTEM=0 \
  -sEXPORTED_FUNCTIONS=_malloc,_free -sEXPORTED_RUNTIME_METHODS=HEAPU8 2>>"$log"
if grep -E "warning|error" "$log"; then cat "$log"; exit 1; fi
if [ "${1:-}" = "--no-install" ] || [ "${1:-}" = "--testing" ]; then
  ls -l "$OUT/$name.cjs"
  exit 0
fi
mkdir -p "$ROOT/prebuilds/wasm"
cp "$OUT/volley-protocols.cjs" "$ROOT/prebuilds/wasm/volley-protocols.cjs"
ls -l "$ROOT/prebuilds/wasm/volley-protocols.cjs"
