'use strict';
// Load clients for the end-to-end benchmarks (issue 9, W1 paced run and W2..W6; W8, W9).
//
// Usage: node loadgen.js '<json config>'   (benchmarks/e2e/loadgen.py builds the config)
//
// Node.js is used because the clients share 2 cores with daphne, the worker and Redis: one
// event loop with the `ws` package costs a few microseconds per message, far less than a
// Python client would. Every mode is bounded in time and exits by itself; results are JSON
// lines on stdout (progress events have an "event" key, the last line is the result).

const http = require('http');
const { performance } = require('perf_hooks');
const WebSocket = require('ws');

const cfg = JSON.parse(process.argv[2] || '{}');
const now = () => performance.now(); // monotonic milliseconds
const epochMs = () => performance.timeOrigin + performance.now();
// permessage-deflate off: the benchmark measures the server, not compression
// (W5-deflate's holders offer it: `deflate: true`).
const WS_OPTIONS = { perMessageDeflate: false, handshakeTimeout: 10000 };
const WS_DEFLATE_OPTIONS = { ...WS_OPTIONS, perMessageDeflate: true };

function emit(obj) {
  process.stdout.write(JSON.stringify(obj) + '\n');
}

function summarize(values) {
  const sorted = Float64Array.from(values).sort();
  const pick = (p) => {
    if (sorted.length === 0) return null;
    const index = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
    return Math.round(sorted[index] * 1000) / 1000;
  };
  return { count: sorted.length, p50_ms: pick(50), p99_ms: pick(99), max_ms: pick(100) };
}

function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

// Opens `total` WebSockets with at most `concurrency` handshakes in flight. `onOpen(ws, i)` is
// called for each socket that opens; returns {opened, failed, errors, seconds}. With
// `localAddresses`, socket i binds localAddresses[i % n] as its source address: one
// address has about 28,000 ephemeral ports towards one server port (W5-100k).
async function openMany(url, total, concurrency, timeoutMs, onOpen, options = WS_OPTIONS, localAddresses = null) {
  const started = now();
  let next = 0;
  let opened = 0;
  let failed = 0;
  const errors = {};
  const deadline = started + timeoutMs;
  async function lane() {
    while (next < total && now() < deadline) {
      const i = next++;
      const ok = await new Promise((resolve) => {
        const ws = new WebSocket(
          url,
          localAddresses ? { ...options, localAddress: localAddresses[i % localAddresses.length] } : options,
        );
        let settled = false;
        const settle = (value, reason) => {
          if (settled) return;
          settled = true;
          if (!value) errors[reason] = (errors[reason] || 0) + 1;
          resolve(value);
        };
        ws.on('open', () => {
          onOpen(ws, i);
          settle(true);
        });
        ws.on('unexpected-response', (req, res) => {
          settle(false, `http ${res.statusCode}`);
          req.destroy();
        });
        ws.on('error', (err) => settle(false, err.code || err.message));
        ws.on('close', () => settle(false, 'closed during handshake'));
      });
      if (ok) opened++;
      else failed++;
    }
  }
  await Promise.all(Array.from({ length: Math.min(concurrency, total) }, lane));
  return { opened, failed, errors, seconds: (now() - started) / 1000 };
}

