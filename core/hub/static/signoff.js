// signoff inbox: keyboard shortcuts. Progressive enhancement: every page works without it.
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
  document.addEventListener("DOMContentLoaded", function () {
    // the inbox: focus the first event, so Enter opens it (j/k then Enter/a: three keys)
    var first = rows()[0];
    if (first && !document.querySelector("[autofocus]")) first.focus();
  });
})();
