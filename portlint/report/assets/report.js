(function () {
  "use strict";
  var select = document.getElementById("pl-target");
  if (!select || !select.options.length) { return; }
  var params = new URLSearchParams(window.location.search);

  function option(name) {
    for (var i = 0; i < select.options.length; i++) {
      if (select.options[i].value === name) { return select.options[i]; }
    }
    return select.options[0];
  }
  function each(root, selector, fn) {
    Array.prototype.forEach.call(root.querySelectorAll(selector), fn);
  }
  function current() { return select.value; }
  function attrOf(name) { return "data-verdict-" + option(name).getAttribute("data-attr"); }

  function applyTarget(name) {
    var target = option(name).value;
    var attr = attrOf(target);
    select.value = target;
    document.body.setAttribute("data-target", target);
    each(document, "section.model", function (section) {
      var flagged = {};
      each(section, "li.finding", function (item) {
        if (item.getAttribute("data-for-target") === target && item.hasAttribute("data-node-id")) {
          flagged[item.getAttribute("data-node-id")] = true;
        }
      });
      var counts = {npu: 0, cpu: 0, rejected: 0};
      each(section, "g.node", function (node) {
        var verdict = node.getAttribute(attr) || "none";
        node.setAttribute("data-verdict", verdict);
        if (Object.prototype.hasOwnProperty.call(counts, verdict)) { counts[verdict] += 1; }
        if (flagged[node.id]) { node.setAttribute("data-flagged", "1"); }
        else { node.removeAttribute("data-flagged"); }
      });
      each(section, "[data-count]", function (el) {
        el.textContent = String(counts[el.getAttribute("data-count")] || 0);
      });
      each(section, "[data-for-target]", function (el) {
        el.classList.toggle("off-target", el.getAttribute("data-for-target") !== target);
      });
      each(section, "tr[data-row-target]", function (row) {
        row.classList.toggle("current", row.getAttribute("data-row-target") === target);
      });
      var selected = section.querySelector("g.node.selected");
      if (selected) { showInfo(section, selected); }
    });
    try {
      var url = new URL(window.location.href);
      url.searchParams.set("target", target);
      window.history.replaceState(null, "", url.href);
    } catch (err) { /* file: URLs may refuse; the selector still works */ }
  }

  function findingsOf(section, nodeId, target) {
    var found = [];
    each(section, "li.finding", function (item) {
      if (item.getAttribute("data-node-id") === nodeId &&
          (target === null || item.getAttribute("data-for-target") === target)) {
        found.push(item);
      }
    });
    return found;
  }

  function showInfo(section, node) {
    var info = section.querySelector(".node-info");
    if (!info) { return; }
    info.hidden = false;
    info.querySelector(".ni-name").textContent = node.getAttribute("data-node");
    info.querySelector(".ni-op").textContent = node.getAttribute("data-op");
    var list = info.querySelector(".ni-places");
    list.textContent = "";
    for (var i = 0; i < select.options.length; i++) {
      var name = select.options[i].value;
      var item = document.createElement("li");
      var place = node.getAttribute(attrOf(name)) || "not placed";
      var label = {npu: "NPU", cpu: "CPU fallback", rejected: "error (rejected)"}[place] || place;
      item.textContent = name + ": " + label;
      if (name === current()) { item.className = "current"; }
      list.appendChild(item);
    }
    var count = findingsOf(section, node.id, current()).length;
    info.querySelector(".ni-count").textContent = count ?
      count + " finding" + (count === 1 ? "" : "s") + " on " + current() + "." :
      "No findings on " + current() + " for this node.";
  }

  function filterFindings(section, nodeId) {
    each(section, "ol.findings > li", function (item) {
      item.classList.toggle("off-node",
        nodeId !== null && item.getAttribute("data-node-id") !== nodeId);
    });
  }

  var revealed = null;  // the node last brought into view, until the user scrolls away

  function reveal(node, smooth) {
    revealed = node;
    // Scroll the page so the graph box sits under the header (it is as tall as the window),
    // then the box so the node ends up in the middle of the part of the box on screen.
    var box = node.closest(".graph-scroll");
    if (!box) { return; }
    var header = document.querySelector("header.top");
    var top = header ? header.getBoundingClientRect().bottom : 0;
    var outer = box.getBoundingClientRect();
    if (Math.abs(outer.top - top - 8) > 1) {
      window.scrollBy(0, outer.top - top - 8);
      outer = box.getBoundingClientRect();
    }
    var shownTop = Math.max(outer.top, top);
    var shownBottom = Math.min(outer.bottom, window.innerHeight);
    var inner = node.getBoundingClientRect();
    box.scrollTo({
      top: box.scrollTop + inner.top - (shownTop + shownBottom - inner.height) / 2,
      left: box.scrollLeft + inner.left - outer.left - (box.clientWidth - inner.width) / 2,
      behavior: smooth ? "smooth" : "auto"
    });
  }

  function selectNode(section, node, how) {
    each(section, "g.node.selected", function (n) { n.classList.remove("selected"); });
    each(section, "path.edge.hot", function (e) { e.classList.remove("hot"); });
    each(section, "li.finding.current", function (f) { f.classList.remove("current"); });
    if (!node) {
      section.querySelector(".node-info").hidden = true;
      filterFindings(section, null);
      return;
    }
    node.classList.add("selected");
    each(section, "path.edge", function (edge) {
      if (edge.getAttribute("data-from") === node.id || edge.getAttribute("data-to") === node.id) {
        edge.classList.add("hot");
      }
    });
    showInfo(section, node);
    filterFindings(section, how.filter ? node.id : null);
    if (how.scroll) { reveal(node, how.smooth); }
  }

  select.addEventListener("change", function () { applyTarget(select.value); });
  // A new window size changes the graph box (it is as tall as the window): keep the node.
  window.addEventListener("resize", function () { if (revealed) { reveal(revealed, false); } });
  ["wheel", "pointerdown", "touchstart"].forEach(function (kind) {
    document.addEventListener(kind, function () { revealed = null; }, {passive: true});
  });
  document.addEventListener("click", function (event) {
    var target = event.target;
    if (!(target instanceof Element)) { return; }
    var section = target.closest("section.model");
    if (!section) { return; }
    var link = target.closest("a.node-link");
    if (link) {
      var linked = document.getElementById(link.getAttribute("data-node-id"));
      if (linked) {
        event.preventDefault();
        selectNode(section, linked, {filter: false, scroll: true, smooth: true});
        link.closest("li.finding").classList.add("current");
      }
      return;
    }
    var node = target.closest("g.node");
    if (node) { selectNode(section, node, {filter: true, scroll: false}); return; }
    if (target.closest("button.show-all")) { selectNode(section, null, {}); }
  });
  document.addEventListener("keydown", function (event) {
    var node = event.target instanceof Element ? event.target.closest("g.node") : null;
    if (node && (event.key === "Enter" || event.key === " ")) {
      event.preventDefault();
      selectNode(node.closest("section.model"), node, {filter: true, scroll: false});
    }
  });

  applyTarget(params.get("target") || select.value);
  var wanted = params.get("node");
  if (wanted !== null) {
    each(document, "g.node", function (node) {
      if (node.getAttribute("data-node") === wanted && !node.classList.contains("selected")) {
        selectNode(node.closest("section.model"), node, {filter: true, scroll: true});
      }
    });
  }
  document.body.setAttribute("data-ready", "1");
})();
