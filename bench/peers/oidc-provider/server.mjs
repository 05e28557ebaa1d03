// The peer for bench/identity.py: node `oidc-provider` configured for the flows Felles
// is measured on. Started by the benchmark as `node server.mjs <config.json>`; it listens
// on 127.0.0.1 only and prints one line, "ready <issuer>", when it accepts requests.
//
// The config file (written by bench/identity.py) holds the port, the people who may log
// in (the same synthetic people as in Felles' register, with their names), the web
// client's id, secret and redirect URI, the machine client's id and public JWK, and
// optionally `database_url` (postgresql://...): the PostgreSQL database for the state.
//
// What is configured, and why it matches Felles' side:
// - ES256 ID tokens (the web client has id_token_signed_response_alg ES256), pairwise
//   subjects (HMAC-SHA256 of sector and person, as Felles does), scope "openid profile"
//   with name claims at userinfo, PKCE S256, PAR with client_secret_basic.
// - The provider's signing keys are one RSA 2048 and one EC P-256 key, as in Felles.
// - Machine tokens: client_credentials with private_key_jwt (ES256 client assertion,
//   jti replay check in the store). Access tokens are JWTs signed ES256 for one resource
//   server, like Felles' RFC 9068 machine tokens; without a resource the provider would
//   issue opaque tokens instead.
// - Login without a person at the keyboard, in the one authorization request, like
//   Felles' TestID `login_hint=testid:<pid>_<acr>`: devInteractions are off and the
//   interaction policy starts with a prompt "testid" whose only check logs the person
//   in (session.loginAccount), loads the account, and creates and saves a grant for the
//   requested OpenID scopes. The stock "login" and "consent" prompts then find nothing
//   missing, so /auth answers 303 to the redirect URI with the code: no interaction
//   page, no extra redirects, no cookies needed. Each flow starts a new session (the
//   load generator sends no cookies), as each Felles flow starts a new SSO session.
// - State lives in oidc-provider's default in-memory adapter (an LRU of 1000 entries),
//   as in BENCHMARKING.md's peer figures: no database cost. Only with `database_url` in
//   the config does it live in PostgreSQL instead, through pg-adapter.mjs (one table, a
//   pool of 20 connections): the benchmark's separate, labelled "PostgreSQL adapter" row.
import { createHmac, generateKeyPairSync, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';

import Provider, { interactionPolicy } from 'oidc-provider';

const config = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const port = Number(config.port);
const issuer = `http://127.0.0.1:${port}`;
const people = new Map(config.people.map((p) => [p.pid, p]));
const pairwiseSalt = randomBytes(32);
const RESOURCE = 'urn:felles:bench:api';
const MACHINE_SCOPE = config.machine_scope;
// Loaded only for the PostgreSQL row; without database_url the provider gets no adapter
// option at all, as before.
const store = config.database_url
  ? await (await import('./pg-adapter.mjs')).createPgAdapter(config.database_url)
  : undefined;

function signingKey(type, options, alg, kid) {
  const { privateKey } = generateKeyPairSync(type, options);
  return { ...privateKey.export({ format: 'jwk' }), alg, use: 'sig', kid };
}

async function findAccount(_ctx, id) {
  const person = people.get(id);
  if (!person) return undefined;
  return {
    accountId: id,
    async claims(_use, _scope) {
      return {
        sub: id,
        name: person.name,
        given_name: person.given_name,
        family_name: person.family_name,
        birthdate: person.birthdate,
      };
    },
  };
}

const { base, Prompt, Check } = interactionPolicy;
const TESTID = /^testid:(\d{11})_([a-z-]+)$/;

// The headless login: runs first in the policy; never asks for an interaction itself.
const testid = new Prompt(
  { name: 'testid', requestable: false },
  new Check('testid_login', 'TestID login from login_hint', async (ctx) => {
    const { oidc } = ctx;
    const match = TESTID.exec(oidc.params.login_hint || '');
    if (oidc.session.accountId || !match) return Check.NO_NEED_TO_PROMPT;
    const account = await findAccount(ctx, match[1]);
    if (!account) return Check.NO_NEED_TO_PROMPT; // the login prompt will ask, and fail
    oidc.session.loginAccount({ accountId: account.accountId, amr: ['TestID'], acr: match[2] });
    oidc.entity('Account', account);
    const { clientId } = oidc.client;
    const grant = new oidc.provider.Grant({ accountId: account.accountId, clientId });
    grant.addOIDCScope([...oidc.requestParamOIDCScopes].join(' '));
    const grantId = await grant.save();
    oidc.session.ensureClientContainer(clientId);
    oidc.session.grantIdFor(clientId, grantId);
    oidc.entity('Grant', grant);
    return Check.NO_NEED_TO_PROMPT;
  }),
);
const policy = base();
policy.add(testid, 0);

const provider = new Provider(issuer, {
  ...(store ? { adapter: store.PgAdapter } : {}),
  clients: [
    {
      client_id: config.web_client.client_id,
      client_secret: config.web_client.client_secret,
      redirect_uris: [config.web_client.redirect_uri],
      response_types: ['code'],
      grant_types: ['authorization_code'],
      token_endpoint_auth_method: 'client_secret_basic',
      id_token_signed_response_alg: 'ES256',
      subject_type: 'pairwise',
      scope: 'openid profile',
    },
    {
      client_id: config.machine_client.client_id,
      token_endpoint_auth_method: 'private_key_jwt',
      token_endpoint_auth_signing_alg: 'ES256',
      jwks: { keys: [config.machine_client.jwk] },
      grant_types: ['client_credentials'],
      response_types: [],
      redirect_uris: [],
      scope: MACHINE_SCOPE,
    },
  ],
  jwks: {
    keys: [
      signingKey('rsa', { modulusLength: 2048 }, 'RS256', 'rsa-1'),
      signingKey('ec', { namedCurve: 'P-256' }, 'ES256', 'ec-1'),
    ],
  },
  cookies: { keys: [randomBytes(32).toString('base64url')] },
  findAccount,
  claims: {
    openid: ['sub'],
    profile: ['name', 'given_name', 'family_name', 'birthdate'],
  },
  scopes: ['openid', 'profile', MACHINE_SCOPE],
  subjectTypes: ['pairwise'],
  pairwiseIdentifier(_ctx, accountId, client) {
    return createHmac('sha256', pairwiseSalt)
      .update(`${client.sectorIdentifier}|${accountId}`)
      .digest('base64url');
  },
  pkce: { required: () => true },
  interactions: {
    policy,
    url: (_ctx, interaction) => `/interaction/${interaction.uid}`, // never reached here
  },
  features: {
    devInteractions: { enabled: false },
    clientCredentials: { enabled: true },
    pushedAuthorizationRequests: { enabled: true },
    userinfo: { enabled: true },
    introspection: { enabled: true },
    revocation: { enabled: true },
    resourceIndicators: {
      enabled: true,
      defaultResource: (ctx, _client, oneOf) =>
        ctx.oidc.params?.grant_type === 'client_credentials' ? RESOURCE : oneOf,
      useGrantedResource: () => false,
      getResourceServerInfo: (_ctx, resource) => {
        if (resource !== RESOURCE) throw new Provider.errors.InvalidTarget();
        return {
          scope: MACHINE_SCOPE,
          audience: RESOURCE,
          accessTokenTTL: 120,
          accessTokenFormat: 'jwt',
          jwt: { sign: { alg: 'ES256' } },
        };
      },
    },
  },
  ttl: {
    AccessToken: 120,
    ClientCredentials: 120,
    AuthorizationCode: 60,
    IdToken: 120,
    PushedAuthorizationRequest: 90,
    Grant: 3600,
    Session: 2 * 3600,
    Interaction: 600,
  },
  renderError(ctx, out) {
    ctx.type = 'json';
    ctx.body = out;
  },
});
provider.proxy = false;

const server = provider.listen(port, '127.0.0.1', () => {
  console.log(`ready ${issuer}`);
});
server.keepAliveTimeout = 65_000;

for (const signal of ['SIGTERM', 'SIGINT']) {
  process.on(signal, () =>
    server.close(async () => {
      await store?.close();
      process.exit(0);
    }),
  );
}
