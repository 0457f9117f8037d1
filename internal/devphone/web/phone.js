// The phone simulator: sends what is typed to /dev/send and long-polls
// /dev/messages for both phones. All text is set with textContent; links
// become anchors built from DOM nodes, never HTML strings.
"use strict";
(function () {
  var seen = 0;
  var urlRe = /(https?:\/\/[^\s)]+)/g;

  function phone(channel) { return document.getElementById("phone-" + channel); }

  function render(m) {
    var p = phone(m.channel);
    if (!p) { return; }
    var li = document.createElement("li");
    li.className = "msg " + m.from;
    var parts = m.text.split(urlRe);
    for (var i = 0; i < parts.length; i++) {
      if (i % 2 === 1) {
        var a = document.createElement("a");
        a.href = parts[i];
        a.target = "_blank";
        a.rel = "noopener noreferrer";
        a.textContent = parts[i];
        a.className = "secure-link";
        li.appendChild(a);
      } else if (parts[i]) {
        li.appendChild(document.createTextNode(parts[i]));
      }
    }
    var screen = p.querySelector(".screen");
    screen.appendChild(li);
    screen.scrollTop = screen.scrollHeight;
    if (m.channel === "messenger" && m.from === "clinic") {
      var quick = p.querySelector(".quick");
      quick.textContent = "";
      (m.choices || []).forEach(function (c) {
        var b = document.createElement("button");
        b.type = "button";
        b.textContent = c.title;
        b.addEventListener("click", function () { send("messenger", c.title, c.payload); quick.textContent = ""; });
        quick.appendChild(b);
      });
    }
  }

  function send(channel, text, payload) {
    return fetch("/dev/send", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ channel: channel, text: text, payload: payload || "" })
    });
  }

  function poll() {
    fetch("/dev/messages?after=" + seen, { cache: "no-store" })
      .then(function (r) { return r.json(); })
      .then(function (msgs) {
        msgs.forEach(function (m) { seen = Math.max(seen, m.seq); render(m); });
        poll();
      })
      .catch(function () { setTimeout(poll, 1000); });
  }

  ["sms", "messenger"].forEach(function (channel) {
    var form = phone(channel).querySelector(".compose");
    form.addEventListener("submit", function (ev) {
      ev.preventDefault();
      var input = form.querySelector("input");
      var text = input.value.trim();
      if (!text) { return; }
      input.value = "";
      send(channel, text);
    });
  });
  poll();
})();