// W2/W5/W6: closed-loop echo. Each client sends its next message when the echo of the previous
// one arrives; a message unanswered for `stall_ms` counts as a stall and the client moves on
// (so a lost message cannot stop the run, W6).
async function echo(c) {
  const clients = [];
  const rtts = [];
  const timeline = new Map(); // bucket start (epoch ms) -> echoes received
  const bucket = c.bucket_ms || 0;
  const stats = {
    sent: 0,
    echoed: 0,
    stalls: 0,
    late: 0,
    closed: 0,
    close_codes: {},
    reconnects: 0,
    reconnect_failures: 0,
  };
  let measuring = false;
  let stopping = false;
  let lastEchoAt = now();

  function sendNext(client) {
    if (stopping || client.ws.readyState !== WebSocket.OPEN) return;
    client.seq++;
    client.expect = client.prefix + client.seq;
    client.sentAt = now();
    client.ws.send(client.expect);
    if (measuring) stats.sent++;
  }

  function attach(client, ws) {
    client.ws = ws;
    client.expect = '';
    ws.on('message', (data) => {
      // The timeline counts every echo, late ones included: it shows when service runs.
      if (bucket) {
        const b = Math.floor(epochMs() / bucket) * bucket;
        timeline.set(b, (timeline.get(b) || 0) + 1);
      }
      lastEchoAt = now();
      const text = data.toString();
      if (text !== client.expect) {
        stats.late++; // echo of a message already given up on (stall_ms passed)
        return;
      }
      const t = now();
      if (measuring) {
        stats.echoed++;
        rtts.push(t - client.sentAt);
      }
      client.expect = '';
      sendNext(client);
    });
    ws.on('close', (code) => {
      if (stopping) return;
      stats.closed++;
      stats.close_codes[code] = (stats.close_codes[code] || 0) + 1;
      if (c.events) emit({ event: 'closed', code, epoch_ms: epochMs() });
      if (c.reconnect) setTimeout(() => reconnect(client), c.stall_ms);
    });
  }

  // W6: a socket the server dropped is replaced, so the run still shows when service comes
  // back; the drop itself stays counted in `closed`.
  function reconnect(client) {
    if (stopping) return;
    stats.reconnects++;
    const ws = new WebSocket(c.url, WS_OPTIONS);
    let settled = false;
    const failed = (why) => {
      if (settled) return;
      settled = true;
      stats.reconnect_failures++;
      if (c.events) emit({ event: 'reconnect_failed', why, epoch_ms: epochMs() });
      ws.terminate();
      setTimeout(() => reconnect(client), c.stall_ms);
    };
    ws.on('open', () => {
      settled = true;
      if (c.events) emit({ event: 'reconnected', epoch_ms: epochMs() });
      attach(client, ws);
      sendNext(client);
    });
    ws.on('error', (err) => failed(err.code || err.message));
    ws.on('unexpected-response', (req, res) => {
      req.destroy();
      failed(`http ${res.statusCode}`);
    });
    ws.on('close', () => failed('closed during handshake'));
  }

  const opening = await openMany(c.url, c.clients, c.clients, c.open_timeout_ms || 30000, (ws, i) => {
    const client = { ws, prefix: `${i}:`, seq: 0, expect: '', sentAt: 0 };
    clients.push(client);
    attach(client, ws);
  });
  if (opening.opened < c.clients) {
    emit({ mode: 'echo', ok: false, error: 'not every client connected', opening });
    process.exit(1);
  }
  // A client gives up on its message after stall_ms only while no echo at all has arrived
  // for stall_ms: then the service is down and the message lost (at most once), not slow.
  // Giving up merely because one echo is slow would flood a busy server with extra messages.
  const stallTimer = setInterval(() => {
    const t = now();
    if (t - lastEchoAt <= c.stall_ms) return;
    for (const client of clients) {
      if (client.ws.readyState !== WebSocket.OPEN) continue;
      if (client.expect && t - client.sentAt > c.stall_ms) {
        if (measuring) stats.stalls++;
        sendNext(client);
      }
    }
  }, Math.max(10, Math.floor(c.stall_ms / 4)));

  for (const client of clients) sendNext(client);
  await sleep(c.warmup_s * 1000);
  measuring = true;
  const started = now();
  const cpuBefore = process.cpuUsage();
  emit({ event: 'running', epoch_ms: epochMs() });
  await sleep(c.duration_s * 1000);
  measuring = false;
  const cpu = process.cpuUsage(cpuBefore);
  const seconds = (now() - started) / 1000;
  stopping = true;
  clearInterval(stallTimer);
  for (const client of clients) client.ws.terminate();
  const buckets = [...timeline.entries()].sort((a, b) => a[0] - b[0]);
  emit({
    mode: 'echo',
    ok: true,
    clients: c.clients,
    seconds,
    messages_per_s: stats.echoed / seconds,
    client_cpu_us_per_echo: (cpu.user + cpu.system) / Math.max(1, stats.echoed),
    rtt: summarize(rtts),
    ...stats,
    connect_seconds: opening.seconds,
    timeline: bucket ? buckets : undefined,
  });
}

