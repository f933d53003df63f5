#!/usr/bin/env bash
# Leak check of the native engine: builds the addon with AddressSanitizer/LeakSanitizer (and a plain -g
# build for valgrind) in copies of the package outside the repo, then runs scripts/leak-cycles.mjs (open/
# bind/send/receive/close cycles on shared and dedicated engines, close while traffic flows, close and
# engine shutdown inside callbacks, starvation, worker threads, sockets still open at exit) through the real
# JavaScript layer under each tool. With --tsan, ThreadSanitizer runs the cycles too (CI runs it as a step
# of its own): the slabs both threads share are annotated as handed over through JavaScript's Atomics, and
# Node's own races are suppressed, so that a report naming our code is a finding.
#
#   scripts/leak-check.sh [--cycles N] [--valgrind-cycles N] [--no-valgrind] [--no-asan] [--tsan]
#
# Exit status: 0 clean; 1 a finding in our code (a leak with frames in volley.node, an ASan/valgrind memory
# error in volley.node, a crash or hang of the driver, or stopped engines that are never freed); 2 the check
# itself could not run (build failed, tool missing). Logs stay in $VOLLEY_LEAK_DIR (default
# /tmp/volley-leak-check). Takes about 1.5 minutes on 2 cores, most of it valgrind (builds are cached).
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
WORK=${VOLLEY_LEAK_DIR:-/tmp/volley-leak-check}
CYCLES=100
VG_CYCLES=2
RUN_ASAN=1
RUN_VALGRIND=1
RUN_TSAN=0
while [ $# -gt 0 ]; do
  case "$1" in
    --cycles) CYCLES=$2; shift 2 ;;
    --valgrind-cycles) VG_CYCLES=$2; shift 2 ;;
    --no-valgrind) RUN_VALGRIND=0; shift ;;
    --no-asan) RUN_ASAN=0; shift ;;
    --tsan) RUN_TSAN=1; shift ;;
    -h|--help) sed -n '2,13p' "$0"; exit 0 ;;
    *) echo "leak-check: unknown argument $1" >&2; exit 2 ;;
  esac
done

# Frames that are ours: the addon's file, its namespace, or its sources.
OURS='volley\.node|volley::|native/[a-z_/]+\.(cc|h)|(^|[^a-z_])(engine|binding|udp_socket|event_fd|address)\.(cc|h):[0-9]'
FINDINGS=0
finding() { echo "leak-check: FINDING: $*"; FINDINGS=$((FINDINGS + 1)); }
die() { echo "leak-check: $*" >&2; exit 2; }

mkdir -p "$WORK"
NODEDIR_ARG=()
if [ -n "${NODEDIR:-}" ]; then NODEDIR_ARG=(--nodedir="$NODEDIR"); elif [ -f /usr/include/node/node.h ]; then NODEDIR_ARG=(--nodedir=/usr); fi
[ -d "$ROOT/node_modules/node-gyp" ] || die "node_modules missing in $ROOT: run npm ci first"

