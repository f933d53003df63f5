// npm run prebuild: rebuilds prebuilds/linux-x64 from native/ with prebuildify, then checks that the
// result loads and carries the hash of the current sources.
import { execFileSync } from 'node:child_process'
import { join } from 'node:path'
import { checkPrebuild } from './check-prebuild.mjs'
import { packageRoot } from './source-hash.mjs'

const bin = join(packageRoot, 'node_modules', '.bin', 'prebuildify')
execFileSync(bin, ['--napi', '--strip', '--tag-libc', '--target', `node@${process.versions.node}`], {
  cwd: packageRoot,
  stdio: 'inherit',
  // Node's headers come with Node here; without this node-gyp tries to download them.
  env: { ...process.env, npm_config_nodedir: process.env.npm_config_nodedir ?? '/usr' },
})
process.exitCode = checkPrebuild() ? 0 : 1