// W3: every client joins the group on connect; client 0 sends `messages` texts at `rate_per_s`;
// each client records when each broadcast arrives.
async function broadcast(c) {
  const sentAt = new Float64Array(c.messages).fill(NaN);
  const receivedBy = new Uint32Array(c.messages);
  const lastAt = new Float64Array(c.messages);
  const sockets = [];
  let unexpected = 0;
  let closed = 0;
  const opening = await openMany(c.url, c.clients, 50, c.open_timeout_ms || 30000, (ws) => {
    sockets.push(ws);
    ws.on('message', (data) => {
      const seq = Number(data.toString().slice(2));
      if (!(seq >= 0 && seq < c.messages) || Number.isNaN(sentAt[seq])) {
        unexpected++;
        return;
      }
      receivedBy[seq]++;
      lastAt[seq] = Math.max(lastAt[seq], now());
    });
    ws.on('close', () => closed++);
  });
  if (opening.opened < c.clients) {
    emit({ mode: 'broadcast', ok: false, error: 'not every client connected', opening });
    process.exit(1);
  }
  const sender = sockets[0];
  const interval = 1000 / c.rate_per_s;
  const start = now();
  for (let seq = 0; seq < c.messages; seq++) {
    // Paced against the schedule, not the previous send, so drift does not accumulate.
    const wait = start + seq * interval - now();
    if (wait > 0) await sleep(wait);
    sentAt[seq] = now();
    sender.send(`b:${seq}`);
  }
  const expected = c.clients * c.messages;
  const drainDeadline = now() + c.drain_s * 1000;
  const delivered = () => receivedBy.reduce((a, b) => a + b, 0);
  while (delivered() < expected && now() < drainDeadline) await sleep(20);
  const fanout = [];
  let complete = 0;
  for (let seq = 0; seq < c.messages; seq++) {
    if (receivedBy[seq] === c.clients) {
      complete++;
      fanout.push(lastAt[seq] - sentAt[seq]);
    }
  }
  for (const ws of sockets) ws.terminate();
  emit({
    mode: 'broadcast',
    ok: true,
    clients: c.clients,
    messages: c.messages,
    expected,
    delivered: delivered(),
    complete_messages: complete,
    fanout: summarize(fanout),
    unexpected,
    closed,
    connect_seconds: opening.seconds,
  });
}

// W4: `total` connections, `concurrency` at a time: connect, one echo, close.
async function storm(c) {
  const failures = {};
  let done = 0;
  let next = 0;
  const fail = (reason) => {
    failures[reason] = (failures[reason] || 0) + 1;
  };
  const one = () =>
    new Promise((resolve) => {
      const ws = new WebSocket(c.url, WS_OPTIONS);
      let echoed = false;
      const timer = setTimeout(() => {
        fail('timeout');
        ws.terminate();
        resolve();
      }, c.timeout_ms);
      const finish = (reason) => {
        clearTimeout(timer);
        if (reason) fail(reason);
        else done++;
        resolve();
      };
      ws.on('open', () => ws.send('storm'));
      ws.on('message', (data) => {
        echoed = data.toString() === 'storm';
        ws.close(1000);
      });
      ws.on('unexpected-response', (req, res) => {
        req.destroy();
        finish(`http ${res.statusCode}`);
      });
      ws.on('error', (err) => finish(err.code || err.message));
      ws.on('close', () => finish(echoed ? null : 'closed before echo'));
    });
  const started = now();
  const lanes = Array.from({ length: c.concurrency }, async () => {
    while (next < c.total) {
      next++;
      await one();
    }
  });
  await Promise.all(lanes);
  const seconds = (now() - started) / 1000;
  const failed = Object.values(failures).reduce((a, b) => a + b, 0);
  emit({
    mode: 'storm',
    ok: true,
    total: c.total,
    completed: done,
    failed,
    failures,
    seconds,
    connections_per_s: done / seconds,
  });
}

// W5: open `total` idle WebSockets `concurrency` handshakes at a time and hold them until
// stdin closes (or `hold_s` passes); report how many opened and how many the server closed.
// With `deflate`, every handshake offers permessage-deflate and `negotiated` counts the
// sockets the server accepted it on.
async function hold(c) {
  const sockets = [];
  let closedWhileHeld = 0;
  let holding = true;
  let negotiated = 0;
  const options = c.deflate ? WS_DEFLATE_OPTIONS : WS_OPTIONS;
  const opening = await openMany(c.url, c.total, c.concurrency, c.open_timeout_ms, (ws) => {
    sockets.push(ws);
    if (ws.extensions.includes('permessage-deflate')) negotiated++;
    ws.on('close', () => {
      if (holding) closedWhileHeld++;
    });
    ws.on('error', () => {});
  }, options, c.local_addresses || null);
  opening.negotiated = negotiated;
  emit({ event: 'held', ...opening, closed_while_held: closedWhileHeld });
  await new Promise((resolve) => {
    const timer = setTimeout(resolve, c.hold_s * 1000);
    process.stdin.on('end', () => {
      clearTimeout(timer);
      resolve();
    });
    process.stdin.resume();
  });
  holding = false;
  const stillOpen = sockets.filter((ws) => ws.readyState === WebSocket.OPEN).length;
  emit({ mode: 'hold', ok: true, ...opening, closed_while_held: closedWhileHeld, still_open: stillOpen });
  // Exiting closes every socket at once (FIN from the kernel), like a client machine going away.
  process.exit(0);
}

