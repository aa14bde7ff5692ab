// fota-gitops dashboard: keeps the page's live part current. No framework, no build step.
// The server renders everything; this file only swaps in `<main id="live">` again (asked
// with `X-Fragment: live`) when /events says something changed. Bounded: at most one
// refresh a second however many events arrive; without /events (an older server, or a
// proxy that drops the stream) it polls every POLL_MS instead, backing off on errors.
// Some changes are no device's event (a new invalid commit, a halt flag): while the
// stream is open the page also looks again every SLOW_MS.
"use strict";
(function () {
  const MIN_GAP_MS = 1000;
  const POLL_MS = 2000;
  const SLOW_MS = 15000;
  const MAX_BACKOFF_MS = 30000;
  const live = document.getElementById("live");
  const status = document.getElementById("live-status");
  if (!live || !live.dataset.events) return;  // the login page has nothing live
  let last = 0, timer = null, running = false, again = false, failures = 0, poller = null;
  let slow = null;

  function say(text) { if (status) { status.textContent = text; status.dataset.mode = text; } }

  function schedule() {
    if (running) { again = true; return; }
    if (timer !== null) return;
    const backoff = failures ? Math.min(MAX_BACKOFF_MS, MIN_GAP_MS * 2 ** failures) : 0;
    const wait = Math.max(0, last + MIN_GAP_MS - Date.now(), backoff);
    timer = setTimeout(refresh, wait);
  }

  async function refresh() {
    timer = null; running = true; again = false;
    try {
      const answer = await fetch(location.href, {headers: {"X-Fragment": "live"},
                                                 credentials: "same-origin", cache: "no-store"});
      if (answer.status === 401) { location.reload(); return; }  // session ended: sign in
      if (!answer.ok) throw new Error(String(answer.status));
      const html = await answer.text();
      // A fragment of our own server, rendered with autoescaping: swap it in whole,
      // keeping whatever has focus (the filter form sits outside the live part).
      const target = live.querySelector("#device-table") || live;
      if (target.innerHTML !== html) target.innerHTML = html;
      failures = 0;
      document.body.dataset.refreshed = String(Date.now());
    } catch (err) {
      failures += 1;
    } finally {
      last = Date.now(); running = false;
      if (again) schedule();
    }
  }

  function poll() {
    if (slow !== null) { clearInterval(slow); slow = null; }
    if (poller === null) { say("polling"); poller = setInterval(schedule, POLL_MS); }
  }

  if (!window.EventSource) { poll(); return; }
  const stream = new EventSource(live.dataset.events);
  stream.onopen = function () {
    say("live");
    schedule();  // catch up on what happened while the stream was down
    if (slow === null) slow = setInterval(schedule, SLOW_MS);
  };
  stream.onmessage = schedule;
  stream.addEventListener("state", schedule);
  stream.addEventListener("gap", schedule);  // events were pruned: the page reloads anyway
  stream.onerror = function () {
    // CLOSED: the server refused the stream (no /events, 401): fall back to polling.
    // CONNECTING: the browser retries by itself with Last-Event-ID.
    if (stream.readyState === EventSource.CLOSED) poll(); else say("reconnecting");
  };
})();
