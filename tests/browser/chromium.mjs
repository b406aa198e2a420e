// Debian's Chromium, headless, for the browser tests: no network but the
// server (every other host fails to resolve). `host` is the one host left
// resolvable (127.0.0.1, or localhost for a secure-context origin).
import { chromium } from 'playwright-core';

export function launch(host) {
  return chromium.launch({
    executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
    args: [
      '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
      `--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE ${host}`,
    ],
  });
}
