// Drives Felles' OpenID Connect provider with openid-client v6 (panva), a relying-party
// library nobody at Felles wrote, and prints one JSON object with what it observed.
//
// Everything protocol-shaped goes through openid-client's own API: discovery, PAR,
// PKCE, state and nonce, the code grant (RFC 9207 `iss` check, ID token claims and,
// with enableNonRepudiationChecks, its signature against the provider's JWKS),
// userinfo with the expected subject, refresh, introspection, revocation and the
// RP-initiated logout URL. Only the browser's part is plain `fetch`: following the
// authorization URL (TestID's login_hint logs in without pages) with redirect "manual"
// and keeping the SSO cookie, as a browser would.
//
// Input (environment): FELLES_ISSUER, CLIENT_ID, CLIENT_SECRET, REDIRECT_URI,
// POST_LOGOUT_REDIRECT_URI, PID, and optionally ACR (default idporten-loa-high).
// Output: one JSON object on stdout; exit code 0 when the flow ran to its end (the
// Python test decides whether what was observed is right), 1 on an unexpected error.

import * as client from "openid-client";

function required(name) {
  const value = process.env[name];
  if (!value) {
    throw new Error(`${name} is not set`);
  }
  return value;
}

const issuer = required("FELLES_ISSUER");
const clientId = required("CLIENT_ID");
const clientSecret = required("CLIENT_SECRET");
const redirectUri = required("REDIRECT_URI");
const postLogoutRedirectUri = required("POST_LOGOUT_REDIRECT_URI");
const pid = required("PID");
const acr = process.env.ACR || "idporten-loa-high";

/** A browser's cookie jar for one origin: just enough for the SSO cookie. */
class CookieJar {
  constructor() {
    this.cookies = new Map();
  }

  store(response) {
    const set = [];
    for (const line of response.headers.getSetCookie()) {
      const [pair, ...attributes] = line.split(";");
      const eq = pair.indexOf("=");
      const name = pair.slice(0, eq).trim();
      const value = pair.slice(eq + 1).trim();
      const expired = attributes.some((a) => {
        const [key, val] = a.trim().split("=");
        const k = key.toLowerCase();
        return (
          (k === "max-age" && Number(val) <= 0) || (k === "expires" && Date.parse(val) < Date.now())
        );
      });
      set.push({
        name,
        deleted: expired || value === "" || value === '""',
        attributes: attributes
          .map((a) => a.trim().toLowerCase())
          .filter((a) => !a.startsWith("expires=")),
      });
      if (expired || value === "" || value === '""') {
        this.cookies.delete(name);
      } else {
        this.cookies.set(name, value);
      }
    }
    return set;
  }

  header(extra = {}) {
    const all = new Map([...this.cookies, ...Object.entries(extra)]);
    return [...all].map(([k, v]) => `${k}=${v}`).join("; ");
  }
}

/** Run a step that may be refused; describe the refusal instead of throwing. */
async function attempt(fn) {
  try {
    return { ok: true, value: await fn() };
  } catch (err) {
    return {
      ok: false,
      name: err?.name,
      code: err?.code,
      error: err?.error ?? err?.cause?.error,
      error_description: err?.error_description ?? err?.cause?.error_description,
      status: err?.status ?? err?.cause?.status,
      message: String(err?.message ?? err),
      cause: describeCause(err?.cause),
    };
  }
}

/** An error's cause as JSON (a Response, WWW-Authenticate challenges, an Error ...). */
function describeCause(cause) {
  if (cause === undefined) {
    return undefined;
  }
  if (cause instanceof Response) {
    return { status: cause.status, www_authenticate: cause.headers.get("www-authenticate") };
  }
  if (cause instanceof Error) {
    return String(cause.message);
  }
  try {
    return JSON.parse(JSON.stringify(cause));
  } catch {
    return String(cause);
  }
}

function jwtHeader(token) {
  return JSON.parse(Buffer.from(token.split(".")[0], "base64url").toString("utf8"));
}

/** Follow one authorization URL as a browser would, without following the redirect. */
async function browse(url, jar, extraCookies = {}) {
  const response = await fetch(url, {
    redirect: "manual",
    headers: { cookie: jar.header(extraCookies), accept: "text/html" },
  });
  const cookies = jar.store(response);
  await response.arrayBuffer();
  const location = response.headers.get("location");
  return { status: response.status, location, cookies };
}

