// The secure chat page. It renders every text with textContent, never as
// HTML, and keeps nothing on the device: no storage of any kind, no service
// worker; the session cookie is the server's and ends with the browser.
(function () {
  'use strict';

  var main = document.getElementById('chat');
  if (!main) {
    return;
  }
  var log = document.getElementById('messages');
  var status = document.getElementById('status');
  var form = document.getElementById('composer');
  var input = document.getElementById('message-input');
  var send = document.getElementById('send');
  var choices = document.getElementById('choices');
  var csrf = main.getAttribute('data-csrf');
  var after = parseInt(main.getAttribute('data-after'), 10) || 0;
  var open = main.getAttribute('data-open') === 'true';
  var busy = false;
  var source = null;

  // showLatest scrolls the page to its end. Scrolling the newest message
  // into view instead would leave it under the answer bar, which sticks
  // to the bottom of a phone's screen; at the page's end the bar sits in
  // its own place, below the messages.
  function showLatest() {
    window.scrollTo(0, document.documentElement.scrollHeight);
  }

  function setStatus(text, closed) {
    status.textContent = text;
    status.classList.toggle('closed', !!closed);
  }

  function addLine(line) {
    if (line.n <= after) {
      return;
    }
    after = line.n;
    var div = document.createElement('div');
    div.className = line.from === 'user' ? 'msg user' : 'msg bot';
    div.setAttribute('data-n', String(line.n));
    var who = document.createElement('span');
    who.className = 'who';
    who.textContent = main.getAttribute(line.from === 'user' ? 'data-you' : 'data-clinic');
    var p = document.createElement('p');
    p.textContent = line.text;
    div.appendChild(who);
    div.appendChild(document.createTextNode(' '));
    div.appendChild(p);
    log.appendChild(div);
    showLatest();
  }

  function setChoices(list) {
    Array.prototype.forEach.call(choices.querySelectorAll('button'), function (b) {
      choices.removeChild(b);
    });
    choices.hidden = !list || list.length === 0;
    (list || []).forEach(function (c) {
      var b = document.createElement('button');
      b.type = 'submit';
      b.name = 'choice';
      b.value = c.value;
      b.textContent = c.title;
      b.disabled = busy;
      choices.appendChild(b);
    });
  }

  // forget takes the conversation off the screen: once the session has
  // ended on the server, someone who picks up the phone later must not
  // read what was on it.
  function forget() {
    log.textContent = '';
  }

  // forgetLater takes a finished secure part off the screen after the
  // patient has had a moment to see the last answer arrive. The session
  // ended on the server as the part finished, so no event will come to
  // clear it.
  var forgetMs = parseInt(main.getAttribute('data-forget-ms'), 10) || 60000;
  var forgetTimer = null;
  function forgetLater() {
    if (forgetTimer === null) {
      forgetTimer = window.setTimeout(forget, forgetMs);
    }
  }

  function close(text) {
    open = false;
    setStatus(text, true);
    setChoices([]);
    input.disabled = true;
    send.disabled = true;
    if (source) {
      source.close();
      source = null;
    }
  }

  function applyState(st) {
    if (st.system) {
      var line = log.querySelector('[data-n="' + st.system + '"]');
      if (line) {
        line.classList.add('system');
      }
    }
    if (!st.open) {
      close(st.status);
      showLatest();
      forgetLater();
      return;
    }
    setStatus(st.status, false);
    if (input.type !== st.type) {
      input.type = st.type;
    }
    if (st.mode) {
      input.setAttribute('inputmode', st.mode);
    } else {
      input.removeAttribute('inputmode');
    }
    setChoices(st.choices);
    showLatest(); // the buttons make the answer bar taller
  }

  function setBusy(b) {
    busy = b;
    send.disabled = b || !open;
    Array.prototype.forEach.call(choices.querySelectorAll('button'), function (el) {
      el.disabled = b;
    });
    form.setAttribute('aria-busy', b ? 'true' : 'false');
  }

  function randomID() {
    var bytes = new Uint8Array(16);
    window.crypto.getRandomValues(bytes);
    return Array.prototype.map.call(bytes, function (x) {
      return ('0' + x.toString(16)).slice(-2);
    }).join('');
  }

  // The button that submitted the choices form, for browsers without
  // SubmitEvent.submitter.
  var clicked = null;
  choices.addEventListener('click', function (ev) {
    if (ev.target && ev.target.name === 'choice') {
      clicked = ev.target;
    }
  });

  function submit(ev) {
    ev.preventDefault();
    var by = ev.submitter || clicked;
    clicked = null;
    if (busy || !open) {
      return;
    }
    var body = new URLSearchParams();
    body.set('csrf', csrf);
    body.set('id', randomID());
    if (ev.target === choices) {
      if (!by || by.name !== 'choice') {
        return;
      }
      body.set('choice', by.value);
    } else {
      var text = input.value.trim();
      if (text === '') {
        input.focus();
        return;
      }
      body.set('text', text);
    }
    setBusy(true);
    setStatus(main.getAttribute('data-sending'), false);
    fetch('/s/chat/send', {
      method: 'POST',
      body: body,
      headers: {'Accept': 'application/json', 'X-CSRF-Token': csrf},
      credentials: 'same-origin',
      cache: 'no-store',
      redirect: 'error'
    }).then(function (res) {
      if (res.ok) {
        input.value = '';
        return null;
      }
      return res.json().then(function (j) {
        return {status: res.status, text: j.status};
      }, function () {
        return {status: res.status, text: main.getAttribute('data-failed')};
      });
    }).then(function (fail) {
      setBusy(false);
      if (!fail) {
        input.focus();
        return;
      }
      if (fail.status === 401 || fail.status === 403) {
        forget();
        close(fail.text);
        return;
      }
      setStatus(fail.text, false);
    }, function () {
      setBusy(false);
      setStatus(main.getAttribute('data-failed'), false);
    });
  }

  form.addEventListener('submit', submit);
  choices.addEventListener('submit', submit);

  function connect() {
    source = new EventSource('/s/chat/events?after=' + after);
    source.addEventListener('line', function (ev) {
      addLine(JSON.parse(ev.data));
    });
    source.addEventListener('state', function (ev) {
      applyState(JSON.parse(ev.data));
    });
    source.addEventListener('end', function (ev) {
      forget();
      close(JSON.parse(ev.data).status);
    });
    source.addEventListener('error', function () {
      // EventSource retries by itself; CLOSED means the server said no.
      if (source && source.readyState === EventSource.CLOSED) {
        source = null;
        if (open) {
          close(main.getAttribute('data-ended'));
        }
      }
    });
  }

  showLatest();
  if (open) {
    connect();
  } else {
    forgetLater(); // a finished part, loaded again
  }
}());
