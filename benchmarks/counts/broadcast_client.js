'use strict';
// node broadcast_client.js URL CLIENTS WARMUP MEASURED: CLIENTS sockets join the bench app's
// /broadcast/ group (50 handshakes at a time); socket 0 sends one frame, and the next only once
// every socket has received the last, so each broadcast is CLIENTS deliveries. Phases as in
// echo_client.js (print "warm", wait for a stdin line, MEASURED broadcasts, print "done", wait
// for a stdin line, close). DEFLATE=1 offers permessage-deflate. Prints on stderr how long the
// measured broadcasts took from the send to the last member's copy, and the client's CPU per
// delivery. 600 s cap.
const WebSocket = require(process.env.WS_MODULE);
const readline = require('readline');
const { performance } = require('perf_hooks');
const [url, nc, nw, nm] = [process.argv[2], +process.argv[3], +process.argv[4], +process.argv[5]];
const options = { perMessageDeflate: process.env.DEFLATE === '1' };
setTimeout(() => { console.log('timeout'); process.exit(1); }, 600000);
const rl = readline.createInterface({ input: process.stdin });
const lines = []; let waiter = null;
rl.on('line', () => { if (waiter) { const w = waiter; waiter = null; w(); } else lines.push(1); });
const nextLine = () => new Promise((r) => { if (lines.length) { lines.shift(); r(); } else waiter = r; });
const open = () => new Promise((res, rej) => {
  const ws = new WebSocket(url, options);
  ws.on('open', () => res(ws)); ws.on('error', rej);
});
let seq = 0; let got = 0; let onAll = null; let sentAt = 0; const took = [];
const expected = (text) => text === `b:${seq}`;
function phase(socks, n) {
  return new Promise((resolve) => {
    let left = n;
    const next = () => {
      if (sentAt) took.push(performance.now() - sentAt);
      if (left-- === 0) { onAll = null; resolve(); return; }
      seq++; got = 0;
      sentAt = performance.now();
      socks[0].send(`b:${seq}`);
    };
    onAll = next;
    next();
  });
}
(async () => {
  const socks = [];
  for (let i = 0; i < nc; i += 50) {
    socks.push(...await Promise.all(Array.from({ length: Math.min(50, nc - i) }, open)));
  }
  for (const ws of socks) {
    ws.on('message', (data) => {
      if (!expected(data.toString())) { console.log('error unexpected ' + data); process.exit(1); }
      if (++got === nc && onAll) onAll();
    });
  }
  await phase(socks, nw); console.log('warm');
  await nextLine();
  took.length = 0; sentAt = 0;
  const cpu = process.cpuUsage();
  await phase(socks, nm);
  const used = process.cpuUsage(cpu);
  took.sort((a, b) => a - b);
  const at = (p) => took[Math.min(took.length - 1, Math.ceil(p * took.length) - 1)].toFixed(1);
  const perMessage = ((used.user + used.system) / (nm * nc)).toFixed(2);
  console.error(`broadcast to the last member, ms: p50 ${at(0.5)} p99 ${at(0.99)} max ${at(1)};` +
    ` client CPU ${perMessage} us per delivery`);
  console.log('done');
  await nextLine();
  socks.forEach((ws) => ws.close());
  setTimeout(() => process.exit(0), 300);
})().catch((e) => { console.log('error ' + e.message); process.exit(1); });
