// The live events page (admin/events_app/event/live.html): polls the feed, a small JSON view, every
// couple of seconds and puts new events and rejections on top. Never a held-open stream: each poll is
// one short request, so a sync web worker is never tied up. Text goes in through textContent only.
"use strict";
(() => {
  const root = document.getElementById("live");
  if (!root) {
    return;
  }
  const MAX_ROWS = 500; // older rows drop off the bottom
  // The ids asked "after" lag a few polls behind the newest seen: an event whose transaction
  // commits a moment after a later one still shows; the `seen` ids keep it from showing twice.
  const REREAD_POLLS = 5;
  const interval = Number(root.dataset.interval) || 2000;
  const withRejections = root.dataset.withRejections === "true";
  const rows = document.getElementById("live-rows");
  const status = document.getElementById("live-status");
  const pauseButton = document.getElementById("live-pause");
  const typeInput = document.getElementById("live-type");
  const playerInput = document.getElementById("live-player");

  let paused = false;
  let timer = null;
  let inFlight = false;
  let generation = 0; // a filter change starts again; answers to older polls are dropped
  let cursors = [];
  let seen = new Set();

  function reset() {
    generation += 1;
    cursors = [];
    seen = new Set();
    rows.replaceChildren();
  }

  function cell(text, className) {
    const td = document.createElement("td");
    if (className) {
      td.className = className;
    }
    td.textContent = text || "-";
    return td;
  }

  function linkCell(text, href) {
    const td = document.createElement("td");
    const a = document.createElement("a");
    a.href = href;
    a.textContent = text;
    td.append(a);
    return td;
  }

  function badge(state) {
    const td = document.createElement("td");
    const span = document.createElement("span");
    span.className = `state-badge state-${state}`;
    span.textContent = state;
    td.append(span);
    return td;
  }

  function eventRow(event) {
    const tr = document.createElement("tr");
    tr.className = "accepted is-new";
    tr.dataset.id = `e${event.id}`;
    tr.dataset.order = event.received;
    const player = document.createElement("td");
    const link = document.createElement("a");
    link.href = event.timeline_url;
    link.title = "this player's timeline";
    link.textContent = event.player_id;
    player.append(link);
    tr.append(linkCell(event.received, event.url), badge("accepted"), cell(event.event_type), player);
    tr.append(cell(event.platform), cell(event.details));
    return tr;
  }

  function rejectionRow(rejection) {
    const tr = document.createElement("tr");
    tr.className = "rejected is-new";
    tr.dataset.id = `r${rejection.id}`;
    tr.dataset.order = rejection.received;
    tr.append(linkCell(rejection.received, rejection.url), badge("rejected"), cell(rejection.event_type));
    tr.append(cell(rejection.player_id), cell(""), cell(`${rejection.status_code}: ${rejection.reason}`, "reason"));
    return tr;
  }

  function show(answer) {
    const fresh = [];
    for (const event of answer.events) {
      if (!seen.has(`e${event.id}`)) {
        fresh.push(eventRow(event));
      }
    }
    for (const rejection of answer.rejections) {
      if (!seen.has(`r${rejection.id}`)) {
        fresh.push(rejectionRow(rejection));
      }
    }
    // Oldest first, so that each goes on top in turn and the newest ends up first.
    fresh.sort((a, b) => (a.dataset.order < b.dataset.order ? -1 : a.dataset.order > b.dataset.order ? 1 : 0));
    for (const tr of fresh) {
      seen.add(tr.dataset.id);
      rows.prepend(tr);
    }
    while (rows.children.length > MAX_ROWS) {
      seen.delete(rows.lastElementChild.dataset.id);
      rows.lastElementChild.remove();
    }
    const now = new Date().toISOString().slice(11, 19);
    const skipped = answer.more || answer.more_rejections ? " (more arrived than one read shows: only the newest)" : "";
    status.textContent = `Live: updated ${now} UTC, ${fresh.length} new${skipped}`;
  }

  function feedUrl() {
    const oldest = cursors[0] || {};
    const params = new URLSearchParams({ game: root.dataset.game });
    if (oldest.after != null) {
      params.set("after", oldest.after);
    }
    if (oldest.afterRejection != null) {
      params.set("after_rejection", oldest.afterRejection);
    }
    if (typeInput.value.trim()) {
      params.set("event_type", typeInput.value.trim());
    }
    if (playerInput.value.trim()) {
      params.set("player_id", playerInput.value.trim());
    }
    return `${root.dataset.feedUrl}?${params}`;
  }

  async function poll() {
    timer = null;
    if (paused) {
      return;
    }
    const asked = generation;
    inFlight = true;
    try {
      const response = await fetch(feedUrl(), { credentials: "same-origin", headers: { Accept: "application/json" } });
      const answer = await response.json();
      if (asked !== generation) {
        // The filter changed meanwhile: this answer is for the old one.
      } else if (!response.ok) {
        status.textContent = `Not shown: ${answer.error || response.status}`;
      } else {
        show(answer);
        cursors.push({ after: answer.after, afterRejection: withRejections ? answer.after_rejection : null });
        if (cursors.length > REREAD_POLLS) {
          cursors.shift();
        }
      }
    } catch (error) {
      status.textContent = "Connection lost: trying again";
    }
    inFlight = false;
    if (asked !== generation) {
      window.clearTimeout(timer);
      timer = null;
      poll();
    } else {
      schedule();
    }
  }

  function schedule() {
    if (!paused && timer === null && !inFlight) {
      timer = window.setTimeout(poll, interval);
    }
  }

  pauseButton.addEventListener("click", () => {
    paused = !paused;
    pauseButton.textContent = paused ? "Resume" : "Pause";
    pauseButton.setAttribute("aria-pressed", String(paused));
    if (paused) {
      window.clearTimeout(timer);
      timer = null;
      status.textContent = "Paused";
    } else if (!inFlight) {
      poll();
    }
  });

  let typing = null;
  for (const input of [typeInput, playerInput]) {
    input.addEventListener("input", () => {
      // A filter applies once typing pauses, from the newest events again.
      window.clearTimeout(typing);
      typing = window.setTimeout(() => {
        reset();
        window.clearTimeout(timer);
        timer = null;
        if (!inFlight) {
          poll();
        }
      }, 400);
    });
  }

  poll();
})();
