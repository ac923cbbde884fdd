// modelyard web UI: confirmations and charts. No inline scripts anywhere (the pages' CSP
// allows scripts from this site only), so behaviour hangs off data- attributes.
(function () {
  "use strict";

  // <form data-confirm="Promote fraud:3 to production?">: ask before it posts.
  document.addEventListener("submit", function (event) {
    var form = event.target;
    var question = form.getAttribute && form.getAttribute("data-confirm");
    if (question && !window.confirm(question)) {
      event.preventDefault();
      event.stopImmediatePropagation();
    }
  }, true);

  // <div class="chart" data-chart='{"title": ..., "x": [...], "series": [{"label": ..., "values": [...]}], "xlabel": "step"}'>
  var palette = ["#0a58ca", "#d9480f", "#2b8a3e", "#9c36b5", "#c92a2a", "#1098ad", "#5c940d", "#e67700"];
  function drawCharts(root) {
    if (typeof uPlot === "undefined") { return; }
    root.querySelectorAll(".chart[data-chart]").forEach(function (element) {
      if (element.dataset.drawn) { return; }
      element.dataset.drawn = "1";
      var spec = JSON.parse(element.getAttribute("data-chart"));
      var data = [spec.x].concat(spec.series.map(function (s) { return s.values; }));
      var series = [{ label: spec.xlabel || "x" }].concat(spec.series.map(function (s, i) {
        return { label: s.label, stroke: palette[i % palette.length], width: 2, spanGaps: true,
                 points: { show: spec.x.length < 60 } };
      }));
      var options = {
        title: spec.title || "", width: Math.max(element.clientWidth, 300), height: spec.height || 240,
        series: series, scales: { x: { time: !!spec.time } },
        axes: [{ label: spec.xlabel || "" }, { label: spec.ylabel || "" }],
      };
      new uPlot(options, data, element);
    });
  }
  document.addEventListener("DOMContentLoaded", function () { drawCharts(document); });
  document.addEventListener("htmx:afterSettle", function (event) { drawCharts(event.target); });
})();