function queryOf(location) {
  return location ? Object.fromEntries(new URL(location).searchParams) : {};
}

// What was observed so far; printed even when a step fails unexpectedly.
const observed = { library: "openid-client", pid, acr };

async function main() {
  const jar = new CookieJar();

  // Discovery (OpenID Connect Discovery 1.0). The test server is http on loopback, so
  // the library's https-only rule is lifted; ID token signatures are checked too.
  const config = await client.discovery(
    new URL(issuer),
    clientId,
    { redirect_uris: [redirectUri], post_logout_redirect_uris: [postLogoutRedirectUri] },
    client.ClientSecretBasic(clientSecret),
    { execute: [client.allowInsecureRequests, client.enableNonRepudiationChecks] },
  );
  const metadata = config.serverMetadata();
  observed.discovery = {
    issuer: metadata.issuer,
    pushed_authorization_request_endpoint: metadata.pushed_authorization_request_endpoint,
    authorization_response_iss_parameter_supported:
      metadata.authorization_response_iss_parameter_supported,
    supportsPKCE: metadata.supportsPKCE(),
  };

  /** A code flow without PAR, answered from the SSO session (prompt=none). */
  async function silentLogin(extraCookies = {}) {
    const verifier = client.randomPKCECodeVerifier();
    const checks = {
      pkceCodeVerifier: verifier,
      expectedState: client.randomState(),
      expectedNonce: client.randomNonce(),
    };
    const url = client.buildAuthorizationUrl(config, {
      redirect_uri: redirectUri,
      scope: "openid",
      code_challenge: await client.calculatePKCECodeChallenge(verifier),
      code_challenge_method: "S256",
      state: checks.expectedState,
      nonce: checks.expectedNonce,
      prompt: "none",
    });
    const answer = await browse(url, jar, extraCookies);
    return { ...answer, callback: new URL(answer.location), checks };
  }

  // 1. Authorization with PAR (RFC 9126), PKCE S256 (RFC 7636), state and nonce.
  const codeVerifier = client.randomPKCECodeVerifier();
  const codeChallenge = await client.calculatePKCECodeChallenge(codeVerifier);
  const state = client.randomState();
  const nonce = client.randomNonce();
  const parUrl = await client.buildAuthorizationUrlWithPAR(config, {
    redirect_uri: redirectUri,
    scope: "openid profile",
    code_challenge: codeChallenge,
    code_challenge_method: "S256",
    state,
    nonce,
    acr_values: acr,
    login_hint: `testid:${pid}_${acr}`,
  });
  observed.par = { authorize_params: [...parUrl.searchParams.keys()].sort() };

  const login = await browse(parUrl, jar);
  const callback = new URL(login.location);
  const callbackQuery = queryOf(login.location);
  observed.authorize = {
    status: login.status,
    location_base: `${callback.origin}${callback.pathname}`,
    params: Object.keys(callbackQuery).sort(),
    iss: callbackQuery.iss,
    state_matches: callbackQuery.state === state,
    cookies: login.cookies,
  };
  const ssoCookies = Object.fromEntries(jar.cookies);

  const tokens = await client.authorizationCodeGrant(config, callback, {
    pkceCodeVerifier: codeVerifier,
    expectedState: state,
    expectedNonce: nonce,
    idTokenExpected: true,
  });
  const claims = tokens.claims();
  observed.tokens = {
    token_type: tokens.token_type,
    scope: tokens.scope,
    expires_in: tokens.expiresIn(),
    has_refresh_token: typeof tokens.refresh_token === "string",
    id_token: tokens.id_token,
    id_token_header: jwtHeader(tokens.id_token),
    access_token_header: jwtHeader(tokens.access_token),
  };
  observed.id_token_claims = claims;

  // 2. UserInfo, with the subject the ID token named (OIDC Core 5.3.2).
  observed.userinfo = await client.fetchUserInfo(config, tokens.access_token, claims.sub);

  // 3. Introspection (RFC 7662) of both tokens.
  observed.introspect_access = await client.tokenIntrospection(config, tokens.access_token);
  observed.introspect_refresh = await client.tokenIntrospection(config, tokens.refresh_token);

  // 4. Refresh with rotation; the old refresh token must not work a second time.
  const refreshed = await client.refreshTokenGrant(config, tokens.refresh_token);
  observed.refresh = {
    ok: true,
    rotated:
      typeof refreshed.refresh_token === "string" &&
      refreshed.refresh_token !== tokens.refresh_token,
    new_access_token: refreshed.access_token !== tokens.access_token,
    scope: refreshed.scope,
    id_token: refreshed.id_token ?? null,
  };
  observed.userinfo_after_refresh = await client.fetchUserInfo(
    config,
    refreshed.access_token,
    claims.sub,
  );
  observed.refresh_reuse = await attempt(() =>
    client.refreshTokenGrant(config, tokens.refresh_token),
  );
  // Reuse means someone has a copy: the whole family (the rotated token too) is dead.
  observed.introspect_rotated_after_reuse = await client.tokenIntrospection(
    config,
    refreshed.refresh_token,
  );
  observed.refresh_rotated_after_reuse = await attempt(() =>
    client.refreshTokenGrant(config, refreshed.refresh_token),
  );

  // 5. SSO: prompt=none with the session cookie gets a code without a login (no PAR).
  const silent = await silentLogin();
  const silentTokens = await client.authorizationCodeGrant(config, silent.callback, {
    ...silent.checks,
    idTokenExpected: true,
  });
  observed.sso = { status: silent.status, id_token_claims: silentTokens.claims() };

  // 6. The same code a second time is refused, and what it gave is revoked
  // (RFC 6749 4.1.2: the server SHOULD revoke tokens issued from that code).
  observed.code_replay = await attempt(() =>
    client.authorizationCodeGrant(config, silent.callback, silent.checks),
  );
  observed.introspect_after_code_replay = {
    access: await client.tokenIntrospection(config, silentTokens.access_token),
    refresh: await client.tokenIntrospection(config, silentTokens.refresh_token),
  };

  // 7. Revocation (RFC 7009) of an access token: introspection and userinfo refuse it.
  const third = await silentLogin();
  const thirdTokens = await client.authorizationCodeGrant(config, third.callback, third.checks);
  await client.tokenRevocation(config, thirdTokens.access_token);
  observed.introspect_revoked_access = await client.tokenIntrospection(
    config,
    thirdTokens.access_token,
  );
  observed.userinfo_revoked = await attempt(() =>
    client.fetchUserInfo(config, thirdTokens.access_token, claims.sub),
  );
  observed.introspect_refresh_before_logout = await client.tokenIntrospection(
    config,
    thirdTokens.refresh_token,
  );

  // 8. RP-initiated logout (OIDC RP-Initiated Logout 1.0), as the browser follows it.
  const logoutState = client.randomState();
  const endSessionUrl = client.buildEndSessionUrl(config, {
    id_token_hint: tokens.id_token,
    post_logout_redirect_uri: postLogoutRedirectUri,
    state: logoutState,
  });
  const logoutResponse = await fetch(endSessionUrl, {
    redirect: "manual",
    headers: { cookie: jar.header(), accept: "text/html" },
  });
  const logoutCookies = jar.store(logoutResponse);
  const logoutBody = await logoutResponse.text();
  const expectedReturn = `${postLogoutRedirectUri}?state=${logoutState}`;
  observed.logout = {
    status: logoutResponse.status,
    location: logoutResponse.headers.get("location"),
    cookies: logoutCookies,
    returns_to_client_with_state:
      logoutResponse.headers.get("location") === expectedReturn ||
      logoutBody.includes(expectedReturn),
  };

  // 9. After logout: the session's refresh tokens are dead, and a silent login is
  // refused even when the browser still presents the old SSO cookie.
  observed.refresh_after_logout = await attempt(() =>
    client.refreshTokenGrant(config, thirdTokens.refresh_token),
  );
  const after = await silentLogin(ssoCookies);
  observed.prompt_none_after_logout = {
    status: after.status,
    sent_old_cookie: Object.keys(ssoCookies).length > 0,
    query: queryOf(after.location),
    // The library's reading of that authorization response (it checks `iss` first).
    library: await attempt(() =>
      client.authorizationCodeGrant(config, after.callback, after.checks),
    ),
  };

  return observed;
}

main().then(
  (observed) => {
    process.stdout.write(`${JSON.stringify(observed)}\n`);
  },
  (err) => {
    process.stdout.write(
      `${JSON.stringify({
        ...observed,
        fatal: String(err?.stack ?? err),
        name: err?.name,
        code: err?.code,
        error: err?.error,
        error_description: err?.error_description,
        cause: describeCause(err?.cause),
      })}\n`,
    );
    process.exitCode = 1;
  },
);
