// Passkeys (WebAuthn) on the account page (add a passkey) and the login page.
//
// A file, not an inline script: the content security policy allows only scripts from
// this site. The page carries the WebAuthn options in data-options and the texts people
// read in data-msg-* (already in their language). The controls stay hidden until this
// script knows the browser can use passkeys; <noscript> explains the rest.
//
// The server answers each post with {"redirect": url}, which we follow, or with
// {"error": text, "options": fresh options} for another try.
"use strict";

(() => {
  const root = document.getElementById("passkey");
  const form = document.getElementById("passkey-form");
  if (!root || !form) return;
  const mode = root.dataset.passkey; // "register" or "login"
  const button = document.getElementById("passkey-start");
  const summary = document.getElementById("passkey-error");
  const summaryMessage = document.getElementById("passkey-error-message");
  const originalTitle = document.title;
  let options = root.dataset.options;

  if (!window.PublicKeyCredential || !navigator.credentials) {
    const unsupported = document.getElementById("passkey-unsupported");
    if (unsupported) unsupported.hidden = false;
    return;
  }
  root.hidden = false;

  // --- base64url <-> bytes (WebAuthn speaks ArrayBuffers, JSON speaks text) ---------
  const toBytes = (text) => {
    const base64 = text.replace(/-/g, "+").replace(/_/g, "/");
    const binary = atob(base64 + "===".slice((base64.length + 3) % 4));
    return Uint8Array.from(binary, (c) => c.charCodeAt(0));
  };
  const toText = (buffer) => {
    let binary = "";
    for (const byte of new Uint8Array(buffer)) binary += String.fromCharCode(byte);
    return btoa(binary).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  };
  const descriptors = (list) => (list || []).map((d) => ({ ...d, id: toBytes(d.id) }));

  const creationOptions = (json) => {
    const o = JSON.parse(json);
    return {
      ...o,
      challenge: toBytes(o.challenge),
      user: { ...o.user, id: toBytes(o.user.id) },
      excludeCredentials: descriptors(o.excludeCredentials),
    };
  };
  const requestOptions = (json) => {
    const o = JSON.parse(json);
    return { ...o, challenge: toBytes(o.challenge), allowCredentials: descriptors(o.allowCredentials) };
  };

  const common = (credential) => ({
    id: credential.id,
    rawId: toText(credential.rawId),
    type: credential.type,
    authenticatorAttachment: credential.authenticatorAttachment || undefined,
    clientExtensionResults: credential.getClientExtensionResults(),
  });
  const registrationJson = (credential) => ({
    ...common(credential),
    response: {
      clientDataJSON: toText(credential.response.clientDataJSON),
      attestationObject: toText(credential.response.attestationObject),
      transports: credential.response.getTransports ? credential.response.getTransports() : [],
    },
  });
  const assertionJson = (credential) => ({
    ...common(credential),
    response: {
      clientDataJSON: toText(credential.response.clientDataJSON),
      authenticatorData: toText(credential.response.authenticatorData),
      signature: toText(credential.response.signature),
      userHandle: credential.response.userHandle ? toText(credential.response.userHandle) : undefined,
    },
  });

  // --- showing a problem the way the server-rendered pages do -------------------------
  const showError = (text) => {
    if (!summary || !summaryMessage) return;
    summaryMessage.textContent = text;
    summary.hidden = false;
    document.title = `${root.dataset.errorPrefix}: ${originalTitle}`;
    summary.focus();
  };
  const clearError = () => {
    if (summary) summary.hidden = true;
    document.title = originalTitle;
  };
  summaryMessage?.addEventListener("click", (event) => {
    event.preventDefault();
    button.focus();
  });

  const post = async (url, payload) => {
    const csrf = form.elements.namedItem("csrf_token").value;
    let response;
    try {
      response = await fetch(url, {
        method: "POST",
        credentials: "same-origin",
        headers: {
          "Content-Type": "application/json",
          Accept: "application/json",
          "X-CSRF-Token": csrf,
        },
        body: JSON.stringify(payload),
      });
    } catch {
      return { error: root.dataset.msgNetwork };
    }
    try {
      return await response.json();
    } catch {
      return { error: root.dataset.msgFailed };
    }
  };

  const ceremony = async () => {
    if (mode === "register") {
      const credential = await navigator.credentials.create({ publicKey: creationOptions(options) });
      const name = form.elements.namedItem("name").value;
      return post(form.action, { credential: registrationJson(credential), name });
    }
    const credential = await navigator.credentials.get({ publicKey: requestOptions(options) });
    const auth = form.elements.namedItem("auth").value;
    return post(form.action, { auth, credential: assertionJson(credential) });
  };

  const browserError = (error) => {
    if (error && error.name === "InvalidStateError" && root.dataset.msgExists) {
      return root.dataset.msgExists; // a passkey of this person is already on the device
    }
    if (error && (error.name === "NotAllowedError" || error.name === "AbortError")) {
      return root.dataset.msgCancelled; // cancelled, timed out, or no passkey chosen
    }
    return root.dataset.msgFailed;
  };

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    if (button.disabled) return;
    clearError();
    button.disabled = true;
    form.setAttribute("aria-busy", "true");
    let answer;
    try {
      answer = await ceremony();
    } catch (error) {
      answer = { error: browserError(error) };
    }
    if (answer && typeof answer.redirect === "string") {
      window.location.assign(answer.redirect);
      return;
    }
    if (answer && typeof answer.options === "string") options = answer.options;
    button.disabled = false;
    form.removeAttribute("aria-busy");
    showError((answer && answer.error) || root.dataset.msgFailed);
  });
})();