# prepare NAME CXXFLAGS LDFLAGS: a copy of the package in $WORK/NAME whose build/Release holds this build.
prepare() {
  local dir="$WORK/$1" cxxflags=$2 ldflags=$3
  mkdir -p "$dir/scripts"
  rm -rf "$dir/native" "$dir/src"
  cp -r "$ROOT/native" "$ROOT/src" "$dir/"
  cp "$ROOT/binding.gyp" "$ROOT/CMakeLists.txt" "$ROOT/package.json" "$ROOT/tsconfig.json" "$dir/"
  cp "$ROOT/scripts/source-hash.mjs" "$ROOT/scripts/leak-cycles.mjs" "$dir/scripts/"
  ln -sfn "$ROOT/node_modules" "$dir/node_modules"
  local stamp
  stamp=$( (find "$dir/native" -type f | sort | xargs cat; cat "$dir/binding.gyp"; echo "$cxxflags|$ldflags|$(node -v)") | sha256sum | cut -c1-32)
  if [ -f "$dir/build/Release/volley.node" ] && [ "$(cat "$dir/.stamp" 2>/dev/null)" = "$stamp" ]; then
    echo "leak-check: $1 build is up to date"
    return 0
  fi
  echo "leak-check: building $1 ($cxxflags)"
  # --volley_glibc=0: the system's libstdc++ and glibc's own symbols, which the sanitizers' runtimes intercept
  # (binding.gyp otherwise links libstdc++ in and reaches some of glibc through native/napi/glibc_baseline.cc).
  # --volley_testing=1: the test bindings' addon too, whose delivery cores leak-cycles.mjs drives.
  if ! (cd "$dir" && CFLAGS="$cxxflags" CXXFLAGS="$cxxflags" LDFLAGS="$ldflags" \
        "$ROOT/node_modules/.bin/node-gyp" rebuild "${NODEDIR_ARG[@]}" --volley_glibc=0 --volley_testing=1 -j max) > "$dir/build.log" 2>&1; then
    tail -30 "$dir/build.log"
    die "build of $1 failed (log: $dir/build.log)"
  fi
  echo "$stamp" > "$dir/.stamp"
}

# Prints the records of a sanitizer/valgrind log that name our frames (awk: records end at a blank line).
# $1: log, $2: regex of a record's first line.
records() {
  sed -E 's/^==[0-9]+== ?//' "$1" | awk -v head="$2" -v ours="$OURS" '
    function flush() { if (rec != "" && rec ~ ours) { print short; n++ } rec = short = "" }
    $0 ~ head { flush(); rec = short = $0; lines = 1; inrec = 1; next }
    inrec && /^[[:space:]]*$/ { flush(); inrec = 0; next }
    inrec { rec = rec "\n" $0; if (++lines <= 10) short = short "\n" $0 }
    END { flush(); exit n > 0 ? 0 : 1 }'
}
count_records() { sed -E 's/^==[0-9]+== ?//' "$1" | grep -cE "$2"; }

# check_driver NAME LOG RC: the driver's own verdict (crash, hang, retained engines).
check_driver() {
  local name=$1 log=$2 rc=$3
  grep -E '^leak-cycles' "$log" | sed "s/^/  [$name] /"
  if grep -q 'FATAL ERROR' "$log"; then
    finding "$name: the process aborted: $(grep -m1 'FATAL ERROR' "$log")"
    grep -A14 -m1 'FATAL ERROR' "$log" | sed 's/^/    /'
  elif ! grep -q '^leak-cycles: done' "$log"; then
    finding "$name: the driver did not finish (exit status $rc; see $log)"
    grep -q 'ERROR: AddressSanitizer' "$log" || tail -8 "$log" | sed 's/^/    /'
  fi
  grep -q 'leak-cycles: RETAINED ENGINES' "$log" &&
    finding "$name: stopped engines are never freed: $(grep -m1 'after all sockets closed' "$log" | sed 's/^leak-cycles: //')"
  return 0
}

LSAN_SUPP="$WORK/lsan.supp"
# Allocations inside V8's heap bookkeeping that are only referenced from V8's mmap'd pages (LSan does not
# scan those); they show up when the process ends by process.exit(), which tears nothing down.
cat > "$LSAN_SUPP" <<'EOF'
leak:v8::internal::MemoryChunk::MemoryChunk
leak:v8::internal::MemoryChunk::AllocateSlotSet
leak:v8::internal::Page::AllocateFreeListCategories
leak:v8::internal::Heap_CombinedGenerationalAndSharedBarrierSlow
leak:v8::internal::Heap::InsertIntoRememberedSetFromCode
leak:v8::internal::Sweeper::RawSweep
EOF
VG_SUPP="$WORK/valgrind.supp"
# V8's conservative stack scan reads uninitialised stack slots by design.
cat > "$VG_SUPP" <<'EOF'
{
   v8-conservative-stack-scan
   Memcheck:Cond
   fun:*IteratePointersInStack*
}
{
   v8-conservative-stack-scan-value
   Memcheck:Value8
   fun:*IteratePointersInStack*
}
EOF

