// A real OpenID provider (oidc-provider, from npm) on 127.0.0.1, for tests: the authorization
// code flow with PKCE, ID tokens signed with the key it is given, and a login page that asks only
// for the account's name (no password, no consent page), so a browser or an HTTP client completes
// the interaction by posting one form.
//
// Usage: node oidc_provider.mjs CONFIG.json, where the JSON holds
//   module:   the path of oidc-provider's lib/index.js
//   port:     the port to listen on (the issuer is http://127.0.0.1:PORT)
//   clients:  oidc-provider client metadata (client_id, client_secret, redirect_uris, ...)
//   accounts: {login: {claims of that account besides sub, which is the login}}
//   jwks:     {keys: [private JWKs]} signing the ID tokens
//   misissue: {login: "tamper" | "expired"}: the token endpoint hands that account an ID token
//             whose payload was altered after signing, or one re-signed as expired five minutes
//             ago (what a relying party must refuse)
// It prints "ready ISSUER" once it accepts requests, and serves until killed.

import { readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { pathToFileURL } from 'node:url';

const config = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const { default: Provider } = await import(config.module);
// oidc-provider's own JOSE library, beside it in node_modules.
const jose = await import(new URL('../../jose/dist/webapi/index.js', pathToFileURL(config.module)));
const issuer = `http://127.0.0.1:${config.port}`;
const escape = (text) => String(text).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

const provider = new Provider(issuer, {
  clients: config.clients,
  jwks: config.jwks,
  cookies: { keys: ['preflight-test-provider-cookie-key'] },
  claims: { openid: ['sub'], email: ['email', 'email_verified'], groups: ['groups'], profile: ['name'] },
  // The claims of the scopes asked for go into the ID token itself (not only to userinfo).
  conformIdTokenClaims: false,
  features: { devInteractions: { enabled: false } },
  pkce: { required: () => true },
  async findAccount(ctx, id) {
    const claims = config.accounts[id];
    if (!claims) return undefined;
    return { accountId: id, claims: async () => ({ ...claims, sub: id }) };
  },
  // Every client here is first-party: grant what it asks for without a consent page.
  async loadExistingGrant(ctx) {
    const grantId = ctx.oidc.result?.consent?.grantId || ctx.oidc.session.grantIdFor(ctx.oidc.client.clientId);
    if (grantId) return ctx.oidc.provider.Grant.find(grantId);
    const grant = new ctx.oidc.provider.Grant({
      clientId: ctx.oidc.client.clientId,
      accountId: ctx.oidc.session.accountId,
    });
    grant.addOIDCScope(ctx.oidc.params.scope || 'openid');
    await grant.save();
    return grant;
  },
});

function page(res, status, uid, message) {
  res.writeHead(status, { 'content-type': 'text/html; charset=utf-8' });
  res.end(`<!doctype html><html lang="en"><head><title>Test provider sign-in</title></head><body>
<main><h1>Test provider sign-in</h1>${message ? `<p role="alert">${escape(message)}</p>` : ''}
<form method="post" action="/interaction/${escape(uid)}/login">
<label for="login">Account</label><input id="login" name="login" autocomplete="username">
<button type="submit" id="submit">Sign in</button></form></main></body></html>`);
}

async function interaction(req, res, uid) {
  const details = await provider.interactionDetails(req, res);
  if (details.uid !== uid) throw new Error('interaction mismatch');
  if (req.method === 'GET') return page(res, 200, uid, '');
  let body = '';
  for await (const chunk of req) body += chunk;
  const login = new URLSearchParams(body).get('login') || '';
  if (!Object.hasOwn(config.accounts, login)) return page(res, 400, uid, 'no such account');
  return provider.interactionFinished(req, res, { login: { accountId: login } }, { mergeWithLastSubmission: false });
}

async function misissued(body) {
  const answer = JSON.parse(body);
  if (!answer.id_token) return body;
  const [header, payload, signature] = answer.id_token.split('.');
  const claims = JSON.parse(Buffer.from(payload, 'base64url').toString());
  const mode = (config.misissue || {})[claims.sub];
  if (mode === 'tamper') {
    const altered = Buffer.from(JSON.stringify({ ...claims, sub: 'rita' })).toString('base64url');
    answer.id_token = `${header}.${altered}.${signature}`;
  } else if (mode === 'expired') {
    const now = Math.floor(Date.now() / 1000);
    const [jwk] = config.jwks.keys;
    answer.id_token = await new jose.SignJWT({ ...claims, iat: now - 900, exp: now - 300 })
      .setProtectedHeader({ alg: 'RS256', kid: jwk.kid })
      .sign(await jose.importJWK(jwk, 'RS256'));
  }
  return JSON.stringify(answer);
}

// The token endpoint's answers pass through `misissued` before they leave.
function interceptTokens(res) {
  const end = res.end.bind(res);
  res.end = (chunk, ...rest) => {
    if (!chunk || res.statusCode !== 200) return end(chunk, ...rest);
    misissued(chunk.toString()).then((body) => {
      res.setHeader('content-length', Buffer.byteLength(body));
      end(body);
    });
    return res;
  };
}

const callback = provider.callback();
const server = createServer((req, res) => {
  const match = /^\/interaction\/([^/?]+)(\/login)?/.exec(req.url);
  if (req.method === 'POST' && req.url.startsWith('/token')) interceptTokens(res);
  if (!match) return callback(req, res);
  return interaction(req, res, match[1]).catch((err) => {
    res.writeHead(400, { 'content-type': 'text/plain' });
    res.end(String(err && err.message));
  });
});
server.listen(config.port, '127.0.0.1', () => console.log(`ready ${issuer}`));
