import { spawn } from 'node:child_process'
const total = String(256 * 2 ** 20)
const lines = (child: ReturnType<typeof spawn>, on: (m: any) => void) => child.stdout!.on('data', (d) => { for (const l of String(d).split('\n')) { try { on(JSON.parse(l)) } catch {} } })
for (let run = 0; run < Number(process.argv[2] ?? 5); run++) {
  const server = spawn('taskset', ['-c', '1', process.execPath, '--import', 'tsx', 'bench/delivery/volley-side.ts', '--role', 'server', '--scenario', 'bulk', '--total', total], { stdio: ['pipe', 'pipe', 'inherit'] })
  let serverResult: any
  const port: number = await new Promise((resolve) => lines(server, (m) => { if (m.type === 'ready') resolve(m.port); if (m.type === 'result') serverResult = m }))
  const client = spawn('taskset', ['-c', '0', process.execPath, '--import', 'tsx', 'bench/delivery/volley-side.ts', '--role', 'client', '--scenario', 'bulk', '--port', String(port), '--total', total], { stdio: ['pipe', 'pipe', 'inherit'] })
  let clientResult: any
  lines(client, (m) => { if (m.type === 'result') clientResult = m })
  await new Promise((r) => client.on('exit', r))
  await new Promise((r) => setTimeout(r, 200))
  const s = clientResult?.details?.stats
  console.log(`run ${run}: server ${serverResult?.seconds?.toFixed(2)} s; client ${clientResult?.seconds?.toFixed(2)} s; loss ${s?.lossPercent?.toFixed(2)} % resends ${s?.resends} cwnd ${s?.congestion?.windowBytes} path ${(s?.bandwidth?.pathBps / 1e6)?.toFixed(0)} Mbit/s rtt ${s?.rtt?.smoothedMs?.toFixed(2)}/${s?.rtt?.minMs?.toFixed(3)} ms`)
  server.stdin!.write('stop\n')
  await new Promise((r) => server.on('exit', r))
}