# --- AddressSanitizer + LeakSanitizer --------------------------------------------------------------
run_asan() {
  local name=$1; shift
  local dir="$WORK/asan" log="$WORK/$name.log" rc t0=$SECONDS
  echo "leak-check: $name: node --import tsx scripts/leak-cycles.mjs $*"
  (cd "$dir" && LD_PRELOAD="$ASAN_LIB" \
    ASAN_OPTIONS="detect_leaks=1:halt_on_error=1:detect_odr_violation=0:allocator_may_return_null=1" \
    LSAN_OPTIONS="suppressions=$LSAN_SUPP:print_suppressions=0" \
    timeout -k 10 300 node --expose-gc --import tsx scripts/leak-cycles.mjs "$@"; exit $?) > "$log" 2>&1
  rc=$?
  check_driver "$name" "$log" "$rc"
  if grep -q 'ERROR: AddressSanitizer' "$log"; then
    finding "$name: $(grep -m1 '^SUMMARY: AddressSanitizer' "$log" || grep -m1 'ERROR: AddressSanitizer' "$log")"
    sed -n '/ERROR: AddressSanitizer/,/^SUMMARY/p' "$log" |
      grep -E '^(READ|WRITE)|^(freed by|previously allocated by|Thread T[0-9]+ created by)|native/[a-z_/]+\.(cc|h):' | head -24 | sed 's/^/    /'
  fi
  local all ours
  all=$(count_records "$log" '^(Direct|Indirect) leak of')
  if ours=$(records "$log" '^(Direct|Indirect) leak of'); then
    finding "$name: LeakSanitizer: leaks allocated by our code:"
    echo "$ours" | head -60 | sed 's/^/    /'
  fi
  echo "leak-check: $name: done in $((SECONDS - t0)) s (exit $rc; $all leak records in the log, Node/V8-internal ones ignored; log: $log)"
}

if [ "$RUN_ASAN" = 1 ]; then
  ASAN_LIB=$(gcc -print-file-name=libasan.so)
  [ -e "$ASAN_LIB" ] || die "libasan not found (apt-get install g++)"
  prepare asan "-fsanitize=address -fno-omit-frame-pointer -g -O1" "-fsanitize=address"
  run_asan asan-natural-exit --cycles "$CYCLES" --exit natural
  run_asan asan-process-exit --cycles $(( (CYCLES + 5) / 6 )) --exit process-exit --no-workers
fi

# --- valgrind ---------------------------------------------------------------------------------------
if [ "$RUN_VALGRIND" = 1 ]; then
  if ! command -v valgrind > /dev/null; then
    echo "leak-check: valgrind not installed: skipped (apt-get install valgrind)"
  else
    prepare plain "-g" ""
    log="$WORK/valgrind.log"; out="$WORK/valgrind-driver.log"; t0=$SECONDS
    echo "leak-check: valgrind: node --import tsx scripts/leak-cycles.mjs --cycles $VG_CYCLES"
    (cd "$WORK/plain" && timeout -k 10 420 valgrind --leak-check=full --show-leak-kinds=definite,indirect \
      --errors-for-leak-kinds=definite,indirect --num-callers=40 --suppressions="$VG_SUPP" --log-file="$log" \
      node --expose-gc --import tsx scripts/leak-cycles.mjs --cycles "$VG_CYCLES" --exit natural; exit $?) > "$out" 2>&1
    rc=$?
    check_driver valgrind "$out" "$rc"
    if grep -q 'Process terminating' "$log"; then
      echo "  [valgrind] $(sed -E 's/^==[0-9]+== ?//' "$log" | grep -m1 -A1 'Process terminating' | tr '\n' ' ')"
    fi
    if errs=$(records "$log" '^(Invalid (read|write|free)|Mismatched free|Conditional jump|Use of uninitialised|Syscall param|Source and destination overlap)'); then
      finding "valgrind: memory errors in our code:"
      echo "$errs" | head -60 | sed 's/^/    /'
    fi
    if leaks=$(records "$log" 'are (definitely|indirectly) lost'); then
      finding "valgrind: definitely/indirectly lost blocks allocated by our code:"
      echo "$leaks" | head -60 | sed 's/^/    /'
    fi
    echo "leak-check: valgrind: done in $((SECONDS - t0)) s (exit $rc); $(sed -E 's/^==[0-9]+== ?//' "$log" | grep -E 'definitely lost:|indirectly lost:' | tr -s ' ' | tr '\n' ';') log: $log"
  fi
