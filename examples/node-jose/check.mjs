// The recipe against a live authgate (run by .ci/node-jose.sh): a token
// from authgate verifies with jose; another audience and a changed claim
// are refused; after a sign-out the same token is refused through the
// revocation feed. Prints what it measured; exits non-zero on any failure.
import assert from 'node:assert/strict';
import { createVerifier, Refused } from './authgate-verify.mjs';

const base = process.env.AUTHGATE_URL.replace(/\/+$/, '');
const audience = process.env.AUDIENCE;
const serviceKey = process.env.AUTHGATE_SERVICE_KEY;

async function graphql(query, variables = {}, session) {
  const response = await fetch(`${base}/graphql`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...(session ? { authorization: `Bearer ${session}` } : {}) },
    body: JSON.stringify({ query, variables }),
  });
  const body = await response.json();
  assert.equal(body.errors, undefined, JSON.stringify(body.errors));
  return body.data;
}

const email = `jose-${Date.now()}@example.com`;
const registered = await graphql(
  'mutation ($input: RegisterInput!) { register(input: $input) { token user { id } } }',
  { input: { email, password: 'correct horse battery staple', name: 'Jose' } },
);
const session = registered.register.token;
const mint = 'mutation ($audience: String!) { accessToken(audience: $audience) { token } }';
const { token } = (await graphql(mint, { audience }, session)).accessToken;

const verifier = await createVerifier({ url: base, audience, serviceKey });
const claims = await verifier.verify(token);
assert.equal(claims.sub, registered.register.user.id);
assert.equal(typeof claims.sid, 'string');

const elsewhere = await createVerifier({ url: base, audience: 'https://other.example.com', serviceKey });
await assert.rejects(elsewhere.verify(token), /aud/, 'another audience');
elsewhere.close();
const [header, payload, signature] = token.split('.');
const forged = JSON.parse(Buffer.from(payload, 'base64url'));
forged.sub = '00000000-0000-0000-0000-000000000000';
await assert.rejects(
  verifier.verify(`${header}.${Buffer.from(JSON.stringify(forged)).toString('base64url')}.${signature}`),
  /signature/,
  'a changed claim',
);
const unsigned = `${Buffer.from(JSON.stringify({ alg: 'none', typ: 'at+jwt' })).toString('base64url')}.${payload}.`;
await assert.rejects(verifier.verify(unsigned), 'alg none');

await graphql('mutation { logout }', {}, session);
const signedOut = Date.now();
let refused;
for (let i = 0; i < 250 && !refused; i++) {
  try {
    await verifier.verify(token);
    await new Promise((resolve) => setTimeout(resolve, 20));
  } catch (error) {
    refused = error;
  }
}
assert.ok(refused instanceof Refused, `refused within 5 s of the sign-out through the feed: ${refused}`);
assert.match(refused.message, /session has ended/);
console.log(`node jose recipe: verified, refused another audience, a changed claim and alg none; refused ${Date.now() - signedOut} ms after the sign-out`);
verifier.close();
