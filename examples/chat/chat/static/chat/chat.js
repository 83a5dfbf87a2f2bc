// The chat page: one WebSocket to /ws/rooms/<slug>/, JSON events in both directions.
// Server → browser: {"type": "history", "messages": [...]}, {"type": "message", ...},
// {"type": "presence", "user", "action"}, {"type": "error", "error"}.
// Browser → server: {"text": "..."}.
(function () {
  "use strict";
  var script = document.currentScript;
  var log = document.getElementById("log");
  var status = document.getElementById("status");
  var input = document.getElementById("text");
  var button = document.getElementById("send");
  var scheme = window.location.protocol === "https:" ? "wss://" : "ws://";
  var url = scheme + window.location.host + script.dataset.socketPath;
  var retryDelay = 1000;
  var socket = null;

  function setState(state, text) {
    status.dataset.state = state;
    status.textContent = text;
    input.disabled = button.disabled = state !== "open";
  }

  function append(className, user, text) {
    var item = document.createElement("li");
    item.className = className;
    if (user) {
      var name = document.createElement("span");
      name.className = "user";
      name.textContent = user;
      item.appendChild(name);
    }
    item.appendChild(document.createTextNode(text));
    log.appendChild(item);
    log.scrollTop = log.scrollHeight;
  }

  function handle(event) {
    if (event.type === "history") {
      log.textContent = "";
      event.messages.forEach(handle);
    } else if (event.type === "message") {
      append("message", event.user, event.text);
    } else if (event.type === "presence") {
      append("presence", null, event.user + " " + event.action);
    } else if (event.type === "error") {
      append("error", null, event.error);
    }
  }

  function connect() {
    socket = new WebSocket(url);
    socket.onopen = function () {
      retryDelay = 1000;
      setState("open", "Connected");
      input.focus();
    };
    socket.onmessage = function (message) {
      handle(JSON.parse(message.data));
    };
    socket.onclose = function () {
      // Refused (not logged in, unknown room) or lost: try again, more slowly each time.
      setState("closed", "Disconnected, retrying in " + retryDelay / 1000 + " s");
      window.setTimeout(connect, retryDelay);
      retryDelay = Math.min(retryDelay * 2, 30000);
    };
  }

  document.getElementById("post").addEventListener("submit", function (event) {
    event.preventDefault();
    var text = input.value.trim();
    if (text && socket && socket.readyState === WebSocket.OPEN) {
      socket.send(JSON.stringify({ text: text }));
      input.value = "";
    }
  });

  connect();
})();
