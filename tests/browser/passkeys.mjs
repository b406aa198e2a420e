// Passkeys in headless Chromium with its virtual authenticator (DevTools
// protocol WebAuthn domain: CTAP2, internal transport, resident keys, user
// verification): a page of the server's own origin on http://localhost
// registers a passkey through navigator.credentials.create with the options
// of startPasskeyRegistration, signs out, and signs in again through
// navigator.credentials.get. The browser's own JSON serialisation
// (PublicKeyCredential.parse*OptionsFromJSON, toJSON()) goes to the server.
// Usage: AUTHGATE_URL=http://localhost:PORT AUTHGATE_TOKEN=... AUTHGATE_EMAIL=... node passkeys.mjs
import { launch } from './chromium.mjs';

const base = process.env.AUTHGATE_URL;
const token = process.env.AUTHGATE_TOKEN;
const email = process.env.AUTHGATE_EMAIL;

const browser = await launch('localhost');
try {
  const page = await browser.newPage();
  const problems = [];
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  await page.route('**/*', (route) => {
    if (route.request().url().startsWith(`${base}/`)) return route.continue();
    problems.push(`request to another origin: ${route.request().url()}`);
    return route.abort();
  });
  // A page of the server's own origin (a secure context: localhost).
  await page.goto(`${base}/graphql`, { waitUntil: 'domcontentloaded' });

  const cdp = await page.context().newCDPSession(page);
  await cdp.send('WebAuthn.enable');
  const { authenticatorId } = await cdp.send('WebAuthn.addVirtualAuthenticator', {
    options: {
      protocol: 'ctap2',
      transport: 'internal',
      hasResidentKey: true,
      hasUserVerification: true,
      isUserVerified: true,
      automaticPresenceSimulation: true,
    },
  });

  const outcome = await page.evaluate(async ({ token, email }) => {
    const gql = async (query, variables, bearer) => {
      const headers = { 'content-type': 'application/json' };
      if (bearer) headers.authorization = `Bearer ${bearer}`;
      const reply = await fetch('/graphql', { method: 'POST', headers, body: JSON.stringify({ query, variables }) });
      const body = await reply.json();
      if (body.errors) throw new Error(`${query.slice(0, 40)}…: ${JSON.stringify(body.errors)}`);
      return body.data;
    };
    // Register: the server's options, parsed by the browser; its credential, serialised by the browser.
    const creation = (await gql('mutation { startPasskeyRegistration }', {}, token)).startPasskeyRegistration;
    const created = await navigator.credentials.create({
      publicKey: PublicKeyCredential.parseCreationOptionsFromJSON(creation),
    });
    const registered = (await gql(
      'mutation($i: FinishPasskeyRegistrationInput!) { finishPasskeyRegistration(input: $i) { id name } }',
      { i: { credential: created.toJSON(), name: 'Chromium virtual authenticator' } },
      token,
    )).finishPasskeyRegistration;
    // Sign out.
    await gql('mutation { logout }', {}, token);
    const afterLogout = await fetch('/graphql', {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
      body: JSON.stringify({ query: '{ me { id } }' }),
    }).then((r) => r.json());
    // Sign in again: no email typed, the authenticator offers the passkey.
    const started = (await gql('mutation { startPasskeySignIn { challenge options } }', {})).startPasskeySignIn;
    const asserted = await navigator.credentials.get({
      publicKey: PublicKeyCredential.parseRequestOptionsFromJSON(started.options),
    });
    const signedIn = (await gql(
      'mutation($i: FinishPasskeySignInInput!) { finishPasskeySignIn(input: $i) { token user { email } } }',
      { i: { challenge: started.challenge, credential: asserted.toJSON() } },
    )).finishPasskeySignIn;
    const me = (await gql('{ me { email passkeys { name lastUsedAt } sessions { current assuranceLevel } } }', {}, signedIn.token)).me;
    // The same ceremony again is refused: single use.
    const replay = await fetch('/graphql', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        query: 'mutation($i: FinishPasskeySignInInput!) { finishPasskeySignIn(input: $i) { token } }',
        variables: { i: { challenge: started.challenge, credential: asserted.toJSON() } },
      }),
    }).then((r) => r.json());
    return {
      registered,
      loggedOutCode: afterLogout.errors?.[0]?.extensions?.code,
      signedInEmail: signedIn.user.email,
      me,
      replayCode: replay.errors?.[0]?.extensions?.code,
      userHandle: asserted.response.userHandle !== null,
    };
  }, { token, email });

  const { credentials } = await cdp.send('WebAuthn.getCredentials', { authenticatorId });
  const check = (ok, what) => { if (!ok) throw new Error(`${what}: ${JSON.stringify(outcome)}`); };
  check(outcome.registered.name === 'Chromium virtual authenticator', 'registered');
  check(outcome.loggedOutCode === 'UNAUTHENTICATED', 'signed out');
  check(outcome.userHandle, 'a discoverable credential returns its user handle');
  check(outcome.signedInEmail === email && outcome.me.email === email, 'signed in again as the same user');
  check(outcome.me.passkeys.length === 1 && outcome.me.passkeys[0].lastUsedAt, 'the passkey is listed and used');
  check(outcome.me.sessions.some((s) => s.current && s.assuranceLevel === 2), 'two factors');
  check(outcome.replayCode === 'INVALID_TOKEN', 'a ceremony is single use');
  check(credentials.length === 1 && credentials[0].isResidentCredential, 'one resident credential in the authenticator');
  if (problems.length) throw new Error(problems.join('\n'));
  console.log(`passkeys: registered, signed out and signed in again in Chromium ${browser.version()} (virtual authenticator: ctap2, internal, resident key, user verification; sign count ${credentials[0].signCount})`);
} finally {
  await browser.close();
}
