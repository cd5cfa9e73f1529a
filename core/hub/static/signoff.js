// signoff inbox: keyboard shortcuts and the live inbox (Server-Sent Events from /live).
// Progressive enhancement: every page works without it.
// j/k move between events (inbox) or to the next/previous event (event page), Enter opens,
// a approve, r reject, c comment, ? help, Esc leaves a text box.
(function () {
  "use strict";
  function typing(el) {
    if (!el) return false;
    var tag = el.tagName;
    return tag === "TEXTAREA" || tag === "SELECT" || el.isContentEditable ||
      (tag === "INPUT" && !/^(checkbox|radio|submit|button|hidden)$/i.test(el.type));
  }
  function rows() {
    return Array.prototype.slice.call(document.querySelectorAll("#events .row-prompt"));
  }
  function move(step) {
    var links = rows();
    if (!links.length) return false;
    var at = links.indexOf(document.activeElement);
    var next = at < 0 ? (step > 0 ? 0 : links.length - 1)
                      : Math.max(0, Math.min(links.length - 1, at + step));
    links[next].focus();
    links[next].closest("li").scrollIntoView({block: "nearest"});
    return true;
  }
  function click(selector) {
    var el = document.querySelector(selector);
    if (!el) return false;
    el.click();
    return true;
  }
  function help() {
    var box = document.getElementById("shortcuts-help");
    if (!box) return false;
    box.hidden = !box.hidden;
    if (!box.hidden) { box.setAttribute("tabindex", "-1"); box.focus(); }
    return true;
  }
  document.addEventListener("keydown", function (ev) {
    if (ev.ctrlKey || ev.metaKey || ev.altKey) return;
    var el = document.activeElement;
    if (typing(el)) {
      if (ev.key === "Escape") el.blur();
      return;
    }
    var done = false;
    switch (ev.key) {
      case "j": done = move(1); break;
      case "k": done = move(-1); break;
      case "a": done = click("#answer-form button[value=approve]"); break;
      case "r": done = click("#answer-form button[value=reject]"); break;
      case "c":
        var box = document.getElementById("comment");
        if (box) { box.focus(); done = true; }
        break;
      case "?": done = help(); break;
    }
    if (done) ev.preventDefault();
  });
  // the live inbox: /live says when the reviewer's pending events changed; fetch the page
  // again and swap the list in place, keeping the focused event focused
  function refresh(news) {
    fetch(location.href, {credentials: "same-origin", headers: {"Accept": "text/html"}})
      .then(function (r) { return r.ok ? r.text() : Promise.reject(r.status); })
      .then(function (html) {
        var doc = new DOMParser().parseFromString(html, "text/html");
        var fresh = doc.getElementById("inbox"), old = document.getElementById("inbox");
        if (!fresh || !old) return;
        var focused = document.activeElement && document.activeElement.getAttribute("href");
        old.replaceWith(document.importNode(fresh, true));
        document.title = doc.title;
        if (focused) {
          var again = document.querySelector('#events a[href="' + CSS.escape(focused) + '"]');
          if (again) again.focus();
        }
        var say = [];
        if (news.added.length) say.push(news.added.length + " new");
        if (news.removed.length) say.push(news.removed.length + " gone");
        var status = document.getElementById("live-status");
        if (status) status.textContent = "Inbox updated: " + say.join(", ") + ".";
      })
      .catch(function () { /* the next change tries again */ });
  }
  document.addEventListener("DOMContentLoaded", function () {
    // the inbox: focus the first event, so Enter opens it (j/k then Enter/a: three keys)
    var first = rows()[0];
    if (first && !document.querySelector("[autofocus]")) first.focus();
    var box = document.getElementById("inbox");
    var url = box && box.getAttribute("data-live");
    if (url && window.EventSource) {
      var source = new EventSource(url);
      source.addEventListener("inbox", function (ev) { refresh(JSON.parse(ev.data)); });
      window.addEventListener("pagehide", function () { source.close(); });
    }
  });
})();
