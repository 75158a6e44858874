// VibeXP dashboard behaviour: copy buttons, confirmations and the usage charts (inline SVG, no libraries).
"use strict";

(function () {
  var SVG = "http://www.w3.org/2000/svg";

  // Copy buttons are rendered hidden: without JavaScript the text is still there to select by hand. A button copies
  // an input's value or an element's text, says so in its status line and marks itself data-copied="true".
  function copyText(source, button, status) {
    var text = source.value !== undefined ? source.value : source.textContent;
    function done(ok) {
      status.textContent = ok ? "Copied to the clipboard." : "Copy failed: select the text and copy it by hand.";
      if (ok) { button.setAttribute("data-copied", "true"); }
    }
    function fallback() {
      if (source.select) { source.focus(); source.select(); } else {
        var range = document.createRange();
        range.selectNodeContents(source);
        var selection = window.getSelection();
        selection.removeAllRanges();
        selection.addRange(range);
      }
      var ok = false;
      try { ok = document.execCommand && document.execCommand("copy"); } catch (e) { ok = false; }
      done(ok);
    }
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(text).then(function () { done(true); }, fallback);
    } else {
      fallback();
    }
  }

  function setUpCopyButtons() {
    document.querySelectorAll("[data-copy]").forEach(function (button) {
      var source = document.getElementById(button.getAttribute("data-copy"));
      var status = document.getElementById(button.getAttribute("data-status") || "copy-status");
      if (!source || !status) { return; }
      button.hidden = false;
      button.addEventListener("click", function () { copyText(source, button, status); });
    });
  }

  // Typing a number of days chooses the "Custom" expiry; choosing another expiry clears the number (the server reads
  // a typed number as Custom, so a stale one must not stay behind).
  function setUpChoosers() {
    document.querySelectorAll("[data-chooses]").forEach(function (input) {
      var choice = document.getElementById(input.getAttribute("data-chooses"));
      if (!choice) { return; }
      input.addEventListener("input", function () { if (input.value) { choice.checked = true; } });
      document.querySelectorAll('input[type="radio"][name="' + choice.name + '"]').forEach(function (radio) {
        radio.addEventListener("change", function () { if (radio !== choice && radio.checked) { input.value = ""; } });
      });
    });
  }

  function setUpConfirmations() {
    document.querySelectorAll("form[data-confirm]").forEach(function (form) {
      form.addEventListener("submit", function (event) {
        if (!window.confirm(form.getAttribute("data-confirm"))) { event.preventDefault(); }
      });
    });
  }

  // Checking a box of the custom permissions grid chooses "Custom" (without JavaScript the person picks it).
  function setUpScopeGrids() {
    document.querySelectorAll("[data-scope-grid]").forEach(function (grid) {
      var custom = document.getElementById(grid.getAttribute("data-scope-grid"));
      grid.addEventListener("change", function (event) {
        if (custom && event.target.checked) { custom.checked = true; }
      });
    });
  }

  function el(name, attrs, text) {
    var node = document.createElementNS(SVG, name);
    Object.keys(attrs).forEach(function (k) { node.setAttribute(k, attrs[k]); });
    if (text !== undefined) { node.textContent = text; }
    return node;
  }

  function niceMax(n) {
    if (n <= 5) { return 5; }
    var pow = Math.pow(10, Math.floor(Math.log10(n)));
    var steps = [1, 2, 2.5, 5, 10];
    for (var i = 0; i < steps.length; i++) { if (steps[i] * pow >= n) { return steps[i] * pow; } }
    return 10 * pow;
  }

  function pad(n) { return (n < 10 ? "0" : "") + n; }

  function drawChart(container, data) {
    var points = data.points, count = points.length;
    // Drawn at the container's pixel width (redrawn on resize) so labels keep their size on any screen.
    var W = Math.max(240, Math.round(container.clientWidth || 720)), H = 200, left = 40, right = 8, top = 10, bottom = 28;
    var plotW = W - left - right, plotH = H - top - bottom;
    var max = niceMax(points.reduce(function (m, p) { return Math.max(m, p.n); }, 0));
    var svg = el("svg", { viewBox: "0 0 " + W + " " + H, width: W, height: H, "aria-hidden": "true", focusable: "false" });
    for (var g = 0; g <= 4; g++) {
      var y = top + plotH - (plotH * g) / 4;
      svg.appendChild(el("line", { x1: left, x2: W - right, y1: y, y2: y, "class": "grid" }));
      svg.appendChild(el("text", { x: left - 6, y: y + 4, "text-anchor": "end" }, String(Math.round((max * g) / 4))));
    }
    var slot = plotW / count, barW = Math.max(1, slot * 0.8);
    points.forEach(function (p, i) {
      var t = new Date(p.t), h = (plotH * p.n) / max;
      var x = left + i * slot + (slot - barW) / 2;
      var label = t.toISOString().slice(0, 10) + " " + pad(t.getUTCHours()) + ":00 UTC: " + p.n + " request" + (p.n === 1 ? "" : "s");
      var bar = el("rect", { x: x.toFixed(2), y: (top + plotH - h).toFixed(2), width: barW.toFixed(2), height: h.toFixed(2), "class": "bar" });
      bar.appendChild(el("title", {}, label));
      svg.appendChild(bar);
      var every = count <= 24 ? (W < 480 ? 12 : 6) : 24;
      var tick = count <= 24 ? t.getUTCHours() % every === 0 : t.getUTCHours() === 0 && (W >= 480 || t.getUTCDate() % 2 === 0);
      if (tick) {
        var text = count <= 24 ? pad(t.getUTCHours()) + ":00" : t.toISOString().slice(5, 10);
        svg.appendChild(el("text", { x: (left + i * slot + slot / 2).toFixed(2), y: H - 8, "text-anchor": "middle" }, text));
      }
    });
    svg.appendChild(el("line", { x1: left, x2: W - right, y1: top + plotH, y2: top + plotH, "class": "axis" }));
    container.textContent = "";
    container.appendChild(svg);
  }

  function drawCharts() {
    document.querySelectorAll("[data-chart]").forEach(function (container) {
      var source = document.getElementById(container.getAttribute("data-chart"));
      if (!source) { return; }
      try { drawChart(container, JSON.parse(source.textContent)); } catch (e) { container.textContent = "Chart unavailable."; }
    });
  }

  function setUpCharts() {
    var pending = null, lastWidth = window.innerWidth;
    drawCharts();
    window.addEventListener("resize", function () {
      if (window.innerWidth === lastWidth) { return; }
      lastWidth = window.innerWidth;
      clearTimeout(pending);
      pending = setTimeout(drawCharts, 150);
    });
  }

  // The invitation page: the link's token travels in the fragment (never sent to a server); copy it into the form and
  // drop it from the address bar.
  function setUpFragmentFields() {
    var token = window.location.hash.slice(1);
    if (!token) { return; }
    document.querySelectorAll("[data-from-fragment]").forEach(function (input) {
      if (!input.value) { input.value = decodeURIComponent(token); }
    });
    if (window.history && window.history.replaceState) {
      window.history.replaceState(null, "", window.location.pathname + window.location.search);
    }
  }

  // A form sent once (joining an account): a second press of its button while the first is on its way sends nothing.
  function setUpSubmitOnce() {
    document.querySelectorAll("form[data-submit-once]").forEach(function (form) {
      form.addEventListener("submit", function (event) {
        if (form.getAttribute("data-sent") === "true") { event.preventDefault(); return; }
        form.setAttribute("data-sent", "true");
      });
      // Back to a page kept in the browser's memory: the form may be sent again.
      window.addEventListener("pageshow", function () { form.removeAttribute("data-sent"); });
    });
  }

  // The account switcher (a <details> menu): Escape closes it and gives the focus back to its summary.
  function setUpAccountSwitcher() {
    document.querySelectorAll("details.account-switcher").forEach(function (menu) {
      menu.addEventListener("keydown", function (event) {
        if (event.key === "Escape" && menu.open) {
          menu.open = false;
          menu.querySelector("summary").focus();
        }
      });
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    setUpFragmentFields();
    setUpSubmitOnce();
    setUpAccountSwitcher();
    setUpCopyButtons();
    setUpConfirmations();
    setUpScopeGrids();
    setUpChoosers();
    setUpCharts();
  });
})();