// W8/W9 (issue 17): numbered echo. Each client sends "<client>:<n>" for n in 0..messages-1,
// one every `interval_ms` (clients staggered across the interval), and never resends: what
// the server loses stays lost. After the last send it waits up to `drain_s` for the echoes.
// Reports lost (sent, never echoed), duplicates (echoed more than once), sockets the server
// closed (with codes) and the RTT of first echoes. Events: "running" once every client is
// open (the caller starts its restarts or kills then), "sent" after the last send.
async function numbered(c) {
  const clients = [];
  const rtts = [];
  const stats = { sent: 0, echoes: 0, duplicates: 0, unexpected: 0, closed: 0, close_codes: {} };
  let stopping = false;
  let lastEchoEpoch = 0;
  const opening = await openMany(c.url, c.clients, c.open_concurrency || 200, c.open_timeout_ms || 120000, (ws, i) => {
    const client = { ws, i, counts: new Uint16Array(c.messages), sentAt: new Float64Array(c.messages), unique: 0 };
    clients.push(client);
    ws.on('message', (data) => {
      const [who, seq] = data.toString().split(':').map(Number);
      if (who !== i || !(seq >= 0 && seq < c.messages)) {
        stats.unexpected++;
        return;
      }
      stats.echoes++;
      lastEchoEpoch = epochMs();
      if (client.counts[seq]++ === 0) {
        client.unique++;
        rtts.push(now() - client.sentAt[seq]);
      } else {
        stats.duplicates++;
      }
    });
    ws.on('close', (code) => {
      if (stopping) return;
      stats.closed++;
      stats.close_codes[code] = (stats.close_codes[code] || 0) + 1;
      if (c.events) emit({ event: 'closed', code, epoch_ms: epochMs() });
    });
    ws.on('error', () => {});
  });
  if (opening.opened < c.clients) {
    emit({ mode: 'numbered', ok: false, error: 'not every client connected', opening });
    process.exit(1);
  }
  emit({ event: 'running', epoch_ms: epochMs(), connect_seconds: opening.seconds });
  const started = now();
  const sendsDone = clients.map(
    (client) =>
      new Promise((resolve) => {
        const offset = (client.i / c.clients) * c.interval_ms;
        let n = 0;
        const next = () => {
          if (stopping || n >= c.messages) return resolve();
          if (client.ws.readyState === WebSocket.OPEN) {
            client.sentAt[n] = now();
            client.ws.send(`${client.i}:${n}`);
            stats.sent++;
          }
          n++;
          // Against the schedule, so that drift does not accumulate.
          setTimeout(next, Math.max(0, started + offset + n * c.interval_ms - now()));
        };
        setTimeout(next, offset);
      }),
  );
  await Promise.all(sendsDone);
  const sentAt = epochMs();
  emit({ event: 'sent', epoch_ms: sentAt });
  const expected = c.clients * c.messages;
  const received = () => clients.reduce((a, client) => a + client.unique, 0);
  const drainDeadline = now() + c.drain_s * 1000;
  while (received() < expected && now() < drainDeadline) await sleep(50);
  const seconds = (now() - started) / 1000;
  stopping = true;
  // Lost: sent and never echoed (a message not sent because its socket had closed is
  // counted in `unsent`, its socket in `closed`).
  const missing = [];
  let lost = 0;
  for (const client of clients) {
    for (let n = 0; n < c.messages; n++) {
      if (client.sentAt[n] > 0 && client.counts[n] === 0) {
        lost++;
        if (missing.length < 20) missing.push(`${client.i}:${n}`);
      }
    }
  }
  for (const client of clients) client.ws.terminate();
  emit({
    mode: 'numbered',
    ok: true,
    clients: c.clients,
    messages: c.messages,
    expected,
    received: received(),
    lost,
    unsent: expected - stats.sent,
    missing_sample: missing,
    ...stats,
    seconds,
    echoes_per_s: stats.echoes / seconds,
    rtt: summarize(rtts),
    drain_seconds: lastEchoEpoch ? Math.max(0, (lastEchoEpoch - sentAt) / 1000) : null,
    connect_seconds: opening.seconds,
  });
}

