// The Analytics page's charts (templates/web/analytics.html), drawn with uPlot (static/vendor/uplot-*/)
// from the JSON the view embeds with json_script (#analytics-data). No inline scripts; without
// JavaScript the page still shows its totals, latency bars and tables.
//
// Readable without colour: each series has its own dash pattern, the legend names every series
// with its value under the cursor, and the axes say their unit ($, tokens, %). A click on a chart
// opens LLM Calls with the bucket's window (and the model or agent under the cursor, or
// status=error on the error-rate chart).
(function () {
  "use strict";

  var PALETTE = [
    ["#3856d6", "#c9d2f6"], ["#e07b00", "#fbdcb3"], ["#1a7f4b", "#bfe3cf"], ["#c22f2f", "#f3c6c6"],
    ["#7b3fbf", "#dfccf2"], ["#00838f", "#b8e3e7"], ["#8d6e00", "#ece0b0"], ["#5a6b8c", "#d6dbe5"],
  ];
  var DASHES = [[], [8, 4], [2, 3], [10, 3, 2, 3], [4, 4], [1, 4], [14, 4], [6, 2, 2, 2]];
  var LEGEND_STYLES = ["solid", "dashed", "dotted", "double", "dashed", "dotted", "solid", "double"];
  var PARAM_OF_GROUP = { model: "model", agent: "agent", user: "user_id" };
  var HEIGHT = 210;

  function money(v) {
    if (v == null) { return "—"; }
    if (v === 0) { return "$0"; }
    if (Math.abs(v) >= 100) { return "$" + v.toFixed(0); }
    if (Math.abs(v) >= 1) { return "$" + v.toFixed(2); }
    return "$" + v.toPrecision(2);
  }
  function compact(v) {
    if (v == null) { return "—"; }
    var a = Math.abs(v);
    if (a >= 1e9) { return (v / 1e9).toFixed(1).replace(/\.0$/, "") + "B"; }
    if (a >= 1e6) { return (v / 1e6).toFixed(1).replace(/\.0$/, "") + "M"; }
    if (a >= 1e3) { return (v / 1e3).toFixed(1).replace(/\.0$/, "") + "k"; }
    return String(Math.round(v));
  }
  function whole(v) { return v == null ? "—" : Math.round(v).toLocaleString(); }

  function callsUrl(data, idx, extra) {
    var url = new URL(data.calls_url, window.location.origin);
    url.searchParams.set("from", data.from[idx]);
    url.searchParams.set("to", data.to[idx]);
    Object.keys(extra || {}).forEach(function (name) { url.searchParams.set(name, extra[name]); });
    return url.pathname + url.search;
  }

  function baseOptions(el, data, yLabel, yValues) {
    return {
      width: Math.max(el.clientWidth, 200),
      height: HEIGHT,
      tzDate: function (ts) { return uPlot.tzDate(new Date(ts * 1e3), data.tz); },
      cursor: { drag: { x: false, y: false }, points: { size: 7 } },
      legend: { live: true, markers: { width: 2, dash: function (u, i) { return LEGEND_STYLES[(i - 1) % LEGEND_STYLES.length]; } } },
      scales: { x: { time: true }, y: { range: function (u, min, max) { return [0, max > 0 ? max * 1.08 : 1]; } } },
      axes: [
        { label: "Start of " + data.interval + " (" + data.tz + ")", labelSize: 18, labelFont: "12px system-ui", font: "11px system-ui", stroke: "#6b7385", grid: { stroke: "#eef0f4" } },
        { label: yLabel, labelSize: 18, labelFont: "12px system-ui", font: "11px system-ui", stroke: "#6b7385", size: 56, grid: { stroke: "#eef0f4" },
          values: function (u, splits) { return splits.map(yValues); } },
      ],
    };
  }

  // Cost, stacked: series k is drawn at the sum of keys 0..k; drawn top of the stack first with an
  // opaque fill, so each band shows one key. The legend reads each key's own value.
  function costChart(el, data) {
    var keys = data.cost, n = data.x.length, sums = [], running = new Array(n).fill(0);
    keys.forEach(function (key) {
      running = running.map(function (total, i) { return total + key.values[i]; });
      sums.push(running.slice());
    });
    var opts = baseOptions(el, data, "cost ($)", money);
    opts.series = [{ label: "Time", value: dateValue(data) }];
    var plotted = [data.x];
    for (var k = keys.length - 1; k >= 0; k--) {
      (function (k) {
        var colours = PALETTE[k % PALETTE.length];
        opts.series.push({
          label: keys[k].label, stroke: colours[0], fill: colours[1], width: 1.5, dash: DASHES[k % DASHES.length],
          points: { show: false },
          value: function (u, v, s, idx) { return idx == null ? money(total(keys[k].values)) : money(keys[k].values[idx]); },
        });
        plotted.push(sums[k]);
      })(k);
    }
    var chart = new uPlot(opts, plotted, el);
    clickable(chart, el, function (idx) {
      var value = chart.posToVal(chart.cursor.top, "y"), extra = {};
      for (var k = 0; k < sums.length; k++) {
        if (value <= sums[k][idx]) {
          if (keys[k].key && PARAM_OF_GROUP[data.group_by]) { extra[PARAM_OF_GROUP[data.group_by]] = keys[k].key; }
          break;
        }
      }
      return callsUrl(data, idx, extra);
    });
    return chart;
  }

  function tokensChart(el, data) {
    var opts = baseOptions(el, data, "tokens", compact);
    opts.series = [
      { label: "Time", value: dateValue(data) },
      { label: "Prompt", stroke: PALETTE[0][0], width: 2, dash: DASHES[0],
        value: function (u, v, s, idx) { return idx == null ? whole(total(data.prompt_tokens)) : whole(v); } },
      { label: "Completion", stroke: PALETTE[1][0], width: 2, dash: DASHES[1],
        value: function (u, v, s, idx) { return idx == null ? whole(total(data.completion_tokens)) : whole(v); } },
    ];
    var chart = new uPlot(opts, [data.x, data.prompt_tokens, data.completion_tokens], el);
    clickable(chart, el, function (idx) { return callsUrl(data, idx); });
    return chart;
  }

  function errorsChart(el, data) {
    var rate = data.runs.map(function (runs, i) { return runs ? (100 * data.errors[i]) / runs : null; });
    var opts = baseOptions(el, data, "error rate (%)", function (v) { return v + "%"; });
    opts.scales.y.range = function (u, min, max) { return [0, Math.max(5, Math.min(100, Math.ceil((max || 0) * 1.15)))]; };
    opts.series = [
      { label: "Time", value: dateValue(data) },
      { label: "Error rate", stroke: PALETTE[3][0], fill: "rgba(194, 47, 47, 0.08)", width: 2, dash: DASHES[0],
        points: { show: true, size: 5, fill: "#fff" },
        value: function (u, v, s, idx) {
          if (idx == null) { return overall(data); }
          return v == null ? "no runs" : v.toFixed(1) + "% (" + data.errors[idx] + " of " + data.runs[idx] + " runs)";
        } },
    ];
    var chart = new uPlot(opts, [data.x, rate], el);
    clickable(chart, el, function (idx) { return callsUrl(data, idx, { status: "error" }); });
    return chart;
  }

  function dateValue(data) {
    var pattern = data.interval === "day" ? "{YYYY}-{MM}-{DD}" : "{YYYY}-{MM}-{DD} {HH}:{mm}";
    var format = uPlot.fmtDate(pattern);
    return function (u, ts) { return ts == null ? "whole window" : format(uPlot.tzDate(new Date(ts * 1e3), data.tz)); };
  }

  function total(values) { return values.reduce(function (sum, v) { return sum + (v || 0); }, 0); }
  function overall(data) {
    var runs = total(data.runs), errors = total(data.errors);
    return runs ? ((100 * errors) / runs).toFixed(1) + "% (" + errors + " of " + runs + " runs)" : "no runs";
  }

  // A click on the plot opens LLM Calls for the bucket under the cursor.
  function clickable(chart, el, urlOf) {
    el.classList.add("clickable");
    chart.over.title = "Click to list these runs in LLM Calls";
    chart.over.addEventListener("click", function () {
      var idx = chart.cursor.idx;
      if (idx != null) { window.location.href = urlOf(idx); }
    });
  }

  var DRAW = { cost: costChart, tokens: tokensChart, errors: errorsChart };

  function draw() {
    var source = document.getElementById("analytics-data");
    if (!source || typeof uPlot === "undefined") { return; }
    var data = JSON.parse(source.textContent), charts = [];
    document.querySelectorAll("[data-chart]").forEach(function (el) {
      var make = DRAW[el.getAttribute("data-chart")];
      if (make && data.x.length) { charts.push([el, make(el, data)]); }
    });
    var pending;
    window.addEventListener("resize", function () {
      clearTimeout(pending);
      pending = setTimeout(function () {
        charts.forEach(function (pair) { pair[1].setSize({ width: Math.max(pair[0].clientWidth, 200), height: HEIGHT }); });
      }, 100);
    });
  }

  // The time zone field: suggest the viewer's own zone.
  function tzHint() {
    var input = document.querySelector("[data-tz-hint]");
    var zone = window.Intl && Intl.DateTimeFormat().resolvedOptions().timeZone;
    if (input && zone && !input.value) { input.placeholder = "UTC (yours: " + zone + ")"; }
  }

  document.addEventListener("DOMContentLoaded", function () { draw(); tzHint(); });
})();
