(function () {
  "use strict";
  var data = JSON.parse(document.getElementById("cr-data").textContent);
  var nodes = data.nodes, steps = data.steps, last = steps.length - 1;
  var byId = function (id) { return document.getElementById(id); };
  var slider = byId("cr-slider"), counter = byId("cr-counter"), play = byId("cr-play");
  var title = byId("cr-title"), lines = byId("cr-lines"), graph = byId("cr-graph"), fit = byId("cr-fit");
  var tableBox = byId("cr-table-box");
  var step = 0, timer = null;
  var edges = graph.querySelectorAll("g.edge");
  var views = nodes.map(function (n) {
    var group = byId("cr-" + n.id), row = byId("cr-row-" + n.id);
    var texts = group ? group.getElementsByTagName("text") : [];
    return {
      group: group,
      op: byId("cr-" + n.id + "_op"),
      data: texts.length >= 3 ? texts[texts.length - 2] : null,
      grad: texts.length >= 3 ? texts[texts.length - 1] : null,
      row: row,
      rowData: row ? row.querySelector(".cr-data") : null,
      rowGrad: row ? row.querySelector(".cr-grad") : null
    };
  });

  function setText(el, text) { if (el && el.textContent !== text) { el.textContent = text; } }
  function mark(el, name, on) { if (el) { el.classList.toggle(name, on); } }
  function gradAt(n, k) {
    var found = null;
    for (var i = 0; i < n.grads.length && n.grads[i][0] <= k; i++) { found = n.grads[i]; }
    return found;
  }

  function show() {
    var s = steps[step];
    for (var i = 0; i < nodes.length; i++) {
      var n = nodes[i], v = views[i], known = n.dataStep <= step, g = gradAt(n, step);
      var current = s.node === n.id, touched = s.touched.indexOf(n.id) >= 0;
      setText(v.data, known ? n.dataText : data.unknownData);
      setText(v.grad, g ? g[1] : n.noGradText);
      mark(v.data, "cr-unknown", !known);
      mark(v.grad, "cr-unknown", !g);
      mark(v.grad, "cr-partial", !!(g && g[4]));
      mark(v.group, "cr-current", current);
      mark(v.op, "cr-current", current && s.phase === "backward");
      mark(v.group, "cr-touched", touched);
      mark(v.row, "cr-current", current);
      setText(v.rowData, known ? n.dataShort : data.unknownShort);
      if (v.rowData) { v.rowData.setAttribute("data-value", known ? n.dataExact : ""); }
      setText(v.rowGrad, g ? g[2] : n.noGradShort);
      if (v.rowGrad) { v.rowGrad.setAttribute("data-value", g ? g[3] : ""); }
      mark(v.rowGrad, "cr-partial", !!(g && g[4]));
      if (v.rowGrad) {  // the state is shown after the number (CSS), and read out with it
        v.rowGrad.setAttribute("data-state", g ? g[5] : "");
        v.rowGrad.setAttribute("title", g ? g[5] : "");
      }
    }
    var op = s.node ? s.node + "_op" : null;
    for (var j = 0; j < edges.length; j++) {
      var to = edges[j].getAttribute("data-to"), from = edges[j].getAttribute("data-from");
      mark(edges[j], "cr-active", op !== null && (to === op || from === op));
    }
    setText(title, s.title);
    while (lines.firstChild) { lines.removeChild(lines.firstChild); }
    s.lines.forEach(function (text) {
      var li = document.createElement("li");
      li.textContent = text;
      lines.appendChild(li);
    });
    var where = "Step " + step + " of " + last + ": " + s.phaseText;
    setText(counter, where);
    slider.value = String(step);
    slider.setAttribute("aria-valuetext", where);
    if (s.node) {
      // the current value, and in a backward step the operation it passes its gradient through
      reveal(graph, [byId("cr-" + s.node), s.phase === "backward" ? byId("cr-" + op) : null]);
      reveal(tableBox, [byId("cr-row-" + s.node)]);
    }
  }

  // Scroll `box` (the picture, or the table) so that the elements are inside it, centred where
  // they were not; then the window, if the part of the box that holds them is off screen.
  function reveal(box, els) {
    els = els.filter(function (el) { return el; });
    if (!els.length || !box) { return; }
    var b = box.getBoundingClientRect(), r = around(els);
    if (r.left < b.left || r.right > b.right) {
      box.scrollLeft += (r.left + r.right) / 2 - (b.left + b.right) / 2;
    }
    if (r.top < b.top || r.bottom > b.bottom) {
      box.scrollTop += (r.top + r.bottom) / 2 - (b.top + b.bottom) / 2;
    }
    if (box === graph) {  // inside the picture now: this scrolls the window only, and only if needed
      r = around(els);
      if (r.bottom > window.innerHeight) { window.scrollBy(0, r.bottom - window.innerHeight + 8); }
      else if (r.top < 0) { window.scrollBy(0, r.top - 8); }
    }
  }
  function around(els) {  // the smallest rectangle holding every element, on screen
    var rs = els.map(function (el) { return el.getBoundingClientRect(); });
    return {
      left: Math.min.apply(null, rs.map(function (r) { return r.left; })),
      right: Math.max.apply(null, rs.map(function (r) { return r.right; })),
      top: Math.min.apply(null, rs.map(function (r) { return r.top; })),
      bottom: Math.max.apply(null, rs.map(function (r) { return r.bottom; }))
    };
  }

  // The smallest text of the picture, in pixels on screen as it is drawn now.
  function smallestText() {
    var texts = graph.querySelectorAll("svg text"), least = Infinity;
    for (var i = 0; i < texts.length; i++) {
      var m = texts[i].getScreenCTM(), size = parseFloat(texts[i].getAttribute("font-size"));
      if (m && size) { least = Math.min(least, size * Math.sqrt(m.a * m.a + m.b * m.b)); }
    }
    return least;
  }
  function setFit(on) {
    graph.classList.toggle("cr-fit", on);
    fit.setAttribute("aria-pressed", on ? "true" : "false");
  }

  function go(k) {
    step = Math.max(0, Math.min(last, k));
    show();
  }
  function pause() {
    if (timer !== null) { clearInterval(timer); timer = null; }
    setText(play, "Play");
    play.setAttribute("aria-pressed", "false");
  }
  function start() {
    if (step >= last) { go(0); }
    setText(play, "Pause");
    play.setAttribute("aria-pressed", "true");
    timer = setInterval(function () {
      if (step >= last) { pause(); } else { go(step + 1); }
    }, data.playMs);
  }
  function toggle() { if (timer === null) { start(); } else { pause(); } }
  function jump(k) { pause(); go(k); }

  byId("cr-start").addEventListener("click", function () { jump(0); });
  byId("cr-back").addEventListener("click", function () { jump(step - 1); });
  byId("cr-next").addEventListener("click", function () { jump(step + 1); });
  byId("cr-end").addEventListener("click", function () { jump(last); });
  play.addEventListener("click", toggle);
  slider.addEventListener("input", function () { jump(parseInt(slider.value, 10)); });
  fit.addEventListener("click", function () {
    setFit(!graph.classList.contains("cr-fit"));
    show();
  });
  document.addEventListener("keydown", function (e) {
    if (e.altKey || e.ctrlKey || e.metaKey) { return; }
    var t = e.target, tag = t && t.tagName ? t.tagName.toLowerCase() : "";
    if (tag === "input" || tag === "textarea" || tag === "select") { return; }  // the slider's own keys
    if (tag === "button" && (e.key === " " || e.key === "Enter")) { return; }  // a button's own click
    if (tag === "summary" && (e.key === " " || e.key === "Enter")) { return; }
    if (e.key === "ArrowRight") { jump(step + 1); }
    else if (e.key === "ArrowLeft") { jump(step - 1); }
    else if (e.key === "Home") { jump(0); }
    else if (e.key === "End") { jump(last); }
    else if (e.key === " " || e.key === "Spacebar") { toggle(); }
    else { return; }
    e.preventDefault();
  });
  // Fit to width by default only where the text stays readable (at least data.minTextPx); a
  // big graph keeps its own size and the view follows the step.
  setFit(true);
  if (smallestText() < data.minTextPx) { setFit(false); }
  go(0);
}());
