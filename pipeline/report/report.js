(function () {
  "use strict";
  var data = JSON.parse(document.getElementById("session-data").textContent);
  var audio = document.getElementById("audio");
  var flagList = document.getElementById("flags");
  var turnEls = Array.prototype.slice.call(document.querySelectorAll("li.turn"));
  var turnStarts = data.turns.map(function (t) { return t[0]; });
  var playhead = document.getElementById("playhead");
  var follow = document.getElementById("follow");
  var current = -1;
  var activeFlag = null;

  function seek(t) {
    t = Math.max(0, Number(t) || 0);
    audio.currentTime = t;
    document.body.setAttribute("data-last-seek", String(t));
    highlight(t, true);
  }

  // Index of the last turn that starts at or before t (binary search), -1 if none.
  function turnAt(t) {
    var lo = 0, hi = turnStarts.length - 1, ans = -1;
    while (lo <= hi) {
      var mid = (lo + hi) >> 1;
      if (turnStarts[mid] <= t) { ans = mid; lo = mid + 1; } else { hi = mid - 1; }
    }
    return ans;
  }

  function highlight(t, scroll) {
    if (playhead && data.duration > 0) {
      var x = data.timeline.x0 + Math.min(1, t / data.duration) * data.timeline.width;
      playhead.setAttribute("x1", x.toFixed(1));
      playhead.setAttribute("x2", x.toFixed(1));
    }
    var i = turnAt(t);
    if (i === current) { return; }
    if (current >= 0 && turnEls[current]) { turnEls[current].classList.remove("current"); }
    current = i;
    if (i >= 0 && turnEls[i]) {
      turnEls[i].classList.add("current");
      if (scroll || (follow && follow.checked)) { turnEls[i].scrollIntoView({ block: "nearest" }); }
    }
  }

  audio.addEventListener("timeupdate", function () { highlight(audio.currentTime, false); });
  audio.addEventListener("seeked", function () { highlight(audio.currentTime, false); });

  function visibleFlags() {
    return Array.prototype.slice.call(flagList.querySelectorAll("li.flag:not([hidden])"));
  }

  function activate(li) {
    if (activeFlag) { activeFlag.classList.remove("active"); }
    activeFlag = li;
    li.classList.add("active");
    li.focus({ preventScroll: true });
    li.scrollIntoView({ block: "nearest" });
    seek(li.getAttribute("data-start"));
  }

  document.addEventListener("click", function (ev) {
    var target = ev.target;
    if (target.closest("summary, input, label, audio, a")) { return; }
    var jump = target.closest(".jump, details [data-start]");
    if (jump) { seek(jump.getAttribute("data-start")); return; }
    var flag = target.closest("li.flag");
    if (flag) { activate(flag); return; }
    var svg = target.closest("svg.timeline");
    if (svg && !target.closest(".mark, .ar-dot")) {
      // anywhere else on the timeline: play from the time under the pointer
      var pt = svg.createSVGPoint();
      pt.x = ev.clientX; pt.y = ev.clientY;
      var user = pt.matrixTransform(svg.getScreenCTM().inverse());
      var frac = (user.x - data.timeline.x0) / data.timeline.width;
      if (frac >= 0 && frac <= 1) { seek(frac * data.duration); }
      return;
    }
    var el = target.closest("[data-start]");
    if (el) { seek(el.getAttribute("data-start")); }
  });

  document.addEventListener("keydown", function (ev) {
    if (ev.altKey || ev.ctrlKey || ev.metaKey) { return; }
    var tag = (ev.target.tagName || "").toLowerCase();
    if (tag === "input" || tag === "textarea" || tag === "select") { return; }
    var k = ev.key;
    if (k === "Enter" && ev.target.classList && ev.target.classList.contains("flag")) {
      activate(ev.target); ev.preventDefault(); return;
    }
    var step = (k === "j" || k === "n") ? 1 : (k === "k" || k === "p") ? -1 : 0;
    if (!step) { return; }
    var flags = visibleFlags();
    if (!flags.length) { return; }
    var i = activeFlag ? flags.indexOf(activeFlag) : -1;
    if (i < 0) {
      // Start from the playback position: the next (or previous) flag after the current time.
      var t = audio.currentTime || 0;
      i = step > 0 ? -1 : flags.length;
      for (var n = 0; n < flags.length; n++) {
        if (Number(flags[n].getAttribute("data-start")) > t + 0.01) { i = step > 0 ? n - 1 : n; break; }
      }
    }
    var j = Math.max(0, Math.min(flags.length - 1, i + step));
    activate(flags[j]);
    ev.preventDefault();
  });

  var typeBoxes = Array.prototype.slice.call(document.querySelectorAll("input[name=ftype]"));
  var minConf = document.getElementById("minconf");
  var minConfOut = document.getElementById("minconf-val");
  var countOut = document.getElementById("flag-count");
  var marks = Array.prototype.slice.call(document.querySelectorAll("svg .mark"));

  function applyFilters() {
    var types = {};
    typeBoxes.forEach(function (b) { types[b.value] = b.checked; });
    var min = Number(minConf.value);
    minConfOut.textContent = min.toFixed(2);
    var shown = 0;
    Array.prototype.forEach.call(flagList.querySelectorAll("li.flag"), function (li) {
      var ok = !!types[li.getAttribute("data-type")] && Number(li.getAttribute("data-conf")) >= min;
      li.hidden = !ok;
      if (ok) { shown++; }
    });
    marks.forEach(function (m) {
      var ok = !!types[m.getAttribute("data-type")] && Number(m.getAttribute("data-conf")) >= min;
      m.classList.toggle("dim", !ok);
    });
    countOut.textContent = String(shown);
    if (activeFlag && activeFlag.hidden) { activeFlag.classList.remove("active"); activeFlag = null; }
  }
  typeBoxes.forEach(function (b) { b.addEventListener("change", applyFilters); });
  minConf.addEventListener("input", applyFilters);
  applyFilters();
  highlight(0, false);
  document.body.setAttribute("data-ready", "1");
})();
