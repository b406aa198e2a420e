// Verify authgate's access tokens in a Node service with `jose` (npm), and
// refuse the tokens of sessions that ended: copy this file into your
// service. What it checks is what the Rust crate `authgate-verify` checks
// (docs/tokens.md): the signature with a published key and that key's
// algorithm, `typ: at+jwt`, `iss`, `aud`, `exp`/`nbf` with a leeway, and
// the session (`sid`) against the revocation feed, followed as a stream.
// When the feed has not said it is current for longer than `maxSilenceMs`
// (30 s), every token is refused: it can no longer know which sessions ended.
//
//   const verifier = await createVerifier({
//     url: 'https://auth.example.com',          // authgate (AUTHGATE_PUBLIC_URL)
//     audience: 'https://api.example.com',      // one of AUTHGATE_JWT_AUDIENCES
//     serviceKey: process.env.AUTHGATE_SERVICE_KEY, // one of AUTHGATE_SERVICE_KEYS
//   });
//   const claims = await verifier.verify(token); // throws when refused
import { createRemoteJWKSet, jwtVerify } from 'jose';

const IDLE_MS = 15_000; // heartbeats come every 5 s
const START_WITHIN_MS = 10_000;
const MAX_EVENT = 64 * 1024;
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

export class Refused extends Error {}

export async function createVerifier({
  url,
  issuer = url,
  audience,
  serviceKey,
  leewaySeconds = 60, // at most 60: authgate keeps an end 60 s past its tokens' lifetime
  maxSilenceMs = 30_000, // heartbeats come every 5 s
}) {
  if (!serviceKey) throw new Error('a service key is needed to follow the revocation feed');
  const leeway = Math.min(leewaySeconds, 60);
  const base = url.replace(/\/+$/, '');
  // Refetched for a kid it lacks, at most every 2 s; revalidated after 5 min.
  const keys = createRemoteJWKSet(new URL(`${base}/.well-known/jwks.json`), {
    cooldownDuration: 2_000,
    cacheMaxAge: 300_000,
  });
  const ended = new Map(); // sid -> when its last token expires (ms)
  let cursor = null;
  // When the feed was last known complete (ms). Only a heartbeat says so:
  // authgate sends one once a catch-up is done and every 5 s, with its lag.
  let completeAt = 0;
  const closing = new AbortController();
  let ready;
  let failed;
  const started = new Promise((resolve, reject) => {
    ready = resolve;
    failed = reject;
  });

  const apply = (text) => {
    let kind = 'message';
    let data = '';
    for (const line of text.split('\n')) {
      const colon = line.indexOf(':');
      const field = colon < 0 ? line : line.slice(0, colon);
      const value = colon < 0 ? '' : line.slice(colon + 1).replace(/^ /, '');
      if (field === 'event') kind = value;
      if (field === 'data') data += value;
    }
    if (kind === 'revocation') {
      const entry = JSON.parse(data);
      const expires = Date.parse(entry.expiresAt);
      if (typeof entry.sid !== 'string' || !Number.isFinite(expires)) throw new Error('a malformed entry');
      ended.set(entry.sid, Math.max(ended.get(entry.sid) ?? 0, expires));
      cursor = entry.cursor;
    } else if (kind === 'heartbeat') {
      const beat = JSON.parse(data);
      if (!Number.isFinite(beat.lagMs) || beat.lagMs < 0) throw new Error('a malformed heartbeat');
      cursor = beat.next;
      completeAt = Math.max(completeAt, Date.now() - beat.lagMs);
      const now = Date.now();
      for (const [sid, expires] of ended) if (expires + leeway * 1000 < now) ended.delete(sid);
      ready();
    }
  };
  const listen = async () => {
    const connection = new AbortController();
    const abort = () => connection.abort();
    closing.signal.addEventListener('abort', abort);
    let idle = setTimeout(abort, IDLE_MS);
    try {
      const response = await fetch(`${base}/revocations`, {
        headers: {
          authorization: `Bearer ${serviceKey}`,
          accept: 'text/event-stream',
          ...(cursor ? { 'last-event-id': cursor } : {}),
        },
        signal: connection.signal,
      });
      // Refusals that trying again will not change fail the start at once.
      if (response.status === 401) failed(new Error('the service key was refused (AUTHGATE_SERVICE_KEYS)'));
      if ([400, 403, 404].includes(response.status)) failed(new Error(`the revocation feed answered ${response.status}`));
      // A cursor the feed no longer knows: start again from what it keeps.
      if (response.status === 400) cursor = null;
      if (!response.ok) throw new Error(`the revocation feed answered ${response.status}`);
      const decoder = new TextDecoder();
      let text = '';
      for await (const chunk of response.body) {
        clearTimeout(idle);
        idle = setTimeout(abort, IDLE_MS);
        text = (text + decoder.decode(chunk, { stream: true })).replaceAll('\r\n', '\n');
        for (let end = text.indexOf('\n\n'); end >= 0; end = text.indexOf('\n\n')) {
          apply(text.slice(0, end));
          text = text.slice(end + 2);
        }
        if (text.length > MAX_EVENT) throw new Error('an event too long');
      }
    } finally {
      clearTimeout(idle);
      closing.signal.removeEventListener('abort', abort);
    }
  };
  // The feed from what is kept of it (every end whose tokens may live),
  // then each end as it is committed, resumed after the last cursor.
  (async () => {
    let backoff = 100;
    while (!closing.signal.aborted) {
      try {
        await listen();
        backoff = 100;
      } catch (error) {
        if (!closing.signal.aborted) console.warn(`authgate's revocation feed dropped: ${error.message}`);
      }
      await sleep(backoff);
      backoff = Math.min(backoff * 2, 5_000);
    }
  })();
  const timer = setTimeout(() => failed(new Error('the revocation feed did not catch up within 10 s')), START_WITHIN_MS);
  try {
    await started;
  } catch (error) {
    closing.abort();
    throw error;
  } finally {
    clearTimeout(timer);
  }

  return {
    /** The claims, or throws (`Refused` for an ended session or a silent feed, jose's errors otherwise). */
    async verify(token) {
      const { payload } = await jwtVerify(token, keys, {
        issuer,
        audience,
        typ: 'at+jwt',
        algorithms: ['ES256', 'RS256'],
        clockTolerance: leeway,
        requiredClaims: ['sub', 'sid', 'exp'],
      });
      // Written so that anything not a number refuses too.
      if (!(Date.now() - completeAt <= maxSilenceMs)) throw new Refused('the revocation feed has been silent too long');
      if (ended.has(payload.sid)) throw new Refused('its session has ended');
      return payload;
    },
    close() {
      closing.abort();
    },
  };
}
