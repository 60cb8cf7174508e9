// End-to-end test: two headless-Chromium tabs join the same room of `jonction run` through the
// web page and must receive each other's audio and video.
//
// Run inside the test network namespace (WebRTC skips loopback candidates):
//   integration/netns.sh node tests/browser/two_tabs.mjs
// Needs: target/debug/jonction (or $JONCTION_BIN), web/dist (cd web && npm ci && npm run build),
// tests/browser/node_modules (cd tests/browser && npm ci), /usr/bin/chromium (or $CHROMIUM).
// Env: JONCTION_BIN, CHROMIUM, JONCTION_TEST_LOG_LEVEL (server log level, default debug).
// Writes target/artifacts/two_tabs.png and, for diagnosis, two_tabs.{server,alice,bob}.log.
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { networkInterfaces, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const BIN = resolve(ROOT, process.env.JONCTION_BIN || 'target/debug/jonction');
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const HOST = '10.200.0.1';
const PORT = 7880;
const ORIGIN = `http://${HOST}:${PORT}`;
const ROOM = 'browsertest';
const ARTIFACTS = join(ROOT, 'target', 'artifacts');
const HARD_TIMEOUT_MS = 90_000;
const READY_TIMEOUT_MS = 30_000;
const CONNECT_TIMEOUT_MS = 20_000;
const MEDIA_TIMEOUT_MS = 30_000;
const SAMPLE_GAP_MS = 2_000;

const t0 = Date.now();
const log = (...a) => console.log(`[${((Date.now() - t0) / 1000).toFixed(1)}s]`, ...a);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Keeps the last `max` lines pushed. */
class Tail {
  constructor(max) {
    this.max = max;
    this.lines = [];
    this.partial = '';
  }
  push(line) {
    this.lines.push(line);
    if (this.lines.length > this.max) this.lines.splice(0, this.lines.length - this.max);
  }
  write(chunk) {
    const parts = (this.partial + chunk).split('\n');
    this.partial = parts.pop();
    for (const p of parts) this.push(p);
  }
  all() {
    return this.partial ? [...this.lines, this.partial] : [...this.lines];
  }
  last(n) {
    return this.all().slice(-n);
  }
}

const state = {
  server: null,
  serverExit: null,
  serverLog: new Tail(2000),
  browser: null,
  tmp: null,
  pages: [], // { name, page, console: Tail }
  lastStats: {},
};

/** Runs `fn` with a deadline; rejects with `what` on timeout. */
async function withTimeout(ms, what, fn) {
  let timer;
  try {
    return await Promise.race([
      fn(),
      new Promise((_, rej) => {
        timer = setTimeout(() => rej(new Error(`timeout after ${ms} ms: ${what}`)), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

// ---------------------------------------------------------------------------------------------
// fake media

/** A 4:2:0 y4m clip with a moving gradient, moving colour bands and a bouncing white square. */
function makeY4m(w, h, fps, seconds) {
  const header = Buffer.from(`YUV4MPEG2 W${w} H${h} F${fps}:1 Ip A1:1 C420jpeg\n`, 'ascii');
  const frameHdr = Buffer.from('FRAME\n', 'ascii');
  const cw = w / 2;
  const ch = h / 2;
  const n = fps * seconds;
  const chunks = [header];
  for (let f = 0; f < n; f++) {
    const y = Buffer.alloc(w * h);
    const u = Buffer.alloc(cw * ch);
    const v = Buffer.alloc(cw * ch);
    const shift = f * 6;
    const boxSize = 48;
    const span = w - boxSize;
    const bx = Math.abs(((f * 11) % (2 * span)) - span);
    const by = Math.round((h - boxSize) / 2 + Math.sin(f / 5) * (h / 4));
    for (let r = 0; r < h; r++) {
      for (let c = 0; c < w; c++) {
        let luma = 40 + ((c + r + shift) % 160);
        if (c >= bx && c < bx + boxSize && r >= by && r < by + boxSize) luma = 235;
        y[r * w + c] = luma;
      }
    }
    for (let r = 0; r < ch; r++) {
      for (let c = 0; c < cw; c++) {
        const band = Math.floor(((c * 2 + shift) % w) / (w / 4));
        u[r * cw + c] = [90, 200, 60, 160][band];
        v[r * cw + c] = [200, 80, 110, 60][band];
      }
    }
    chunks.push(frameHdr, y, u, v);
  }
  return Buffer.concat(chunks);
}

/** 16-bit mono PCM WAV: a 440 Hz tone pulsing on and off (so speech detection sees activity). */
function makeWav(rate, seconds) {
  const n = rate * seconds;
  const data = Buffer.alloc(n * 2);
  for (let i = 0; i < n; i++) {
    const t = i / rate;
    const on = Math.floor(t * 2) % 2 === 0 ? 1 : 0.15;
    const s = Math.sin(2 * Math.PI * 440 * t) * 0.5 * on;
    data.writeInt16LE(Math.round(s * 32767), i * 2);
  }
  const hdr = Buffer.alloc(44);
  hdr.write('RIFF', 0, 'ascii');
  hdr.writeUInt32LE(36 + data.length, 4);
  hdr.write('WAVE', 8, 'ascii');
  hdr.write('fmt ', 12, 'ascii');
  hdr.writeUInt32LE(16, 16); // fmt chunk size
  hdr.writeUInt16LE(1, 20); // PCM
  hdr.writeUInt16LE(1, 22); // mono
  hdr.writeUInt32LE(rate, 24);
  hdr.writeUInt32LE(rate * 2, 28); // byte rate
  hdr.writeUInt16LE(2, 32); // block align
  hdr.writeUInt16LE(16, 34); // bits per sample
  hdr.write('data', 36, 'ascii');
  hdr.writeUInt32LE(data.length, 40);
  return Buffer.concat([hdr, data]);
}

// ---------------------------------------------------------------------------------------------
// server

function startServer() {
  log(`starting ${BIN} run on ${HOST}:${PORT}`);
  const env = {
    ...process.env,
    JONCTION_HTTP__LISTEN: `${HOST}:${PORT}`,
    JONCTION_HTTP__DEV_MODE: 'true',
    JONCTION_WEB__ROOT: join(ROOT, 'web', 'dist'),
    JONCTION_LOG__LEVEL: process.env.JONCTION_TEST_LOG_LEVEL || 'debug',
  };
  const child = spawn(BIN, ['run'], { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
  child.stdout.setEncoding('utf8');
  child.stderr.setEncoding('utf8');
  child.stdout.on('data', (d) => state.serverLog.write(d));
  child.stderr.on('data', (d) => state.serverLog.write(d));
  child.on('error', (e) => {
    state.serverExit = `spawn error: ${e.message}`;
  });
  child.on('exit', (code, sig) => {
    state.serverExit = `exited with ${sig ? `signal ${sig}` : `code ${code}`}`;
  });
  state.server = child;
}

async function waitReady() {
  const deadline = Date.now() + READY_TIMEOUT_MS;
  let last = 'no answer';
  while (Date.now() < deadline) {
    if (state.serverExit) throw new Error(`server ${state.serverExit} before it was ready`);
    try {
      const res = await fetch(`${ORIGIN}/readyz`, { signal: AbortSignal.timeout(1000) });
      if (res.status === 200) return;
      last = `HTTP ${res.status}`;
    } catch (e) {
      last = e.cause?.code || e.message;
    }
    await sleep(250);
  }
  throw new Error(`server not ready after ${READY_TIMEOUT_MS} ms (/readyz: ${last})`);
}

async function stopServer() {
  const child = state.server;
  if (!child || state.serverExit) return;
  child.kill('SIGTERM');
  const deadline = Date.now() + 5000;
  while (!state.serverExit && Date.now() < deadline) await sleep(50);
  if (!state.serverExit) {
    child.kill('SIGKILL');
    await sleep(100);
  }
}

// ---------------------------------------------------------------------------------------------
// browser

async function openTab(chromium, name) {
  const context = await state.browser.newContext({
    viewport: { width: 960, height: 600 },
    permissions: ['camera', 'microphone'],
  });
  await context.grantPermissions(['camera', 'microphone'], { origin: ORIGIN });
  const page = await context.newPage();
  const tail = new Tail(3000);
  const entry = { name, page, context, console: tail };
  page.on('console', (m) => tail.push(`[${m.type()}] ${m.text()}`));
  page.on('pageerror', (e) => tail.push(`[pageerror] ${e.stack || e.message}`));
  page.on('requestfailed', (r) => tail.push(`[requestfailed] ${r.url()} ${r.failure()?.errorText}`));
  page.on('crash', () => tail.push('[crash] page crashed'));
  state.pages.push(entry);
  const url = `${ORIGIN}/room/${ROOM}?name=${encodeURIComponent(name)}&autojoin=1&debug=1`;
  log(`${name}: opening ${url}`);
  const res = await page.goto(url, { timeout: 15_000, waitUntil: 'load' });
  if (!res || res.status() !== 200) throw new Error(`${name}: GET page answered ${res?.status()}`);
  return entry;
}

async function waitConnected(entry) {
  const { page, name } = entry;
  try {
    await page.waitForFunction(
      () => ['connected', 'error'].includes(window.jonctionTest?.state),
      null,
      { timeout: CONNECT_TIMEOUT_MS, polling: 200 },
    );
  } catch {
    const st = await page.evaluate(() => window.jonctionTest?.state).catch(() => '?');
    throw new Error(`${name}: not connected after ${CONNECT_TIMEOUT_MS} ms (state ${st})`);
  }
  const { st, err } = await page.evaluate(() => ({
    st: window.jonctionTest.state,
    err: window.jonctionTest.error,
  }));
  if (st !== 'connected') throw new Error(`${name}: join failed: ${err}`);
  log(`${name}: connected`);
}

const stats = (entry) =>
  withTimeout(5000, `${entry.name}: jonctionStats()`, () =>
    entry.page.evaluate(() => window.jonctionStats()),
  );

function fmt(s) {
  if (!s) return '{}';
  return (
    `{audio ${s.inboundAudioBytes}B/${s.inboundAudioPackets}p, video ${s.inboundVideoBytes}B/` +
    `${s.inboundVideoPackets}p/${s.framesDecoded}f, sent a${s.outboundAudioBytes}B ` +
    `v${s.outboundVideoBytes}B, tiles ${s.remoteTiles}, remote ${s.remoteParticipants}, ` +
    `tracks ${s.subscribedTracks}, pc sub=${s.subscriberState} pub=${s.publisherState}}`
  );
}

/** Both tabs must receive audio and video, with counters growing over SAMPLE_GAP_MS. */
async function waitMedia(entries) {
  const deadline = Date.now() + MEDIA_TIMEOUT_MS;
  let before = await Promise.all(entries.map(stats));
  while (true) {
    await sleep(SAMPLE_GAP_MS);
    const after = await Promise.all(entries.map(stats));
    const ok = entries.map((e, i) => {
      const a = before[i];
      const b = after[i];
      state.lastStats[e.name] = b;
      return (
        a.inboundAudioBytes > 0 &&
        a.inboundVideoBytes > 0 &&
        b.inboundAudioBytes > a.inboundAudioBytes &&
        b.inboundVideoBytes > a.inboundVideoBytes
      );
    });
    log(entries.map((e, i) => `${e.name} ${fmt(after[i])}`).join(' | '));
    if (ok.every(Boolean)) return after;
    if (Date.now() + SAMPLE_GAP_MS > deadline) {
      const bad = entries.filter((_, i) => !ok[i]).map((e) => e.name);
      throw new Error(
        `no growing inbound audio+video after ${MEDIA_TIMEOUT_MS} ms on: ${bad.join(', ')}`,
      );
    }
    before = after;
  }
}

async function screenshot(entry) {
  await mkdir(ARTIFACTS, { recursive: true });
  // give the remote video a moment to render a frame (not a pass condition)
  await entry.page
    .waitForFunction(
      () =>
        [...document.querySelectorAll('.tile video')].filter((v) => v.videoWidth > 0).length >= 2,
      null,
      { timeout: 5000, polling: 200 },
    )
    .catch(() => log(`${entry.name}: fewer than two tiles show video at screenshot time`));
  const file = join(ARTIFACTS, 'two_tabs.png');
  await entry.page.screenshot({ path: file, timeout: 10_000 });
  log(`screenshot: ${file}`);
}

async function closeBrowser() {
  const b = state.browser;
  state.browser = null;
  if (!b) return;
  try {
    await withTimeout(5000, 'browser.close()', () => b.close());
  } catch (e) {
    // playwright kills the browser process on exit anyway
    log(`closing the browser: ${e.message}`);
  }
}

async function writeLogs() {
  try {
    await mkdir(ARTIFACTS, { recursive: true });
    await writeFile(join(ARTIFACTS, 'two_tabs.server.log'), state.serverLog.all().join('\n') + '\n');
    for (const p of state.pages) {
      await writeFile(
        join(ARTIFACTS, `two_tabs.${p.name.toLowerCase()}.log`),
        p.console.all().join('\n') + '\n',
      );
    }
  } catch (e) {
    log(`writing logs: ${e.message}`);
  }
}

function printDiagnosis() {
  if (!state.server) return;
  console.log('---- server output (tail) ----');
  for (const l of state.serverLog.last(60)) console.log(l);
  if (state.serverExit) console.log(`(server ${state.serverExit})`);
  for (const p of state.pages) {
    console.log(`---- ${p.name} console (tail) ----`);
    for (const l of p.console.last(60)) console.log(l.length > 600 ? l.slice(0, 600) + '…' : l);
  }
  for (const [name, s] of Object.entries(state.lastStats)) console.log(`${name} last stats ${fmt(s)}`);
  console.log(`(full logs in ${ARTIFACTS}/two_tabs.*.log)`);
}

async function cleanup() {
  await closeBrowser();
  await stopServer();
  if (state.tmp) await rm(state.tmp, { recursive: true, force: true }).catch(() => {});
}

// ---------------------------------------------------------------------------------------------

async function run() {
  const local = Object.values(networkInterfaces()).flat().some((a) => a.address === HOST);
  if (!local) throw new Error(`${HOST} is not a local address: run inside integration/netns.sh`);
  if (!existsSync(BIN)) throw new Error(`no server binary at ${BIN} (cargo build, or set JONCTION_BIN)`);
  if (!existsSync(join(ROOT, 'web', 'dist', 'app.js'))) {
    throw new Error('web/dist/app.js missing: cd web && npm ci && npm run build');
  }
  if (!existsSync(CHROMIUM)) throw new Error(`no Chromium at ${CHROMIUM}`);
  let chromium;
  try {
    ({ chromium } = await import('playwright-core'));
  } catch {
    throw new Error('playwright-core missing: cd tests/browser && npm ci');
  }

  state.tmp = await mkdtemp(join(tmpdir(), 'jonction-two-tabs-'));
  const y4m = join(state.tmp, 'fake.y4m');
  const wav = join(state.tmp, 'fake.wav');
  await writeFile(y4m, makeY4m(320, 240, 10, 5));
  await writeFile(wav, makeWav(48000, 5));

  startServer();
  await waitReady();
  log('server ready');

  state.browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    timeout: 30_000,
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--disable-dev-shm-usage',
      '--use-fake-device-for-media-stream',
      '--use-fake-ui-for-media-stream',
      `--use-file-for-fake-audio-capture=${wav}`,
      `--use-file-for-fake-video-capture=${y4m}`,
      '--disable-features=WebRtcHideLocalIpsWithMdns',
      '--autoplay-policy=no-user-gesture-required',
      // getUserMedia needs a secure context; the page is served over plain http on the veth
      `--unsafely-treat-insecure-origin-as-secure=${ORIGIN}`,
    ],
  });
  log(`browser ${state.browser.version()}`);

  const alice = await openTab(chromium, 'Alice');
  const bob = await openTab(chromium, 'Bob');
  await Promise.all([waitConnected(alice), waitConnected(bob)]);
  for (const e of [alice, bob]) {
    const pe = await e.page.evaluate(() => window.jonctionTest.publishError);
    if (pe) throw new Error(`${e.name}: publishing camera/microphone failed: ${pe}`);
  }
  const final = await waitMedia([alice, bob]);
  await screenshot(alice);
  return final;
}

let failed = false;
let hardTimer;
const hardTimeout = new Promise((_, rej) => {
  hardTimer = setTimeout(() => rej(new Error(`hard timeout after ${HARD_TIMEOUT_MS} ms`)), HARD_TIMEOUT_MS);
});
for (const sig of ['SIGINT', 'SIGTERM']) {
  process.on(sig, () => {
    state.server?.kill('SIGKILL');
    process.exit(130);
  });
}

try {
  const final = await Promise.race([run(), hardTimeout]);
  console.log(`two_tabs: PASS Alice ${fmt(final[0])} Bob ${fmt(final[1])}`);
} catch (e) {
  failed = true;
  console.log(`two_tabs: FAIL ${e.message}`);
} finally {
  clearTimeout(hardTimer);
}
// cleanup is bounded too: whatever happens, the process ends within ~15 s from here
const forceExit = setTimeout(() => {
  state.server?.kill('SIGKILL');
  console.log(failed ? '0 passed, 1 failed' : '1 passed, 0 failed');
  process.exit(failed ? 1 : 0);
}, 15_000);
await writeLogs();
if (failed) printDiagnosis();
await cleanup();
clearTimeout(forceExit);
console.log(failed ? '0 passed, 1 failed' : '1 passed, 0 failed');
process.exit(failed ? 1 : 0);
