// GraphiQL in headless Chromium: opens /graphql, puts a bearer token in the
// headers pane, runs `Me` from the editor and checks the result pane.
// Usage: AUTHGATE_URL=http://127.0.0.1:PORT AUTHGATE_TOKEN=... AUTHGATE_EMAIL=... node graphiql.mjs
import { launch } from './chromium.mjs';

const base = process.env.AUTHGATE_URL;
const token = process.env.AUTHGATE_TOKEN;
const email = process.env.AUTHGATE_EMAIL;
const screenshot = process.env.SCREENSHOT;

const browser = await launch('127.0.0.1');
try {
  const page = await browser.newPage();
  const problems = [];
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  page.on('console', (m) => m.type() === 'error' && !m.text().includes('Failed to load resource') && problems.push(`console: ${m.text()}`));
  // Nothing may come from anywhere but the server (GraphiQL is built in).
  await page.route('**/*', (route) => {
    if (route.request().url().startsWith(`${base}/`)) return route.continue();
    problems.push(`request to another origin: ${route.request().url()}`);
    return route.abort();
  });
  // Every asset must load; only the favicon may be missing. A CSP
  // violation is a console error, so it fails the test too.
  page.on('response', (r) => r.status() >= 400 && !r.url().endsWith('/favicon.ico') && problems.push(`${r.status()} ${r.url()}`));
  // GraphiQL introspects the schema on load (its docs and completion need
  // it); a refusal shows up only in the result pane, which Run overwrites.
  const introspection = page.waitForResponse(
    (r) => r.request().method() === 'POST' && r.request().postDataJSON()?.operationName === 'IntrospectionQuery',
  );
  await page.goto(`${base}/graphql`, { waitUntil: 'networkidle' });
  const schema = await (await introspection).json();
  if (!schema?.data?.__schema?.types?.length) throw new Error(`GraphiQL could not load the schema: ${JSON.stringify(schema)}`);
  await page.waitForSelector('.graphiql-query-editor .CodeMirror', { timeout: 15000 });

  // The first tab shows the sign-in flow, the second step included.
  const first = await page.evaluate(() => document.querySelector('.graphiql-query-editor .CodeMirror').CodeMirror.getValue());
  for (const operation of ['mutation Login', 'mutation CompleteSignIn', 'query Me', 'mutation Logout']) {
    if (!first.includes(operation)) throw new Error(`the default tab lacks ${operation}:\n${first}`);
  }
  // The query editor and the headers pane are CodeMirror instances.
  await page.evaluate(() => {
    document.querySelector('.graphiql-query-editor .CodeMirror').CodeMirror.setValue('query Me {\n  me { id email }\n}\n');
  });
  // GraphiQL parses the editor 100 ms after a change (debounced) and sends
  // the operation name it parsed last: clicking Run sooner sends the new
  // document with the old tab's first name ("Register"), which the server
  // rightly refuses. On an idle machine the clicks below take less than that.
  await page.waitForFunction(
    () => document.querySelector('.graphiql-query-editor .CodeMirror').CodeMirror.operationName === 'Me',
    null,
    { timeout: 15000 },
  );
  await page.getByRole('button', { name: /headers/i }).first().click();
  await page.waitForSelector('.graphiql-editor-tool .graphiql-editor:not(.hidden) .CodeMirror');
  await page.evaluate((value) => {
    const editors = [...document.querySelectorAll('.graphiql-editor-tool .graphiql-editor')];
    const headers = editors.find((e) => !e.classList.contains('hidden'));
    headers.querySelector('.CodeMirror').CodeMirror.setValue(value);
  }, JSON.stringify({ Authorization: `Bearer ${token}` }));
  await page.click('.graphiql-execute-button');
  // Wait for any answer, then say what it was if it is not the expected one.
  await page.waitForFunction(
    () => document.querySelector('.result-window .CodeMirror')?.CodeMirror?.getValue()?.trim(),
    null,
    { timeout: 15000 },
  ).catch((e) => {
    throw new Error(`no answer in the result pane: ${e.message}\n${problems.join('\n')}`);
  });
  const result = await page.evaluate(() => document.querySelector('.result-window .CodeMirror').CodeMirror.getValue());
  const parsed = JSON.parse(result);
  if (parsed?.data?.me?.email !== email) throw new Error(`unexpected result: ${result}`);
  // The dialogs inject styles of their own: open one, so a CSP that blocks
  // them shows up as a console error here.
  await page.getByRole('button', { name: /settings/i }).first().click();
  await page.waitForSelector('[role="dialog"]', { timeout: 15000 });
  await page.waitForTimeout(300);
  if (screenshot) await page.screenshot({ path: screenshot });
  await page.keyboard.press('Escape');
  if (problems.length) throw new Error(problems.join('\n'));
  console.log(`graphiql: ran Me with a bearer header in Chromium: ${parsed.data.me.email}`);
} finally {
  await browser.close();
}
