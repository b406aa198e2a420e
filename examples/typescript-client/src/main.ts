// Registers, asks `me`, turns two-factor on, signs in with the second step
// and logs out against a running authgate, with types generated from
// schema.graphql: a wrong field or variable fails `tsc`.
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { ClientError, GraphQLClient } from 'graphql-request';
import { Secret, TOTP } from 'otpauth';
import {
  CompleteSignInDocument,
  ConfirmTotpSetupDocument,
  LoginDocument,
  LogoutDocument,
  MeDocument,
  RegisterDocument,
  SecurityOverviewDocument,
  StartPasskeySignInDocument,
  StartTotpSetupDocument,
  VerifyEmailDocument,
} from './generated.js';

const url = process.env.AUTHGATE_URL ?? 'http://127.0.0.1:8000/graphql';
const email = `ts-client-${Date.now()}@example.com`;
const password = 'typed documents catch mistakes early';

/**
 * The token of the verification link mailed to `to`, read from the
 * development outbox (`AUTHGATE_OUTBOX`, the server's `data/outbox`): what
 * the user does by opening the mail. Waits up to 10 s for it.
 */
async function mailedToken(to: string): Promise<string> {
  const outbox = process.env.AUTHGATE_OUTBOX ?? 'data/outbox';
  for (let i = 0; i < 100; i++) {
    for (const name of (await readdir(outbox).catch(() => [])).filter((n) => n.endsWith('.eml'))) {
      // Quoted-printable: soft line breaks and =XX escapes.
      const mail = (await readFile(join(outbox, name), 'utf8'))
        .replace(/=\r?\n/g, '')
        .replace(/=([0-9A-F]{2})/g, (_, hex: string) => String.fromCharCode(parseInt(hex, 16)));
      const token = mail.includes(`To: ${to}`) ? /verify-email\?token=([A-Za-z0-9_-]+)/.exec(mail)?.[1] : undefined;
      if (token) return token;
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`no verification mail to ${to} in ${outbox}`);
}

/** `extensions` of a GraphQL error the server answered with. */
function extensionsOf(error: unknown): Record<string, unknown> | undefined {
  return error instanceof ClientError ? error.response.errors?.[0]?.extensions : undefined;
}

const anonymous = new GraphQLClient(url);
const { register } = await anonymous.request(RegisterDocument, { input: { email, password, name: 'Type Script' } });
console.log(`registered ${register.user.email}; session until ${register.expiresAt}`);

const signedIn = new GraphQLClient(url, { headers: { authorization: `Bearer ${register.token}` } });
const { me } = await signedIn.request(MeDocument);
if (me.email !== email || me.name !== 'Type Script' || me.emailVerified) {
  throw new Error(`unexpected me: ${JSON.stringify(me)}`);
}
console.log(`me: ${me.id} ${me.email}, created ${me.createdAt}`);

// Only a proved address may add a second factor: follow the mailed link.
const { verifyEmail } = await anonymous.request(VerifyEmailDocument, { token: await mailedToken(email) });
if (!verifyEmail.emailVerified) throw new Error('verifyEmail: the address is not shown as verified');
console.log(`address verified`);

// Two-factor: the app the user scans the QR code with is played here by
// `otpauth`, computing codes from the secret.
const { startTotpSetup } = await signedIn.request(StartTotpSetupDocument);
const app = new TOTP({ secret: Secret.fromBase32(startTotpSetup.secret), digits: 6, period: 30 });
const { confirmTotpSetup: recoveryCodes } = await signedIn.request(ConfirmTotpSetupDocument, {
  code: app.generate(),
});
console.log(`two-factor on; ${recoveryCodes.length} recovery codes to keep somewhere safe`);

// Signing in now takes two steps: the password gives a challenge...
let challenge: string | undefined;
try {
  await anonymous.request(LoginDocument, { input: { email, password } });
  throw new Error('login signed in without the second factor');
} catch (error) {
  const extensions = extensionsOf(error);
  if (extensions?.['code'] !== 'SECOND_FACTOR_REQUIRED') throw error;
  challenge = String(extensions['challenge']);
}
// ...and a code completes it. A code is accepted once, and only for a step
// newer than the last one accepted: send the app's next step's code (the
// server accepts one step either side of now) instead of waiting for it.
const { completeSignIn } = await anonymous.request(CompleteSignInDocument, {
  input: { challenge, code: app.generate({ timestamp: Date.now() + 30_000 }) },
});
if (!completeSignIn.user.twoFactorEnabled) throw new Error('completeSignIn: two-factor not shown as on');
console.log(`signed in with two factors as ${completeSignIn.user.email}`);

const twoFactor = new GraphQLClient(url, { headers: { authorization: `Bearer ${completeSignIn.token}` } });
const { me: overview } = await twoFactor.request(SecurityOverviewDocument);
const current = overview.sessions.find((s) => s.current);
if (!overview.twoFactorEnabled || current?.assuranceLevel !== 2 || overview.passkeys.length !== 0) {
  throw new Error(`unexpected security overview: ${JSON.stringify(overview)}`);
}

// Passkeys need a browser (navigator.credentials; see tests/browser/passkeys.mjs):
// here only the typed start of a sign-in, whose options a page would hand to
// PublicKeyCredential.parseRequestOptionsFromJSON.
const { startPasskeySignIn } = await anonymous.request(StartPasskeySignInDocument);
const options = startPasskeySignIn.options as { rpId?: string; userVerification?: string };
if (!startPasskeySignIn.challenge || options.userVerification !== 'required') {
  throw new Error(`unexpected passkey options: ${JSON.stringify(startPasskeySignIn)}`);
}
console.log(`passkey sign-in offered for ${options.rpId}`);

for (const client of [signedIn, twoFactor]) {
  const { logout } = await client.request(LogoutDocument);
  if (!logout) throw new Error('logout answered false');
}

try {
  await signedIn.request(MeDocument);
  throw new Error('me still answered after logout');
} catch (error) {
  if (extensionsOf(error)?.['code'] !== 'UNAUTHENTICATED') throw error;
}
console.log('typescript client: register, me, two-factor sign-in, security overview, passkey start, logout: ok');
