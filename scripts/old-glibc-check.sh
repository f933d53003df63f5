#!/usr/bin/env bash
# The committed prebuild, installed as a user installs it (npm install of the packed package, no compiler),
# run on an older C library than this machine's: in a Debian 11 root (bullseye: glibc 2.31, as Ubuntu 20.04;
# the prebuild used to need 2.34) made with debootstrap, by Node's own binary. A Server, a Client and a
# datagram socket talk over loopback there. scripts/check-prebuild.mjs reads the symbol versions; this runs
# them. Needs root (chroot, a private mount namespace) and Debian's mirror.
#   bash scripts/old-glibc-check.sh            (VOLLEY_OLD_SUITE, VOLLEY_OLD_ROOT: another suite, or root folder)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
SUITE=${VOLLEY_OLD_SUITE:-bullseye}
DIR=${VOLLEY_OLD_ROOT:-/var/tmp/volley-$SUITE}
MIRROR=${VOLLEY_OLD_MIRROR:-http://deb.debian.org/debian}

if [ ! -x "$DIR/bin/sh" ]; then
  echo "old-glibc-check: making a $SUITE root in $DIR"
  rm -rf "$DIR"
  debootstrap --variant=minbase "$SUITE" "$DIR" "$MIRROR" >"$DIR.log" 2>&1 || { tail -20 "$DIR.log"; exit 1; }
fi

inside=$(mktemp -d "$DIR/tmp/volley-app.XXXXXX") # the app, seen from inside the root as ${inside#$DIR}
trap 'rm -rf "$inside"' EXIT
host=$(mktemp -d)
trap 'rm -rf "$inside" "$host"' EXIT

# The package installed on this machine as on a user's with no compiler (PATH: node, npm, sh), then moved in.
(cd "$ROOT" && npm pack --silent --pack-destination "$host" >/dev/null)
mkdir -p "$host/bin" "$inside/app"
for tool in node npm sh; do ln -s "$(command -v $tool)" "$host/bin/$tool"; done
echo '{"name":"app","private":true,"type":"module"}' >"$inside/app/package.json"
(cd "$inside/app" && env -i HOME="$host" PATH="$host/bin" npm_config_nodedir=/nonexistent \
  npm install --no-audit --no-fund "$host"/volley-*.tgz >/dev/null)
install -m 0755 "$(command -v node)" "$DIR/usr/local/bin/node"

cat >"$inside/app/check.mjs" <<'EOF'
import { Client, Server, createDatagramSocket, generateConnectToken, generateKey, nativeInfo } from 'volley'

const warnings = []
process.on('warning', (warning) => warnings.push(warning.code ?? warning.name))
const fail = (what) => {
  console.error(`old-glibc-check: ${what}`)
  process.exit(1)
}
const glibc = process.report.getReport().header.glibcVersionRuntime
const { path } = nativeInfo()
if (!path.includes('/prebuilds/')) fail(`the addon came from ${path}, not the prebuild`)

// A datagram socket: one datagram to itself.
const socket = createDatagramSocket()
const { port: socketPort } = await socket.bind(0, '127.0.0.1')
const datagram = new Promise((resolve) => socket.on('messages', (batch) => resolve(batch.length)))
socket.send('hi', socketPort, '127.0.0.1')
if ((await datagram) !== 1) fail('the datagram did not come back')
await socket.close()

// A server and a client: connect with a token, a message each way on a reliable channel, disconnect.
const privateKey = await generateKey()
const channels = [{ mode: 'reliable' }]
const server = new Server({ protocolId: 0x1234n, privateKey, address: '127.0.0.1:0', channels })
server.on('message', (peer, data) => peer.send(data))
const { port } = await server.listen()
const token = await generateConnectToken({ protocolId: 0x1234n, privateKey, clientId: 7n, serverAddresses: [`127.0.0.1:${port}`], expireSeconds: 30, timeoutSeconds: 5 })
const client = new Client({ channels })
const echoed = new Promise((resolve) => client.on('message', (data) => resolve(new TextDecoder().decode(data))))
await client.connect(token)
client.send(new TextEncoder().encode('hello from an older glibc'))
const echo = await Promise.race([echoed, new Promise((resolve) => setTimeout(() => resolve('(nothing in 5 s)'), 5000))])
if (echo !== 'hello from an older glibc') fail(`the echo was ${echo}`)
await client.close()
await server.close()
if (warnings.length > 0) fail(`warnings: ${warnings.join(', ')}`)
console.log(JSON.stringify({ glibc, addon: path.slice(path.indexOf('node_modules')), node: process.version, datagram: 'ok', echo }))
EOF

# A mount namespace of its own: /proc and /dev for Node inside, gone when it ends.
unshare --mount --propagation private sh -c '
  mount -t proc proc "$1/proc" && mount --bind /dev "$1/dev" &&
    exec env -i PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin HOME=/tmp chroot "$1" /usr/local/bin/node "$2/app/check.mjs"
' sh "$DIR" "${inside#"$DIR"}"
