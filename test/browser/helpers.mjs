// Shared helpers of the browser tests: build and run the real firetower
// binary on loopback, launch Debian's chromium through playwright-core, and
// poll for conditions with deadlines.
import { spawn, execFile } from 'node:child_process';
import { once } from 'node:events';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { chromium } from 'playwright-core';

export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
export const artifactsDir = path.join(repoRoot, 'test-artifacts');

export const CHROMIUM = process.env.FIRETOWER_CHROMIUM || '/usr/bin/chromium';
// playwright's launch() adds a fresh --user-data-dir of its own (a new
// temporary profile per browser, removed on close); it refuses one in args.
export const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

// Time limits. Every wait in the tests is bounded by one of these.
export const WAIT = 10_000; // for something that should happen promptly
export const RECONNECT_WAIT = 30_000; // for a reconnect (backoff with jitter)
export const TEST_TIMEOUT = 90_000; // for one whole test

const execFileP = promisify(execFile);

let built; // the binary's path, once built

// buildServer builds ./cmd/firetower into a temporary directory, once per
// test process (the Go build cache makes later builds cheap).
export async function buildServer() {
  if (built) return built;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'firetower-browser-'));
  const bin = path.join(dir, 'firetower');
  await execFileP('go', ['build', '-o', bin, './cmd/firetower'], { cwd: repoRoot, timeout: 180_000 });
  process.on('exit', () => fs.rmSync(dir, { recursive: true, force: true }));
  built = bin;
  return bin;
}

// freePort returns a loopback port that was free a moment ago.
export async function freePort() {
  const srv = net.createServer();
  srv.listen(0, '127.0.0.1');
  await once(srv, 'listening');
  const { port } = srv.address();
  srv.close();
  await once(srv, 'close');
  return port;
}

const running = new Set();
process.on('exit', () => {
  for (const p of running) p.kill('SIGKILL');
});

// Server runs the firetower binary with `serve` on 127.0.0.1:port.
export class Server {
  constructor(bin, port, extraArgs = []) {
    this.bin = bin;
    this.port = port;
    this.args = ['serve', '--addr', `127.0.0.1:${port}`, '--drain-window', '100ms', ...extraArgs];
    this.base = `http://127.0.0.1:${port}`;
    this.proc = null;
    this.log = '';
    this.starts = 0;
  }

  // start runs the server and waits until /healthz answers.
  async start() {
    this.starts++;
    // Run in the binary's own directory, with no FIRETOWER_* variables: a
    // fireTower.toml or a developer's settings must not change the server.
    const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('FIRETOWER_')));
    env.FIRETOWER_GRPC_ADDR = 'off'; // the default 0.0.0.0:9998 may be taken
    const proc = spawn(this.bin, this.args, { stdio: ['ignore', 'pipe', 'pipe'], cwd: path.dirname(this.bin), env });
    running.add(proc);
    proc.exited = once(proc, 'exit');
    const collect = (b) => { this.log += b.toString(); };
    proc.stdout.on('data', collect);
    proc.stderr.on('data', collect);
    this.proc = proc;
    await waitFor(async () => {
      if (proc.exitCode !== null) {
        const err = new Error(`firetower exited with ${proc.exitCode}:\n${this.log}`);
        err.fatal = true; // no point in waiting longer
        throw err;
      }
      try {
        const res = await fetch(`${this.base}/healthz`, { signal: AbortSignal.timeout(1000) });
        return res.ok;
      } catch {
        return false;
      }
    }, { timeout: WAIT, what: `firetower on port ${this.port} to answer /healthz` });
    return this;
  }

  // stop ends the server: SIGTERM (graceful, 100 ms drain) or SIGKILL (a
  // crash). It waits until the process has exited.
  async stop(signal = 'SIGTERM') {
    const proc = this.proc;
    if (!proc) return;
    this.proc = null;
    if (proc.exitCode === null && proc.signalCode === null) {
      proc.kill(signal);
      const timer = setTimeout(() => proc.kill('SIGKILL'), WAIT);
      await proc.exited;
      clearTimeout(timer);
    }
    running.delete(proc);
  }

  // saveLog writes the server's output next to the screenshots.
  saveLog(name) {
    fs.mkdirSync(artifactsDir, { recursive: true });
    fs.writeFileSync(path.join(artifactsDir, `${name}.server.log`), this.log);
  }
}

// startServer builds and starts a server on a free port.
export async function startServer(extraArgs = []) {
  const bin = await buildServer();
  // A port taken between freePort and the server's listen makes start
  // fail; try a few ports.
  let lastErr;
  for (let i = 0; i < 3; i++) {
    const srv = new Server(bin, await freePort(), extraArgs);
    try {
      return await srv.start();
    } catch (err) {
      lastErr = err;
      await srv.stop('SIGKILL');
    }
  }
  throw lastErr;
}

// launchBrowser starts headless chromium.
export async function launchBrowser() {
  return chromium.launch({
    executablePath: CHROMIUM,
    args: CHROMIUM_ARGS,
    timeout: 60_000,
  });
}

// newPage opens a page in a fresh browser context (its own storage), with
// page errors and console errors collected in page.errors.
export async function newPage(browser, options = {}) {
  const context = await browser.newContext(options);
  const page = await context.newPage();
  page.setDefaultTimeout(WAIT);
  page.errors = [];
  page.on('pageerror', (err) => page.errors.push(`pageerror: ${err.message}`));
  page.on('console', (msg) => {
    if (msg.type() === 'error') page.errors.push(`console: ${msg.text()}`);
  });
  return page;
}

// waitFor polls fn until it returns a truthy value (which it returns) or
// the timeout passes (then it throws, naming what it waited for).
export async function waitFor(fn, { timeout = WAIT, interval = 50, what = 'condition' } = {}) {
  const deadline = Date.now() + timeout;
  let last;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v;
    } catch (err) {
      last = err;
      if (err && err.fatal) throw err;
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${timeout} ms waiting for ${what}${last ? `: ${last.message}` : ''}`);
    }
    await new Promise((r) => setTimeout(r, interval));
  }
}

// screenshot saves a PNG of page into test-artifacts/.
export async function screenshot(page, name) {
  fs.mkdirSync(artifactsDir, { recursive: true });
  const file = path.join(artifactsDir, `${name}.png`);
  await page.screenshot({ path: file, fullPage: false });
  return file;
}
