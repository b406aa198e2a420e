// Verify authgate's access tokens in a Node service with `jose` (npm), and
// refuse the tokens of sessions that ended: copy this file into your
// service. What it checks is what the Rust crate `authgate-verify` checks
// (docs/tokens.md): the signature with a published key and that key's
// algorithm, `typ: at+jwt`, `iss`, `aud`, `exp`/`nbf` with a leeway, and
// the session (`sid`) against the revocation feed, followed as a stream.
// When the feed has been silent (or lagging) for longer than `maxSilenceMs`,
// every token is refused: it can no longer know which sessions ended.
//
//   const verifier = await createVerifier({
//     url: 'https://auth.example.com',          // authgate (AUTHGATE_PUBLIC_URL)
//     audience: 'https://api.example.com',      // one of AUTHGATE_JWT_AUDIENCES
//     serviceKey: process.env.AUTHGATE_SERVICE_KEY, // one of AUTHGATE_SERVICE_KEYS
//   });
//   const claims = await verifier.verify(token); // throws when refused
import { createRemoteJWKSet, jwtVerify } from 'jose';

const PAGE = 1000;
const IDLE_MS = 15_000; // heartbeats come every 5 s
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

export class Refused extends Error {}

export async function createVerifier({
  url,
  issuer = url,
  audience,
  serviceKey,
  leewaySeconds = 60,
  maxSilenceMs = 300_000, // authgate's AUTHGATE_JWT_TTL
}) {
  if (!serviceKey) throw new Error('a service key is needed to follow the revocation feed');
  const base = url.replace(/\/+$/, '');
  // Refetched for a kid it lacks, at most every 2 s; revalidated after 5 min.
  const keys = createRemoteJWKSet(new URL(`${base}/.well-known/jwks.json`), {
    cooldownDuration: 2_000,
    cacheMaxAge: 300_000,
  });
  const ended = new Map(); // sid -> when its last token expires (ms)
  let cursor = null;
  let completeAt = 0; // the feed had sent every end committed before this (ms)
  const closing = new AbortController();
  const headers = { authorization: `Bearer ${serviceKey}` };

  const heard = (lagMs = 0) => {
    completeAt = Math.max(completeAt, Date.now() - lagMs);
  };
  const add = (entry) => {
    ended.set(entry.sid, Date.parse(entry.expiresAt));
    cursor = entry.cursor;
  };
  const prune = () => {
    const now = Date.now();
    for (const [sid, expires] of ended) if (expires + leewaySeconds * 1000 < now) ended.delete(sid);
  };

  // Every session that ended while its tokens may live, page by page.
  for (;;) {
    const query = new URLSearchParams({ limit: String(PAGE) });
    if (cursor) query.set('after', cursor);
    const response = await fetch(`${base}/revocations?${query}`, { headers, signal: AbortSignal.timeout(10_000) });
    if (!response.ok) throw new Error(`the revocation feed answered ${response.status}`);
    const page = await response.json();
    page.entries.forEach(add);
    cursor = page.next;
    if (page.entries.length < PAGE) break;
  }
  heard();

  // Then each end as it is committed, resumed after the last cursor.
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
      add(JSON.parse(data));
      heard();
    } else if (kind === 'heartbeat') {
      const beat = JSON.parse(data);
      cursor = beat.next;
      heard(beat.lagMs ?? 0);
      prune();
    }
  };
  const listen = async () => {
    const connection = new AbortController();
    const abort = () => connection.abort();
    closing.signal.addEventListener('abort', abort);
    let idle = setTimeout(abort, IDLE_MS);
    try {
      const response = await fetch(`${base}/revocations`, {
        headers: { ...headers, accept: 'text/event-stream', ...(cursor ? { 'last-event-id': cursor } : {}) },
        signal: connection.signal,
      });
      if (!response.ok) throw new Error(`the revocation feed answered ${response.status}`);
      const decoder = new TextDecoder();
      let text = '';
      for await (const chunk of response.body) {
        clearTimeout(idle);
        idle = setTimeout(abort, IDLE_MS);
        text += decoder.decode(chunk, { stream: true }).replaceAll('\r\n', '\n');
        for (let end = text.indexOf('\n\n'); end >= 0; end = text.indexOf('\n\n')) {
          apply(text.slice(0, end));
          text = text.slice(end + 2);
        }
      }
    } finally {
      clearTimeout(idle);
      closing.signal.removeEventListener('abort', abort);
    }
  };
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

  return {
    /** The claims, or throws (`Refused` for an ended session or a silent feed, jose's errors otherwise). */
    async verify(token) {
      const { payload } = await jwtVerify(token, keys, {
        issuer,
        audience,
        typ: 'at+jwt',
        algorithms: ['ES256', 'RS256'],
        clockTolerance: leewaySeconds,
        requiredClaims: ['sub', 'sid', 'exp'],
      });
      if (Date.now() - completeAt > maxSilenceMs) throw new Refused('the revocation feed has been silent too long');
      if (ended.has(payload.sid)) throw new Refused('its session has ended');
      return payload;
    },
    close() {
      closing.abort();
    },
  };
}
