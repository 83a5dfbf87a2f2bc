'use strict';
// node echo_client.js URL CLIENTS WARMUP MEASURED: connect, warm up, print "warm", wait for a
// stdin line, run MEASURED echoes per client, print "done", wait for a stdin line, close. 120 s cap.
const WebSocket = require(process.env.WS_MODULE);
const readline = require('readline');
const [url, nc, nw, nm] = [process.argv[2], +process.argv[3], +process.argv[4], +process.argv[5]];
setTimeout(() => { console.log('timeout'); process.exit(1); }, 600000);
const rl = readline.createInterface({ input: process.stdin });
const lines = []; let waiter = null;
rl.on('line', () => { if (waiter) { const w = waiter; waiter = null; w(); } else lines.push(1); });
const nextLine = () => new Promise((r) => { if (lines.length) { lines.shift(); r(); } else waiter = r; });
function phase(socks, n) {
  return Promise.all(socks.map((ws, i) => new Promise((resolve) => {
    let seq = 0;
    const onMsg = () => { if (++seq >= n) { ws.off('message', onMsg); resolve(); } else ws.send(`${i}:${seq}`); };
    ws.on('message', onMsg);
    ws.send(`${i}:${seq}`);
  })));
}
(async () => {
  const socks = await Promise.all(Array.from({ length: nc }, () => new Promise((res, rej) => {
    const ws = new WebSocket(url, { perMessageDeflate: false });
    ws.on('open', () => res(ws)); ws.on('error', rej);
  })));
  await phase(socks, nw); console.log('warm');
  await nextLine();
  await phase(socks, nm); console.log('done');
  await nextLine();
  socks.forEach((ws) => ws.close());
  setTimeout(() => process.exit(0), 300);
})().catch((e) => { console.log('error ' + e.message); process.exit(1); });
