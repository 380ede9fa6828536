// The report page's script (plain browser JavaScript, no libraries): SVG charts drawn from the
// page's embedded data, a sample table with search and paging, and a reload while the run goes on.
// Kept free of backquotes so that it can live in this string.
export const REPORT_SCRIPT = String.raw`
(function () {
  'use strict';
  var data = JSON.parse(document.getElementById('report-data').textContent);
  var NS = 'http://www.w3.org/2000/svg';
  var COLORS = ['#1f77b4', '#d62728', '#2ca02c', '#ff7f0e', '#9467bd', '#8c564b', '#e377c2', '#17becf'];

  function el(tag, attrs, parent) {
    var e = document.createElementNS(NS, tag);
    for (var k in attrs) e.setAttribute(k, String(attrs[k]));
    if (parent) parent.appendChild(e);
    return e;
  }
  function text(parent, x, y, s, anchor, cls) {
    var t = el('text', { x: x, y: y, 'text-anchor': anchor || 'middle', 'class': cls || 'lbl' }, parent);
    t.textContent = s;
    return t;
  }
  function fmt(v) {
    if (v === null || v === undefined || !isFinite(v)) return String(v);
    var a = Math.abs(v);
    if (a !== 0 && (a >= 1e5 || a < 1e-3)) return v.toExponential(2);
    return (Math.round(v * 1000) / 1000).toString();
  }
  function ticks(lo, hi, n) {
    if (!(hi > lo)) { hi = lo + 1; }
    var step = Math.pow(10, Math.floor(Math.log10((hi - lo) / n)));
    var err = (hi - lo) / n / step;
    if (err >= 7.5) step *= 10; else if (err >= 3.5) step *= 5; else if (err >= 1.5) step *= 2;
    var out = [];
    for (var v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) out.push(v);
    return out;
  }

  // A line chart: series of [x, y] points, optional error bars [x, lo, hi], an optional reference line.
  function lineChart(host, o) {
    host.textContent = '';
    var W = 560, H = 270, L = 64, R = 12, T = 26, B = 40;
    var svg = el('svg', { viewBox: '0 0 ' + W + ' ' + H, width: '100%', role: 'img', 'aria-label': o.title }, host);
    var xs = [], ys = [];
    o.series.forEach(function (s) { s.points.forEach(function (p) { if (isFinite(p[1])) { xs.push(p[0]); ys.push(p[1]); } }); });
    (o.errors || []).forEach(function (e) { ys.push(e[1], e[2]); });
    if (o.yMin !== undefined) ys.push(o.yMin);
    if (o.yMax !== undefined) ys.push(o.yMax);
    var total = 0;
    o.series.forEach(function (s) { total += s.points.length; });
    svg.setAttribute('data-points', String(total));
    if (xs.length === 0) { text(svg, W / 2, H / 2, 'no data yet', 'middle', 'empty'); return svg; }
    var x0 = Math.min.apply(null, xs), x1 = Math.max.apply(null, xs);
    if (x1 === x0) { x0 -= 1; x1 += 1; }
    var y0 = Math.min.apply(null, ys), y1 = Math.max.apply(null, ys);
    if (y1 === y0) { y0 -= 1; y1 += 1; }
    var pad = (y1 - y0) * 0.05; if (o.yMin === undefined) y0 -= pad; if (o.yMax === undefined) y1 += pad;
    function X(v) { return L + (v - x0) / (x1 - x0) * (W - L - R); }
    function Y(v) { return T + (1 - (v - y0) / (y1 - y0)) * (H - T - B); }
    var axes = el('g', { 'class': 'axes' }, svg);
    ticks(y0, y1, 5).forEach(function (v) {
      el('line', { x1: L, x2: W - R, y1: Y(v), y2: Y(v), 'class': 'grid' }, axes);
      text(axes, L - 6, Y(v) + 4, fmt(v), 'end');
    });
    var xt = o.integerX ? ticks(x0, x1, Math.min(8, Math.max(1, x1 - x0))).filter(function (v) { return Math.abs(v - Math.round(v)) < 1e-9; }) : ticks(x0, x1, 6);
    xt.forEach(function (v) { text(axes, X(v), H - B + 16, fmt(v), 'middle'); });
    text(axes, (L + W - R) / 2, H - 6, o.xLabel, 'middle', 'axis');
    var yl = text(axes, 14, (T + H - B) / 2, o.yLabel, 'middle', 'axis');
    yl.setAttribute('transform', 'rotate(-90 14 ' + ((T + H - B) / 2) + ')');
    if (o.refLine !== undefined && o.refLine >= y0 && o.refLine <= y1) el('line', { x1: L, x2: W - R, y1: Y(o.refLine), y2: Y(o.refLine), 'class': 'ref' }, svg);
    (o.errors || []).forEach(function (e, i) {
      var c = COLORS[0];
      el('line', { x1: X(e[0]), x2: X(e[0]), y1: Y(e[1]), y2: Y(e[2]), stroke: c, 'class': 'err' }, svg);
      el('line', { x1: X(e[0]) - 5, x2: X(e[0]) + 5, y1: Y(e[1]), y2: Y(e[1]), stroke: c, 'class': 'err' }, svg);
      el('line', { x1: X(e[0]) - 5, x2: X(e[0]) + 5, y1: Y(e[2]), y2: Y(e[2]), stroke: c, 'class': 'err' }, svg);
    });
    o.series.forEach(function (s, si) {
      var c = s.color || COLORS[si % COLORS.length];
      var d = s.points.filter(function (p) { return isFinite(p[1]); }).map(function (p) { return X(p[0]).toFixed(1) + ',' + Y(p[1]).toFixed(1); }).join(' ');
      if (s.points.length > 1 && !o.pointsOnly) el('polyline', { points: d, fill: 'none', stroke: c, 'stroke-width': 1.5 }, svg);
      var r = s.points.length > 200 ? 1.2 : 3;
      s.points.forEach(function (p) {
        if (!isFinite(p[1])) return;
        var dot = el('circle', { cx: X(p[0]), cy: Y(p[1]), r: r, fill: c, 'class': 'pt' }, svg);
        var t = el('title', {}, dot);
        t.textContent = s.name + ' @ ' + fmt(p[0]) + ': ' + fmt(p[1]) + (p[2] ? ' ' + p[2] : '');
      });
    });
    if (o.series.length > 1) {
      o.series.forEach(function (s, si) {
        var c = s.color || COLORS[si % COLORS.length];
        el('rect', { x: L + 8 + si * 130, y: 4, width: 10, height: 10, fill: c }, svg);
        text(svg, L + 22 + si * 130, 13, s.name, 'start');
      });
    }
    return svg;
  }

  function stackedBars(host, rows, stages) {
    host.textContent = '';
    var W = 560, H = 40 + rows.length * 28, L = 80, R = 56, T = 24;
    var svg = el('svg', { viewBox: '0 0 ' + W + ' ' + H, width: '100%', role: 'img', 'aria-label': 'stage times' }, host);
    var max = 0;
    rows.forEach(function (r) { var s = 0; stages.forEach(function (k) { s += r.times[k] || 0; }); max = Math.max(max, s); });
    var bars = 0;
    if (max === 0) { text(svg, W / 2, H / 2, 'no stage finished yet', 'middle', 'empty'); svg.setAttribute('data-bars', '0'); return; }
    rows.forEach(function (r, i) {
      var x = L, y = T + i * 28;
      text(svg, L - 6, y + 15, 'iteration ' + r.iteration, 'end');
      stages.forEach(function (k, si) {
        // Every stage that finished gets a bar, a 0.0 s one too (a sliver), so the count is stable.
        if (!(k in r.times)) return;
        var v = r.times[k] || 0;
        var w = v / max * (W - L - R);
        var b = el('rect', { x: x, y: y, width: Math.max(w, 0.5), height: 20, fill: COLORS[si % COLORS.length], 'class': 'bar' }, svg);
        el('title', {}, b).textContent = k + ': ' + v.toFixed(1) + ' s';
        x += w; bars++;
      });
      text(svg, x + 4, y + 15, (function () { var s = 0; stages.forEach(function (k) { s += r.times[k] || 0; }); return s.toFixed(1) + ' s'; })(), 'start');
    });
    stages.forEach(function (k, si) {
      el('rect', { x: 8 + si * 78, y: 4, width: 10, height: 10, fill: COLORS[si % COLORS.length] }, svg);
      text(svg, 22 + si * 78, 13, k, 'start');
    });
    svg.setAttribute('data-bars', String(bars));
  }

  // Charts.
  var its = data.iterations;
  var rated = its.filter(function (it) { return it.winRate; });
  lineChart(document.getElementById('chart-winrate'), {
    title: 'win rate', xLabel: 'iteration', yLabel: 'win rate vs pi_0', yMin: 0, yMax: 1, refLine: 0.5, integerX: true,
    series: [{ name: 'win rate', points: rated.map(function (it) { return [it.iteration, it.winRate.winRate, '[' + fmt(it.winRate.lower) + ', ' + fmt(it.winRate.upper) + '], ' + it.winRate.n + ' comparisons']; }) }],
    errors: rated.map(function (it) { return [it.iteration, it.winRate.lower, it.winRate.upper]; }),
  });
  function stepSeries(key, scale) {
    return its.filter(function (it) { return it.steps.length; }).map(function (it, i) {
      return { name: 'iteration ' + it.iteration, color: COLORS[(it.iteration - 1) % COLORS.length], points: it.steps.map(function (s) { return [s.step, s[key] * (scale || 1)]; }) };
    });
  }
  var beta2 = 1 / (data.recipe.eta * data.recipe.eta);
  var scaleBox = document.getElementById('loss-scaled');
  function drawLoss() {
    var scaled = scaleBox.checked;
    lineChart(document.getElementById('chart-loss'), { title: 'loss', xLabel: 'step', yLabel: scaled ? 'loss x beta^2' : 'loss', series: stepSeries('loss', scaled ? beta2 : 1) });
  }
  scaleBox.addEventListener('change', drawLoss);
  drawLoss();
  lineChart(document.getElementById('chart-margin'), { title: 'margin', xLabel: 'step', yLabel: 'reward margin', refLine: 0, series: stepSeries('margin') });
  lineChart(document.getElementById('chart-accuracy'), { title: 'accuracy', xLabel: 'step', yLabel: 'reward accuracy', yMin: 0, yMax: 1, series: stepSeries('accuracy') });
  var stages = [];
  its.forEach(function (it) { Object.keys(it.stageTimes).forEach(function (k) { if (stages.indexOf(k) < 0) stages.push(k); }); });
  stackedBars(document.getElementById('chart-stages'), its.map(function (it) { return { iteration: it.iteration, times: it.stageTimes }; }), stages);

  // Samples: iteration filter, text search, pages of 20; state in the location hash (kept on reload).
  var state = { it: 'all', q: '', page: 0 };
  location.hash.replace(/^#/, '').split('&').forEach(function (kv) {
    var p = kv.split('='); if (p.length !== 2) return;
    var v = decodeURIComponent(p[1]);
    if (p[0] === 'it') state.it = v; else if (p[0] === 'q') state.q = v; else if (p[0] === 'page') state.page = Math.max(0, parseInt(v, 10) || 0);
  });
  var sel = document.getElementById('sample-iteration'), q = document.getElementById('sample-search');
  var body = document.getElementById('samples-body'), info = document.getElementById('sample-info');
  var PAGE = 20;
  its.forEach(function (it) { var o = document.createElement('option'); o.value = String(it.iteration); o.textContent = 'iteration ' + it.iteration; sel.appendChild(o); });
  sel.value = state.it; q.value = state.q;
  function cell(tr, s, cls) {
    var td = document.createElement('td'); if (cls) td.className = cls;
    if (typeof s === 'string' && s.length > 280) {
      var d = document.createElement('details'), sm = document.createElement('summary');
      sm.textContent = s.slice(0, 280) + '...'; d.appendChild(sm);
      var full = document.createElement('div'); full.className = 'full'; full.textContent = s; d.appendChild(full); td.appendChild(d);
    } else td.textContent = s;
    tr.appendChild(td);
  }
  function renderSamples() {
    var needle = state.q.toLowerCase();
    var rows = data.samples.filter(function (r) {
      if (state.it !== 'all' && String(r.iteration) !== state.it) return false;
      return !needle || (r.prompt + '\n' + r.chosen + '\n' + r.rejected).toLowerCase().indexOf(needle) >= 0;
    });
    var pages = Math.max(1, Math.ceil(rows.length / PAGE));
    state.page = Math.min(state.page, pages - 1);
    body.textContent = '';
    rows.slice(state.page * PAGE, (state.page + 1) * PAGE).forEach(function (r) {
      var tr = document.createElement('tr');
      cell(tr, String(r.iteration), 'num'); cell(tr, r.prompt); cell(tr, r.chosen); cell(tr, r.rejected);
      cell(tr, fmt(r.pWin), 'num'); cell(tr, fmt(r.pLose), 'num'); cell(tr, fmt(r.pChosen), 'num');
      cell(tr, r.scoreChosen === null ? '-' : fmt(r.scoreChosen), 'num'); cell(tr, r.scoreRejected === null ? '-' : fmt(r.scoreRejected), 'num');
      body.appendChild(tr);
    });
    info.textContent = rows.length + ' of ' + data.samples.length + ' pairs, page ' + (state.page + 1) + ' of ' + pages;
    history.replaceState(null, '', '#it=' + encodeURIComponent(state.it) + '&q=' + encodeURIComponent(state.q) + '&page=' + state.page);
  }
  sel.addEventListener('change', function () { state.it = sel.value; state.page = 0; renderSamples(); });
  q.addEventListener('input', function () { state.q = q.value; state.page = 0; renderSamples(); });
  document.getElementById('sample-prev').addEventListener('click', function () { state.page = Math.max(0, state.page - 1); renderSamples(); });
  document.getElementById('sample-next').addEventListener('click', function () { state.page += 1; renderSamples(); });
  renderSamples();

  // While the run goes on, the page reloads to pick up the rewritten file.
  if (data.status === 'running') setTimeout(function () { location.reload(); }, data.reloadSeconds * 1000);
})();
`;