fi

# --- ThreadSanitizer (optional) ---------------------------------------------------------------------
if [ "$RUN_TSAN" = 1 ]; then
  TSAN_LIB=$(gcc -print-file-name=libtsan.so)
  prepare tsan "-fsanitize=thread -g -O1" "-fsanitize=thread"
  TSAN_SUPP="$WORK/tsan.supp"
  # Races inside Node itself, between threads of its own, reported with our frames in a stack only because
  # our callback ran the JavaScript that set them off. Node is not instrumented, so TSan does not see how
  # it orders them: V8 destroying a finished job's state while the worker thread that ran it unwinds, V8's
  # futex wait list (Atomics.wait) set up once, and a worker's message port handing strings over and
  # destroying its lock at teardown.
  cat > "$TSAN_SUPP" <<'SUPP'
race:v8::platform::DefaultJobState::~DefaultJobState
race:v8::internal::FutexWaitListNode::NotifyWake
race:v8::platform::DefaultJobWorker::~DefaultJobWorker
race:node::worker::MessagePort::PostMessage
race:uv_rwlock_destroy
SUPP
  log="$WORK/tsan.log"; t0=$SECONDS
  echo "leak-check: tsan: node --import tsx scripts/leak-cycles.mjs --cycles 6"
  (cd "$WORK/tsan" && LD_PRELOAD="$TSAN_LIB" TSAN_OPTIONS="halt_on_error=0 report_signal_unsafe=0 suppressions=$TSAN_SUPP" \
    timeout -k 10 420 node --expose-gc --import tsx scripts/leak-cycles.mjs --cycles 6 --exit natural; exit $?) > "$log" 2>&1
  rc=$?
  check_driver tsan "$log" "$rc"
  # Only reports that name our frames count. The slabs both threads use are annotated as handed over out of
  # TSan's sight (JavaScript's Atomics; native/engine/shared_memory.h), and Node's own races are suppressed above.
  if races=$(awk -v ours="$OURS" 'BEGIN { RS = "==================" } /WARNING: ThreadSanitizer/ && $0 ~ ours { print; n++ } END { exit n > 0 ? 0 : 1 }' "$log"); then
    finding "tsan: reports naming our code:"
    # TSan leaves the addon's frames unnamed here ("<null> <null> (volley.node+0x...)"): addr2line names them.
    echo "$races" | head -80 | while IFS= read -r line; do
      if [[ $line =~ volley\.node\+(0x[0-9a-f]+) ]]; then
        line="$line  <- $(addr2line -f -C -e "$WORK/tsan/build/Release/volley.node" "${BASH_REMATCH[1]}" | tr '\n' ' ')"
      fi
      echo "    $line"
    done
  fi
  echo "leak-check: tsan: done in $((SECONDS - t0)) s (exit $rc; log: $log)"
fi

if [ "$FINDINGS" -gt 0 ]; then
  echo "leak-check: FAILED: $FINDINGS finding(s) in our code"
  exit 1
fi
echo "leak-check: clean"
