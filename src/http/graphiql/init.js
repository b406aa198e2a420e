// Starts GraphiQL on authgate's page. A file, not an inline script, so the
// page's Content-Security-Policy can allow scripts from 'self' only.
const fetcher = GraphiQL.createFetcher({
  url: '/graphql',
  // Send the session cookie, and prove this is not a cross-site form.
  fetch: (url, init) => fetch(url, { ...init, credentials: 'include' }),
  headers: { 'X-Requested-With': 'GraphiQL' },
});
ReactDOM.createRoot(document.getElementById('graphiql')).render(
  React.createElement(GraphiQL, { fetcher, defaultEditorToolsVisibility: true, isHeadersEditorEnabled: true }),
);
