'use strict';
// node http_client.js URL CLIENTS WARMUP MEASURED: keep-alive GET loop per client, same phases as echo_client.js
const http = require('http');
const readline = require('readline');
const [url, nc, nw, nm] = [process.argv[2], +process.argv[3], +process.argv[4], +process.argv[5]];
setTimeout(() => { console.log('timeout'); process.exit(1); }, 600000);
const agent = new http.Agent({ keepAlive: true, maxSockets: nc });
const rl = readline.createInterface({ input: process.stdin });
const lines = []; let waiter = null;
rl.on('line', () => { if (waiter) { const w = waiter; waiter = null; w(); } else lines.push(1); });
const nextLine = () => new Promise((r) => { if (lines.length) { lines.shift(); r(); } else waiter = r; });
const get = () => new Promise((res, rej) => http.get(url, { agent }, (r) => { r.resume(); r.on('end', () => r.statusCode === 200 ? res() : rej(new Error('status ' + r.statusCode))); }).on('error', rej));
async function lane(n) { for (let i = 0; i < n; i++) await get(); }
const phase = (n) => Promise.all(Array.from({ length: nc }, () => lane(n)));
(async () => {
  await phase(nw); console.log('warm');
  await nextLine();
  await phase(nm); console.log('done');
  await nextLine();
  agent.destroy();
  setTimeout(() => process.exit(0), 100);
})().catch((e) => { console.log('error ' + e.message); process.exit(1); });
