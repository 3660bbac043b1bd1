// The dashboard's only script: live progress of a running sync (server-sent events), and a confirm
// before a destructive form. Everything works without it; it only saves reloading the page.
"use strict";

document.addEventListener("submit", (event) => {
  const message = event.target.dataset && event.target.dataset.confirm;
  if (message && !window.confirm(message)) event.preventDefault();
});

function showTasks(list, tasks) {
  list.replaceChildren(...tasks.map((task) => {
    const item = document.createElement("li");
    const total = task.total ? ` / ${Math.round(task.total)}` : "";
    item.textContent = `${task.description}: ${Math.round(task.completed)}${total}`;
    return item;
  }));
}

document.addEventListener("DOMContentLoaded", () => {
  const progress = document.getElementById("progress");
  if (!progress || progress.dataset.running !== "yes") return;
  const events = new EventSource("/sync/events");
  events.onmessage = (event) => {
    const state = JSON.parse(event.data);
    const list = document.getElementById("job-tasks");
    if (list && state) showTasks(list, state.tasks);
  };
  events.addEventListener("done", () => {
    events.close();
    window.location.reload(); // the summary is rendered by the server
  });
  events.onerror = () => events.close();
});

// OAuth logins: the service's login page opens in a popup; when it comes back to /oauth/callback,
// that page sends the dashboard window on to the company checklist and closes. Without a script
// the link opens a tab, and the page it comes back to has a link to go on.
document.addEventListener("click", (event) => {
  const link = event.target.closest && event.target.closest("a[data-popup]");
  if (!link) return;
  if (window.open(link.href, link.dataset.popup, "popup,width=560,height=720")) event.preventDefault();
});

document.addEventListener("DOMContentLoaded", () => {
  const back = document.getElementById("oauth-return");
  if (!back || !window.opener) return;
  try {
    window.opener.location.assign(back.dataset.continue);
    window.close();
  } catch (error) {
    // the opener is not the dashboard any more: the link on this page still works
  }
});
