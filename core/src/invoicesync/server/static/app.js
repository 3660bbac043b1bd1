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