// One fresh connection, one echo: can a new client be served? (W6 end check, readiness.)
async function probe(c) {
  const started = now();
  const result = await new Promise((resolve) => {
    const ws = new WebSocket(c.url, WS_OPTIONS);
    const timer = setTimeout(() => {
      ws.terminate();
      resolve({ ok: false, error: 'timeout' });
    }, c.timeout_ms);
    const done = (value) => {
      clearTimeout(timer);
      resolve(value);
    };
    ws.on('open', () => ws.send('probe'));
    ws.on('message', (data) => {
      ws.close(1000);
      done({ ok: data.toString() === 'probe', echoed: data.toString() });
    });
    ws.on('unexpected-response', (req, res) => {
      req.destroy();
      done({ ok: false, error: `http ${res.statusCode}` });
    });
    ws.on('error', (err) => done({ ok: false, error: err.code || err.message }));
    ws.on('close', (code) => done({ ok: false, error: `closed ${code}` }));
  });
  emit({ mode: 'probe', seconds: (now() - started) / 1000, ...result });
}

// W1 at a fixed rate: open-loop schedule over keep-alive connections; a slow response does
// not delay the schedule (requests then wait for a free connection, and that wait counts).
async function paced(c) {
  const agent = new http.Agent({ keepAlive: true, maxSockets: c.connections });
  const latencies = [];
  const lags = [];
  const statuses = {};
  let errors = 0;
  let inFlight = 0;
  const total = Math.round(c.rate_per_s * c.duration_s);
  const interval = 1000 / c.rate_per_s;
  const start = now();
  let finished = 0;
  await new Promise((resolve) => {
    const complete = () => {
      inFlight--;
      finished++;
      if (finished === total) resolve();
    };
    const fire = (scheduled) => {
      inFlight++;
      const req = http.get(c.url, { agent, timeout: 10000 }, (res) => {
        res.on('data', () => {});
        res.on('end', () => {
          statuses[res.statusCode] = (statuses[res.statusCode] || 0) + 1;
          latencies.push(now() - scheduled);
          complete();
        });
      });
      req.on('timeout', () => req.destroy(new Error('timeout')));
      req.on('error', () => {
        errors++;
        complete();
      });
    };
    let sent = 0;
    const tick = () => {
      const t = now();
      while (sent < total && start + sent * interval <= t) {
        // Latency runs from when the request is issued (it still includes any wait for a
        // free connection); the timer's own lateness is reported apart as schedule lag.
        lags.push(t - (start + sent * interval));
        fire(now());
        sent++;
      }
      if (sent < total) setTimeout(tick, Math.max(0, start + sent * interval - now()));
    };
    tick();
  });
  agent.destroy();
  const seconds = (now() - start) / 1000;
  const non2xx = Object.entries(statuses)
    .filter(([code]) => code < 200 || code > 299)
    .reduce((a, [, n]) => a + n, 0);
  emit({
    mode: 'paced',
    ok: true,
    requests: total,
    rate_per_s: c.rate_per_s,
    achieved_per_s: latencies.length / seconds,
    latency: summarize(latencies),
    schedule_lag: summarize(lags),
    statuses,
    non_2xx: non2xx,
    errors,
    max_in_flight_end: inFlight,
  });
}

const modes = { echo, broadcast, storm, hold, probe, paced, numbered };
if (!modes[cfg.mode]) {
  emit({ ok: false, error: `unknown mode ${cfg.mode}; one of ${Object.keys(modes).join(', ')}` });
  process.exit(2);
}
// A hard stop so a stuck run cannot outlive its budget.
setTimeout(() => {
  emit({ mode: cfg.mode, ok: false, error: `exceeded its ${cfg.max_s} s budget` });
  process.exit(3);
}, cfg.max_s * 1000).unref();
modes[cfg.mode](cfg).then(
  () => process.exit(0),
  (err) => {
    emit({ mode: cfg.mode, ok: false, error: String(err && err.stack ? err.stack : err) });
    process.exit(1);
  },
);
