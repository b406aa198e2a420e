// Registers, asks `me` and logs out against a running authgate, with types
// generated from schema.graphql: a wrong field or variable fails `tsc`.
import { ClientError, GraphQLClient } from 'graphql-request';
import { LogoutDocument, MeDocument, RegisterDocument } from './generated.js';

const url = process.env.AUTHGATE_URL ?? 'http://127.0.0.1:8000/graphql';
const email = `ts-client-${Date.now()}@example.com`;
const password = 'typed documents catch mistakes early';

const anonymous = new GraphQLClient(url);
const { register } = await anonymous.request(RegisterDocument, { input: { email, password, name: 'Type Script' } });
console.log(`registered ${register.user.email}; session until ${register.expiresAt}`);

const signedIn = new GraphQLClient(url, { headers: { authorization: `Bearer ${register.token}` } });
const { me } = await signedIn.request(MeDocument);
if (me.email !== email || me.name !== 'Type Script' || me.emailVerified) {
  throw new Error(`unexpected me: ${JSON.stringify(me)}`);
}
console.log(`me: ${me.id} ${me.email}, created ${me.createdAt}`);

const { logout } = await signedIn.request(LogoutDocument);
if (!logout) throw new Error('logout answered false');

try {
  await signedIn.request(MeDocument);
  throw new Error('me still answered after logout');
} catch (error) {
  const code = error instanceof ClientError ? error.response.errors?.[0]?.extensions?.['code'] : undefined;
  if (code !== 'UNAUTHENTICATED') throw error;
}
console.log('typescript client: register, me, logout: ok');
