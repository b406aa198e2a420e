// Starts GraphiQL on authgate's page. A file, not an inline script, so the
// page's Content-Security-Policy can allow scripts from 'self' only.
const fetcher = GraphiQL.createFetcher({
  url: '/graphql',
  // Send the session cookie, and prove this is not a cross-site form.
  fetch: (url, init) => fetch(url, { ...init, credentials: 'include' }),
  headers: { 'X-Requested-With': 'GraphiQL' },
});
// The first tab: the sign-in flow, two-factor step included. Run an
// operation by name; the cookie the sign-in sets is sent with later ones.
const defaultQuery = `# Sign in. With two-factor on, Login answers SECOND_FACTOR_REQUIRED with
# extensions.challenge: pass it with a code from the authenticator app (or a
# recovery code) to CompleteSignIn. Variables go in the pane below.

mutation Register($email: String!, $password: String!) {
  register(input: { email: $email, password: $password }) { token user { id email } }
}

mutation Login($email: String!, $password: String!) {
  login(input: { email: $email, password: $password }) { token expiresAt user { id email } }
}

mutation CompleteSignIn($challenge: String!, $code: String!) {
  completeSignIn(input: { challenge: $challenge, code: $code }) { token user { id email twoFactorEnabled } }
}

query Me {
  me { id email twoFactorEnabled sessions { id current authenticatedAt assuranceLevel } }
}

mutation Logout {
  logout
}
`;
const defaultVariables = JSON.stringify(
  { email: 'ada@example.com', password: 'correct horse battery', challenge: '', code: '' },
  null,
  2,
);
ReactDOM.createRoot(document.getElementById('graphiql')).render(
  React.createElement(GraphiQL, {
    fetcher,
    defaultQuery,
    defaultVariables,
    defaultEditorToolsVisibility: true,
    isHeadersEditorEnabled: true,
  }),
);
