// The portal's session warning. A file, not an inline script: the content security
// policy allows only scripts from this site.
//
// The page says how many seconds the login session has left (data-seconds-left). A
// little before it ends, a dialog offers to stay logged in; "Stay logged in" renews the
// session in the background (GET /portal/keepalive) without reloading, so nothing typed
// on the page is lost. Without JavaScript the page still says when the session ends, and
// a page posted after it ended is kept until the person logs in again.
"use strict";

(() => {
  const notice = document.getElementById("session-notice");
  const warning = document.getElementById("session-warning");
  const stay = document.getElementById("session-stay");
  if (!notice || !warning || !stay) return;
  const warnBefore = Number(notice.dataset.warnBefore || 300) * 1000;
  let endsAt = Date.now() + Number(notice.dataset.secondsLeft || 0) * 1000;
  let timer = 0;

  const schedule = () => {
    clearTimeout(timer);
    timer = setTimeout(() => {
      warning.hidden = false;
      stay.focus();
    }, Math.max(0, endsAt - warnBefore - Date.now()));
  };

  stay.addEventListener("click", async () => {
    try {
      const answer = await fetch("/portal/keepalive", { credentials: "same-origin" });
      if (answer.ok) {
        const body = await answer.json();
        endsAt = Date.now() + Number(body.seconds_left || 0) * 1000;
        warning.hidden = true;
        schedule();
        return;
      }
    } catch (e) {
      // fall through: the session could not be renewed
    }
    window.location.reload();
  });
  schedule();
})();
