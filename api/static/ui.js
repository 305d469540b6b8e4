// The inspector's buttons. They call the JSON routes (PATCH/DELETE /v1/users/...) with the session cookie and
// the session's CSRF token; everything shown comes back as text (textContent), never as HTML.
"use strict";

const csrfToken = document.querySelector('meta[name="csrf-token"]').content;

function say(message, isError) {
  const status = document.getElementById("status");
  status.textContent = message;
  status.classList.toggle("error", Boolean(isError));
  status.hidden = false;
}

async function call(method, url, body) {
  const headers = { "X-CSRF-Token": csrfToken, "Accept": "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(url, {
    method, headers, credentials: "same-origin",
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (!response.ok) {
    let message = `${response.status} ${response.statusText}`;
    try { message = (await response.json()).error.message; } catch (_) { /* not the usual error body */ }
    throw new Error(message);
  }
  return response.status === 204 ? null : response.json();
}

function editing(article, on) {
  article.querySelector(".pref-edit").hidden = !on;
  article.querySelector(".pref-head .actions").hidden = on;
  if (on) article.querySelector("textarea").focus();
}

document.addEventListener("click", async (event) => {
  const button = event.target.closest("button[data-action]");
  const article = button && button.closest("article.pref");
  if (!article) return;
  const action = button.dataset.action;
  if (action === "edit") editing(article, true);
  if (action === "cancel") editing(article, false);
  if (action === "delete") {
    const text = article.querySelector(".pref-text").textContent;
    if (!window.confirm(`Delete this preference?\n\n${text}`)) return;
    try {
      await call("DELETE", article.dataset.url);
      article.remove();
      say("Preference deleted; the next generation no longer uses it.");
    } catch (error) { say(`Not deleted: ${error.message}`, true); }
  }
});

document.addEventListener("submit", async (event) => {
  const form = event.target.closest("form.pref-edit");
  if (!form) return;
  event.preventDefault();
  const article = form.closest("article.pref");
  try {
    const item = await call("PATCH", article.dataset.url, { text: form.elements.text.value });
    article.querySelector(".pref-text").textContent = item.text;
    article.classList.add("saved");
    editing(article, false);
    say("Preference saved; the next generation uses it.");
  } catch (error) { say(`Not saved: ${error.message}`, true); }
});

document.addEventListener("change", async (event) => {
  const toggle = event.target.closest("input.rule-toggle");
  if (!toggle) return;
  try {
    await call("PATCH", toggle.dataset.url, { enabled: toggle.checked });
    say(`Rule turned ${toggle.checked ? "on" : "off"}.`);
  } catch (error) {
    toggle.checked = !toggle.checked;
    say(`Rule not changed: ${error.message}`, true);
  }
});
