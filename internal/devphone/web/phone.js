// The phone simulator: sends what is typed to /dev/send and long-polls
// /dev/messages for both phones. All text is set with textContent; links
// become anchors built from DOM nodes, never HTML strings.
"use strict";
(function () {
  var seen = 0;
  var urlRe = /(https?:\/\/[^\s)]+)/g;

  function phone(channel) { return document.getElementById("phone-" + channel); }

  function show(channel, li) {
    var screen = phone(channel).querySelector(".screen");
    screen.appendChild(li);
    screen.scrollTop = screen.scrollHeight;
  }

  function render(m) {
    var p = phone(m.channel);
    if (!p) { return; }
    var li = document.createElement("li");
    li.className = "msg " + m.from + (m.link ? " link" : "");
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
      } else {
        // Links sit on their own line: drop the spaces around them.
        var text = parts[i];
        if (i > 0) { text = text.replace(/^ +/, ""); }
        if (i < parts.length - 1) { text = text.replace(/ +$/, ""); }
        if (text) { li.appendChild(document.createTextNode(text)); }
      }
    }
    show(m.channel, li);
    if (m.channel === "messenger" && m.from === "clinic") {
      var quick = p.querySelector(".quick");
      quick.textContent = "";
      (m.choices || []).forEach(function (c) {
        var b = document.createElement("button");
        b.type = "button";
        b.textContent = c.title;
        b.addEventListener("click", function () { quick.textContent = ""; send("messenger", c.title, c.payload); });
        quick.appendChild(b);
      });
    }
  }

  // failed shows, under the patient's message, that it did not arrive.
  function failed(channel, why) {
    var li = document.createElement("li");
    li.className = "msg error";
    li.textContent = "Not delivered: " + why;
    show(channel, li);
  }

  function send(channel, text, payload) {
    return fetch("/dev/send", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ channel: channel, text: text, payload: payload || "" })
    }).then(function (r) {
      if (!r.ok) { return r.text().then(function (t) { failed(channel, t.trim() || r.status); }); }
    }).catch(function () { failed(channel, "the server is not answering"); });
  }

  function poll() {
    fetch("/dev/messages?after=" + seen, { cache: "no-store" })
      .then(function (r) {
        if (!r.ok) { throw new Error(r.status); }
        return r.json();
      })
      .then(function (msgs) {
        msgs.forEach(function (m) { seen = Math.max(seen, m.seq); render(m); });
        // An empty answer is a poll that timed out, or a server going away:
        // a short pause keeps the latter from turning into a busy loop.
        if (msgs.length) { poll(); } else { setTimeout(poll, 250); }
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
