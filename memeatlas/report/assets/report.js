// memeatlas report: draws the map, cluster list, galleries and plots from the
// JSON embedded in the page. Every meme-derived string goes into the DOM via
// textContent / text nodes / attribute values, never as markup.
(function () {
  'use strict';
  var D = JSON.parse(document.getElementById('memeatlas-data').textContent);
  var M = D.memes, N = M.id.length;
  // Above `report --map-points` the per-meme arrays hold a stratified sample; TOTAL is the run.
  var SAMPLE = D.sample || null, TOTAL = SAMPLE ? SAMPLE.total : N;
  function sampleWeight(i) { // memes of the run each shown meme stands for (its cluster's rate)
    return SAMPLE ? (SAMPLE.weight[String(M.cluster[i])] || 1) : 1;
  }
  var SVGNS = 'http://www.w3.org/2000/svg';
  var $ = function (id) { return document.getElementById(id); };

  // el('div', {class: 'x', text: 'y', title: 'z'}, child, 'text child', ...)
  function el(tag, attrs) {
    var e = document.createElement(tag);
    setAttrs(e, attrs);
    for (var i = 2; i < arguments.length; i++) {
      var c = arguments[i];
      if (c === null || c === undefined) continue;
      e.append(c); // strings become text nodes
    }
    return e;
  }
  function svg(tag, attrs) {
    var e = document.createElementNS(SVGNS, tag);
    setAttrs(e, attrs);
    return e;
  }
  function setAttrs(e, attrs) {
    if (!attrs) return;
    Object.keys(attrs).forEach(function (k) {
      var v = attrs[k];
      if (v === null || v === undefined || v === false) return;
      if (k === 'text') e.textContent = String(v);
      else if (k === 'class') e.setAttribute('class', v);
      else e.setAttribute(k, String(v));
    });
  }
  function fmt(v, d) {
    if (v === null || v === undefined || v === '') return '–';
    if (typeof v === 'number') {
      if (Number.isInteger(v)) return v.toLocaleString('en');
      return v.toFixed(d === undefined ? 3 : d);
    }
    return String(v);
  }
  // append children, skipping null/undefined (DOM append() would write the text "null")
  function put(parent) {
    for (var i = 1; i < arguments.length; i++) if (arguments[i] !== null && arguments[i] !== undefined) parent.append(arguments[i]);
    return parent;
  }
  function clip(s, n) { s = s || ''; return s.length > n ? s.slice(0, n - 1) + '…' : s; }

  // ---- clusters and colours -------------------------------------------------
  var clusterById = {};
  D.clusters.forEach(function (c) { clusterById[c.cluster] = c; });
  var PALETTE = ['#1f77b4', '#ff7f0e', '#2ca02c', '#d62728', '#9467bd', '#8c564b', '#e377c2',
    '#17becf', '#bcbd22', '#393b79', '#ad494a', '#637939', '#7b4173', '#3182bd', '#e6550d',
    '#31a354', '#756bb1', '#843c39', '#6baed6', '#fd8d3c'];
  var NOISE = '#b9bec7';
  function colourFor(rank) {
    if (rank < PALETTE.length) return PALETTE[rank];
    var h = (rank * 137.508) % 360;
    return 'hsl(' + h.toFixed(1) + ',62%,' + (42 + (rank % 3) * 8) + '%)';
  }
  function makeColours(ids) { // ids sorted by size desc; -1 is noise
    var out = {}, r = 0;
    ids.forEach(function (c) { out[c] = (c === -1 || c === null) ? NOISE : colourFor(r++); });
    return out;
  }
  var coloursA = makeColours(D.clusters.map(function (c) { return c.cluster; }));
  var cmp = D.compare, coloursB = {}, cmpLabels = {};
  if (cmp) {
    var countB = {};
    cmp.per_meme.forEach(function (c) { if (c !== null) countB[c] = (countB[c] || 0) + 1; });
    var idsB = Object.keys(countB).map(Number).sort(function (a, b) {
      return (a === -1) - (b === -1) || countB[b] - countB[a] || a - b; });
    coloursB = makeColours(idsB);
    cmpLabels = cmp.labels || {};
  }
  var state = { mode: 'a', selected: null, meme: null, find: [], showNoise: true, showLabels: true,
    level: null, period: null, selection: [], listMode: 'flat', selLeaves: null };
  var S = D.study || {}, TIME = S.time || null, TREE = S.tree || null, NB = S.neighbours || null;
  var coloursL = {};
  function clusterOf(i) {
    if (state.mode === 'b') return cmp.per_meme[i];
    return state.level === null ? M.cluster[i] : groupAt(M.cluster[i], state.level);
  }
  function currentColours() { return state.mode === 'b' ? coloursB : (state.level === null ? coloursA : coloursL); }
  function colourOf(i) {
    var c = clusterOf(i);
    if (c === null || c === undefined) return NOISE;
    return currentColours()[c] || NOISE;
  }

  // ---- study: cluster tree (levels) -------------------------------------------
  // Tree nodes: leaves are the run's clusters, inner nodes (>= 100000) their merges. At level L
  // every cluster is shown as its ancestor at depth L (a leaf above L stands for itself).
  var treeNode = {}, treeKids = {}, maxLevel = 0;
  if (TREE) {
    TREE.nodes.forEach(function (n) {
      treeNode[n.node] = n;
      if (n.parent !== null) (treeKids[n.parent] = treeKids[n.parent] || []).push(n.node);
      if (n.level > maxLevel) maxLevel = n.level;
    });
  }
  function groupAt(c, level) {
    if (c === -1 || c === null || c === undefined || !treeNode[c]) return c;
    var n = treeNode[c];
    while (n.level > level && n.parent !== null) n = treeNode[n.parent];
    return n.node;
  }
  function leavesUnder(node) {
    var kids = treeKids[node];
    if (!kids) return [node];
    var out = [];
    kids.forEach(function (k) { out = out.concat(leavesUnder(k)); });
    return out;
  }
  function innerEntry(node) { // a cluster-like entry for an inner node, built on first use
    if (clusterById[node]) return clusterById[node];
    var n = treeNode[node], members = [], gallery = [], size = 0, leaves = leavesUnder(node);
    leaves.forEach(function (c) {
      var e = clusterById[c];
      if (e) { members = members.concat(e.members); gallery = gallery.concat(e.gallery); size += e.size; }
    });
    var e = { cluster: node, label: n.label || ('group ' + (node - 100000)), keywords: n.keywords || [],
      size: size, members: members, gallery: gallery.slice(0, 24), inner: true, leaves: leaves };
    clusterById[node] = e;
    return e;
  }
  function levelNodes(level) {
    var seen = {}, out = [];
    D.clusters.forEach(function (c) {
      if (c.cluster === -1) return;
      var g = groupAt(c.cluster, level);
      if (!seen[g]) { seen[g] = 1; out.push(treeNode[g] && !treeNode[g].leaf ? innerEntry(g) : clusterById[g]); }
    });
    return out.filter(Boolean).sort(function (a, b) { return b.size - a.size || a.cluster - b.cluster; });
  }
  function setLevel(level) {
    state.level = level; state.selLeaves = null;
    if (level !== null) coloursL = makeColours(levelNodes(level).map(function (e) { return e.cluster; }).concat([-1]));
    state.selected = null;
    computeCentroids(); renderList(); draw(); renderPanel(); drawTime();
  }
  function labelOf(c, mode) {
    if ((mode || state.mode) === 'b') {
      if (c === null || c === undefined) return 'not in compared run';
      var l = cmpLabels[String(c)];
      return (l && l.label) || (c === -1 ? 'noise' : 'cluster ' + c);
    }
    var k = clusterById[c] || (treeNode[c] ? innerEntry(c) : null);
    return k ? k.label : 'cluster ' + c;
  }

  // ---- header ----------------------------------------------------------------
  var run = D.run;
  $('run-line').append(
    el('span', null, 'run '), el('code', { text: run.run_id }),
    el('span', null, ' · space '), el('code', { text: run.space }),
    el('span', null, ' · ' + (run.algorithm || '') + (run.created_at ? ' · ' + run.created_at : '')));
  // One membership (cluster_membership): core, assigned from noise, noise. Counts cover every meme.
  var MB = D.membership || { total: TOTAL, hdbscan_noise: 0, assigned: 0, noise: 0, mode: 'assigned' };
  function pct(n) { return TOTAL ? (100 * n / TOTAL).toFixed(1) + '%' : '–'; }
  [[TOTAL, 'memes', 'stat-memes'], [D.clusters.filter(function (c) { return c.cluster !== -1; }).length, 'clusters', 'stat-clusters'],
   [pct(MB.hdbscan_noise), 'HDBSCAN noise', 'stat-noise'],
   [pct(MB.assigned), 'assigned from noise', 'stat-assigned'], [D.evaluations.length, 'evaluations', 'stat-evaluations']]
    .forEach(function (s) { $('stats').append(el('div', { class: 'stat', id: s[2] }, el('b', { text: fmt(s[0]) }), el('span', { text: s[1] }))); });
  (function noiseLine() {
    var floor = MB.assign_floor === null || MB.assign_floor === undefined ? null : MB.assign_floor;
    var t = !MB.hdbscan_noise ? 'Noise: none; every meme is a core member of a cluster.' : MB.reassigned_run
      ? 'Noise: this --reassign-noise run moved all ' + fmt(MB.hdbscan_noise) + ' noise memes (' + pct(MB.hdbscan_noise) + ') into their most likely cluster, whatever their membership (marked as assigned).'
      : 'Noise: HDBSCAN left ' + fmt(MB.hdbscan_noise) + ' memes (' + pct(MB.hdbscan_noise) + ') in no cluster; ' +
        fmt(MB.assigned) + ' (' + pct(MB.assigned) + ') have a soft membership' + (floor !== null ? ' ≥ ' + floor : '') + ' in one cluster and ' +
        (MB.mode === 'apart' ? 'are still shown as noise (report --noise apart)' : 'are shown in it as assigned') +
        '; ' + fmt(MB.noise) + ' (' + pct(MB.noise) + ') are shown as noise.';
    $('stats').after(el('p', { class: 'noise-line', id: 'noise-line', text: t }));
  })();
  // How many of the store's memes this run covers, and why the rest are absent (text only).
  if (D.coverage && D.coverage.note) $('stats').after(el('p', { class: 'coverage', id: 'coverage', text: 'This report ' + D.coverage.note + '.' }));
  if (SAMPLE) {
    $('map-box').before(el('p', { class: 'sample-note', id: 'sample-note', text: 'Map shows ' + fmt(SAMPLE.shown) + ' of ' + fmt(SAMPLE.total) +
      ' memes (stratified sample): every cluster keeps its representatives, its gallery memes and at least ' + SAMPLE.floor +
      ' points, the rest in proportion to its size (seed ' + SAMPLE.seed + '). Cluster sizes, counts and every statistic cover all ' +
      fmt(SAMPLE.total) + ' memes; search, selection, nearest memes and the time chart work on the memes in the sample. ' +
      'Open a cluster for a command that lists all of its members; report --map-points all draws every meme.' }));
  }

  // ---- map -------------------------------------------------------------------
  var canvas = $('map'), box = $('map-box'), tip = $('tooltip');
  var ctx = canvas.getContext('2d');
  var has = [], minX = Infinity, maxX = -Infinity, minY = Infinity, maxY = -Infinity;
  for (var i = 0; i < N; i++) {
    var x = M.x[i], y = M.y[i];
    if (x === null || y === null) continue;
    has.push(i);
    if (x < minX) minX = x; if (x > maxX) maxX = x;
    if (y < minY) minY = y; if (y > maxY) maxY = y;
  }
  if (!has.length) { minX = minY = 0; maxX = maxY = 1; }
  var view = { k: 1, tx: 0, ty: 0 }, W = 0, H = 0, dpr = 1;
  var sx = new Float32Array(N), sy = new Float32Array(N); // screen positions (CSS px)
  function fit() {
    var pad = 28, spanX = (maxX - minX) || 1, spanY = (maxY - minY) || 1;
    var k = Math.min((W - 2 * pad) / spanX, (H - 2 * pad) / spanY);
    view.k = k > 0 ? k : 1;
    view.tx = (W - spanX * view.k) / 2 - minX * view.k;
    view.ty = (H - spanY * view.k) / 2 + maxY * view.k;  // y up
  }
  function resize() {
    dpr = window.devicePixelRatio || 1;
    W = box.clientWidth; H = box.clientHeight;
    canvas.width = Math.max(1, Math.round(W * dpr)); canvas.height = Math.max(1, Math.round(H * dpr));
  }
  var centroids = null;
  function computeCentroids() { // median position per cluster, for the names
    var acc = {};
    has.forEach(function (i) {
      var c = clusterOf(i);
      if (c === null || c === -1 || c === undefined) return;
      (acc[c] = acc[c] || { xs: [], ys: [] }).xs.push(M.x[i]); acc[c].ys.push(M.y[i]);
    });
    function med(a) { a.sort(function (p, q) { return p - q; }); return a[a.length >> 1]; }
    centroids = Object.keys(acc).map(function (c) {
      return { c: Number(c), x: med(acc[c].xs), y: med(acc[c].ys), n: acc[c].xs.length };
    }).sort(function (a, b) { return b.n - a.n; });
  }
  function draw() {
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.clearRect(0, 0, W, H);
    var sel = state.selected, drawn = 0, drawnSel = 0;
    var r = Math.max(1.6, Math.min(4.5, 9 / Math.sqrt(Math.max(1, N / 400)))) * Math.min(2.2, Math.sqrt(view.k / baseK));
    var findSet = state.findSet;
    // noise first (under), then clusters; the selected cluster last (on top)
    for (var pass = 0; pass < 3; pass++) {
      for (var j = 0; j < has.length; j++) {
        var i = has[j], c = clusterOf(i);
        var isNoise = c === -1 || c === null || c === undefined;
        var isSel = sel !== null && (c === sel || (state.selLeaves !== null && state.selLeaves[c] === 1));
        if (pass === 0 && !isNoise) continue;
        if (pass === 1 && (isNoise || isSel)) continue;
        if (pass === 2 && !(isSel && !isNoise)) continue;
        if (isNoise && !state.showNoise && !isSel) { sx[i] = NaN; continue; }
        var px = M.x[i] * view.k + view.tx, py = -M.y[i] * view.k + view.ty;
        sx[i] = px; sy[i] = py;
        if (px < -10 || py < -10 || px > W + 10 || py > H + 10) continue;
        ctx.globalAlpha = sel === null ? (isNoise ? 0.55 : 0.85) : (isSel ? 0.95 : 0.12);
        if (state.period !== null && TIME && TIME.meme_period[i] !== state.period) ctx.globalAlpha *= 0.15;
        ctx.fillStyle = colourOf(i);
        ctx.beginPath(); ctx.arc(px, py, isNoise ? r * 0.7 : r, 0, 6.2832); ctx.fill();
        drawn++; if (isSel) drawnSel++;
      }
    }
    ctx.globalAlpha = 1;
    if (findSet) {
      ctx.strokeStyle = '#111'; ctx.lineWidth = 1.5;
      state.find.forEach(function (i) {
        if (isNaN(sx[i])) return;
        ctx.beginPath(); ctx.arc(sx[i], sy[i], r + 3, 0, 6.2832); ctx.stroke();
      });
    }
    if (state.meme !== null && !isNaN(sx[state.meme])) {
      ctx.strokeStyle = '#000'; ctx.lineWidth = 2;
      ctx.beginPath(); ctx.arc(sx[state.meme], sy[state.meme], r + 5, 0, 6.2832); ctx.stroke();
    }
    if (state.showLabels && centroids) drawNames();
    drawSelectionOverlay(r);
    canvas.setAttribute('data-points-drawn', String(drawn));
    canvas.setAttribute('data-selected-drawn', String(drawnSel));
  }
  function drawNames() {
    ctx.font = '600 12px system-ui, sans-serif';
    ctx.textAlign = 'center'; ctx.textBaseline = 'middle';
    ctx.lineJoin = 'round';
    var placed = [], maxNames = 40;
    for (var k = 0; k < centroids.length && placed.length < maxNames; k++) {
      var ce = centroids[k];
      if (state.selected !== null && ce.c !== state.selected && !(state.selLeaves && state.selLeaves[ce.c])) continue;
      var px = ce.x * view.k + view.tx, py = -ce.y * view.k + view.ty;
      if (px < 0 || py < 0 || px > W || py > H) continue;
      var text = clip(labelOf(ce.c), 38), w = ctx.measureText(text).width + 8, h = 16;
      var box2 = [px - w / 2, py - h / 2, px + w / 2, py + h / 2];
      var clash = placed.some(function (b) { return !(box2[2] < b[0] || box2[0] > b[2] || box2[3] < b[1] || box2[1] > b[3]); });
      if (clash) continue;
      placed.push(box2);
      ctx.lineWidth = 4; ctx.strokeStyle = 'rgba(255,255,255,0.92)'; ctx.strokeText(text, px, py);
      ctx.fillStyle = '#1d2433'; ctx.fillText(text, px, py);
    }
  }
  function nearest(mx, my, maxDist) {
    var best = -1, bd = maxDist * maxDist;
    for (var j = 0; j < has.length; j++) {
      var i = has[j];
      if (isNaN(sx[i])) continue;
      var dx = sx[i] - mx, dy = sy[i] - my, d = dx * dx + dy * dy;
      if (d < bd) { bd = d; best = i; }
    }
    return best;
  }
  function showTip(i, mx, my) {
    if (i < 0) { tip.hidden = true; return; }
    tip.replaceChildren();
    put(tip, el('b', { text: M.name[i] }), el('div', { class: 'tt-c', text: labelOf(clusterOf(i)) }),
      M.snippet[i] ? el('div', { text: M.snippet[i] }) : null);
    tip.hidden = false;
    var tx = mx + 14, ty = my + 12;
    if (tx + tip.offsetWidth > W) tx = mx - tip.offsetWidth - 10;
    if (ty + tip.offsetHeight > H) ty = my - tip.offsetHeight - 10;
    tip.style.left = tx + 'px'; tip.style.top = ty + 'px';
  }
  var drag = null, baseK = 1;
  canvas.addEventListener('mousemove', function (ev) {
    var rect = canvas.getBoundingClientRect(), mx = ev.clientX - rect.left, my = ev.clientY - rect.top;
    if (selDrag) { selDrag.pts.push([mx, my]); tip.hidden = true; draw(); return; }
    if (drag) {
      view.tx = drag.tx + (ev.clientX - drag.x); view.ty = drag.ty + (ev.clientY - drag.y);
      drag.moved = drag.moved || Math.abs(ev.clientX - drag.x) + Math.abs(ev.clientY - drag.y) > 3;
      tip.hidden = true; draw(); return;
    }
    showTip(nearest(mx, my, 8), mx, my);
  });
  canvas.addEventListener('mouseleave', function () { tip.hidden = true; drag = null; });
  var selDrag = null;
  canvas.addEventListener('mousedown', function (ev) {
    var mode = $('drag-mode').value;
    if (mode !== 'pan') {
      var rect = canvas.getBoundingClientRect();
      selDrag = { mode: mode, pts: [[ev.clientX - rect.left, ev.clientY - rect.top]] };
      return;
    }
    drag = { x: ev.clientX, y: ev.clientY, tx: view.tx, ty: view.ty, moved: false };
  });
  window.addEventListener('mouseup', function (ev) {
    if (selDrag) { finishSelection(); return; }
    if (!drag) return;
    var moved = drag.moved; drag = null;
    if (moved || ev.target !== canvas) return;
    var rect = canvas.getBoundingClientRect();
    var i = nearest(ev.clientX - rect.left, ev.clientY - rect.top, 8);
    if (i < 0) { selectCluster(null); return; }  // a click on empty space clears the selection
    selectCluster(clusterOf(i)); showMeme(i);
  });
  canvas.addEventListener('wheel', function (ev) {
    ev.preventDefault();
    var rect = canvas.getBoundingClientRect(), mx = ev.clientX - rect.left, my = ev.clientY - rect.top;
    var f = Math.exp(-ev.deltaY * 0.0015);
    var k2 = Math.max(baseK * 0.5, Math.min(baseK * 200, view.k * f)); f = k2 / view.k;
    view.tx = mx - (mx - view.tx) * f; view.ty = my - (my - view.ty) * f; view.k = k2;
    draw();
  }, { passive: false });
  canvas.addEventListener('dblclick', function () { fit(); draw(); });
  $('reset-view').addEventListener('click', function () { fit(); draw(); });
  $('show-noise').addEventListener('change', function (ev) { state.showNoise = ev.target.checked; draw(); });
  $('show-labels').addEventListener('change', function (ev) { state.showLabels = ev.target.checked; draw(); });
  $('find').addEventListener('input', function (ev) {
    var q = ev.target.value.trim().toLowerCase();
    state.find = [];
    if (q) for (var i = 0; i < N; i++) {
      // every annotation text field (M.find: description, OCR text, intent, entities, ...), the
      // source title, the snippet and the file name
      if (M.name[i].toLowerCase().indexOf(q) >= 0 || (M.snippet[i] || '').toLowerCase().indexOf(q) >= 0 ||
          (M.find && (M.find[i] || '').indexOf(q) >= 0)) state.find.push(i);
    }
    state.findSet = q ? true : null;
    $('find-count').textContent = q ? state.find.length + ' found' + (SAMPLE ? ' in the map sample' : '') : '';
    draw();
  });
  if (cmp) {
    $('colour-by-wrap').hidden = false;
    $('colour-by').addEventListener('change', function (ev) {
      state.mode = ev.target.value; state.selected = null; computeCentroids(); renderList(); draw();
    });
  }
  function redraw() { resize(); fit(); baseK = view.k; draw(); }
  window.addEventListener('resize', redraw);

  // ---- cluster list ----------------------------------------------------------
  function listEntries() {
    if (state.mode === 'a' && state.level !== null) {
      var out = levelNodes(state.level);
      if (clusterById[-1]) out.push(clusterById[-1]);
      return out;
    }
    if (state.mode === 'b') {
      var count = cmp.sizes || {};  // sizes over every meme (the per-meme list may be a sample)
      if (!cmp.sizes) cmp.per_meme.forEach(function (c) { if (c !== null) count[c] = (count[c] || 0) + 1; });
      return Object.keys(count).map(function (c) {
        c = Number(c);
        var l = cmpLabels[String(c)] || {};
        return { cluster: c, label: labelOf(c, 'b'), keywords: l.keywords || [], size: count[c] };
      });
    }
    return D.clusters.slice();
  }
  function renderList() {
    if (TREE && state.mode === 'a' && state.listMode === 'tree') { renderTreeList(); return; }
    var how = $('sort-clusters').value, items = listEntries();
    items.sort(function (a, b) {
      if ((a.cluster === -1) !== (b.cluster === -1)) return a.cluster === -1 ? 1 : -1;
      if (how === 'id') return a.cluster - b.cluster;
      if (how === 'label') return String(a.label).localeCompare(String(b.label));
      return b.size - a.size || a.cluster - b.cluster;
    });
    var colours = currentColours();
    var ol = $('cluster-list');
    ol.replaceChildren();
    items.forEach(function (c) {
      var sw = el('span', { class: 'swatch' }); sw.style.background = colours[c.cluster] || NOISE;
      var li = el('li', { 'data-cluster': c.cluster, title: c.label },
        sw, el('div', null, el('div', { class: 'cname', text: c.label }),
          c.keywords && c.keywords.length ? el('div', { class: 'ckw', text: c.keywords.slice(0, 6).join(', ') }) : null),
        el('span', { class: 'csize', text: fmt(c.size) }));
      if (state.selected === c.cluster) li.classList.add('sel');
      li.tabIndex = 0;  // keyboard: Tab to a cluster, Enter opens it
      li.addEventListener('click', function () { selectCluster(c.cluster === state.selected ? null : c.cluster); });
      li.addEventListener('keydown', function (ev) { if (ev.key === 'Enter' || ev.key === ' ') { ev.preventDefault(); li.click(); } });
      ol.append(li);
    });
  }
  $('sort-clusters').addEventListener('change', renderList);
  // ---- study: the cluster list folded into the tree ----------------------------
  function renderTreeList() {
    var ol = $('cluster-list');
    ol.replaceChildren();
    var root = TREE.nodes.filter(function (n) { return n.parent === null; })[0];
    function entryRow(node) {
      var n = treeNode[node], e = n.leaf ? clusterById[node] : innerEntry(node);
      var sw = el('span', { class: 'swatch' }); sw.style.background = coloursA[node] || (n.leaf ? NOISE : '#d0d5dd');
      var name = el('div', { class: 'cname', text: e ? e.label : n.label });
      var li = el('li', { 'data-cluster': node, title: e ? e.label : n.label }, sw,
        el('div', null, name, n.keywords && n.keywords.length ? el('div', { class: 'ckw', text: n.keywords.slice(0, 6).join(', ') }) : null),
        el('span', { class: 'csize', text: fmt(n.size) }));
      if (state.selected === node) li.classList.add('sel');
      li.tabIndex = 0;
      li.addEventListener('click', function (ev) { ev.stopPropagation(); selectCluster(node === state.selected ? null : node); });
      return li;
    }
    function build(node, host) {
      var kids = treeKids[node];
      if (!kids) { host.append(entryRow(node)); return; }
      var det = el('details', { class: 'tnode', open: treeNode[node].level < 1 ? 'open' : null, 'data-node': node });
      var sum = el('summary', null);
      sum.append(entryRow(node));
      det.append(sum);
      var ul = el('ol', { class: 'clist tsub' });
      kids.slice().sort(function (a, b) { return treeNode[b].size - treeNode[a].size || a - b; })
        .forEach(function (k) { build(k, ul); });
      det.append(ul);
      host.append(el('li', { class: 'twrap' }, det));
    }
    if (root) build(root.node, ol);
    if (clusterById[-1]) {
      var sw = el('span', { class: 'swatch' }); sw.style.background = NOISE;
      var li = el('li', { 'data-cluster': -1 }, sw, el('div', { class: 'cname', text: 'noise' }), el('span', { class: 'csize', text: fmt(clusterById[-1].size) }));
      li.addEventListener('click', function () { selectCluster(state.selected === -1 ? null : -1); });
      ol.append(li);
    }
  }
  if (TREE) {
    $('level-wrap').hidden = false; $('list-mode-wrap').hidden = false;
    var lv = $('level');
    for (var L = 1; L <= maxLevel; L++) {
      lv.append(el('option', { value: String(L), text: L === maxLevel ? 'level ' + L + ' (finest)' : 'level ' + L }));
    }
    lv.addEventListener('change', function (ev) {
      var v = ev.target.value;
      if (state.mode !== 'a') { $('colour-by').value = 'a'; state.mode = 'a'; }
      setLevel(v === '' ? null : Number(v));
    });
    $('list-mode').addEventListener('change', function (ev) { state.listMode = ev.target.value; renderList(); });
  }

  // ---- cluster panel ---------------------------------------------------------
  function thumbOf(i) { return D.thumbs ? D.thumbs[String(i)] : null; }
  function figure(i) {
    var t = thumbOf(i);
    var img = t ? el('img', { src: t, alt: M.name[i], loading: 'lazy', decoding: 'async' })
                : el('div', { class: 'noimg', text: 'no image' });
    var asg = M.assigned && M.assigned[i] && M.cluster[i] !== -1;
    var f = el('figure', { 'data-meme': i, class: asg ? 'assigned' : null, title: M.name[i] + (asg ? ' (assigned from noise)' : '') + (M.snippet[i] ? '\n' + M.snippet[i] : '') },
      img, el('figcaption', { text: M.name[i] }), asg ? el('div', { class: 'badge', text: 'assigned' }) : null,
      M.snippet[i] ? el('div', { class: 'snip', text: M.snippet[i] }) : null);
    f.addEventListener('click', function () { showMeme(i); });
    return f;
  }
  function selectCluster(c) {
    state.selected = (c === undefined) ? null : c;
    // A tree group picked while the map shows finer clusters highlights all clusters under it.
    state.selLeaves = null;
    if (state.selected !== null && treeNode[state.selected] && !treeNode[state.selected].leaf && state.mode === 'a') {
      state.selLeaves = {};
      leavesUnder(state.selected).forEach(function (l) { state.selLeaves[l] = 1; });
    }
    document.querySelectorAll('#cluster-list li').forEach(function (li) {
      li.classList.toggle('sel', state.selected !== null && Number(li.getAttribute('data-cluster')) === state.selected);
    });
    draw();
    renderPanel();
  }
  var PAGE = 50;  // members per page of a cluster's list: the DOM never holds a whole cluster
  function membersCommand(c) {
    // A ready `memeatlas sql` command for every member of cluster c (of this or the compared
    // run): it returns exactly the memes the panel counts (the same membership).
    var q = D.members_sql || (SAMPLE && SAMPLE.members_sql ? { cluster: SAMPLE.members_sql } : null);
    if (!q) return null;
    var rid = state.mode === 'b' ? cmp.run.run_id : run.run_id;
    var leaves = state.mode === 'a' && treeNode[c] && !treeNode[c].leaf ? leavesUnder(c) : null;
    var sql = (c === -1 && q.noise ? q.noise : q.cluster).replace("run_id = '" + run.run_id.replace(/'/g, "''") + "'", "run_id = '" + rid.replace(/'/g, "''") + "'")
      .replace('cluster = CLUSTER', leaves ? 'cluster IN (' + leaves.join(', ') + ')' : 'cluster = ' + c);
    return 'memeatlas sql -f csv "' + sql + '" > cluster-' + c + '.csv';
  }
  function memberPage(host, members, page, prefix) {
    prefix = prefix || 'member';  // element ids: #member-list (core) or #assigned-list
    host.replaceChildren();
    var pages = Math.max(1, Math.ceil(members.length / PAGE));
    page = Math.max(0, Math.min(page, pages - 1));
    var from = page * PAGE, to = Math.min(members.length, from + PAGE);
    var ul = el('ul', { id: prefix + '-list', 'data-page': page });
    for (var k = from; k < to; k++) {
      (function (i) {
        var li = el('li', { 'data-meme': i, title: M.snippet[i] || '' }, M.name[i]);
        li.addEventListener('click', function () { showMeme(i); });
        ul.append(li);
      })(members[k]);
    }
    host.append(ul);
    if (pages > 1) {
      var prev = el('button', { type: 'button', id: prefix + '-prev', text: '‹ previous' });
      var next = el('button', { type: 'button', id: prefix + '-next', text: 'next ›' });
      prev.disabled = page === 0; next.disabled = page === pages - 1;
      prev.addEventListener('click', function () { memberPage(host, members, page - 1, prefix); });
      next.addEventListener('click', function () { memberPage(host, members, page + 1, prefix); });
      host.append(el('div', { class: 'pager' }, prev,
        el('span', { id: prefix + '-range', class: 'muted', text: fmt(from + 1) + '–' + fmt(to) + ' of ' + fmt(members.length) }), next));
    }
  }
  function renderPanel() {
    var p = $('cluster-panel'), c = state.selected;
    p.replaceChildren();
    if (c === null) {
      p.append(el('p', { class: 'muted', text: 'Click a cluster in the list, on the map or in the size plot to see its members.' }));
      return;
    }
    var members = [];
    var info = state.mode === 'a' ? (clusterById[c] || (treeNode[c] ? innerEntry(c) : null)) : null;
    if (info) members = info.members;
    else for (var i = 0; i < N; i++) if (clusterOf(i) === c) members.push(i);
    var gallery = info ? info.gallery : members.filter(function (i) { return thumbOf(i); }).slice(0, 24);
    // Size over the whole run (the member list may hold only the map sample).
    var size = info ? info.size : (cmp && cmp.sizes && cmp.sizes[String(c)] !== undefined ? cmp.sizes[String(c)] : members.length);
    var inPeriod = periodFilter();
    if (inPeriod) {
      members = members.filter(inPeriod);
      gallery = members.filter(function (i) { return thumbOf(i); }).slice(0, 24);
      size = members.length;
    }
    // Assigned members (from noise) are counted and listed apart from the core members.
    var nAsg = inPeriod ? members.filter(function (i) { return M.assigned && M.assigned[i]; }).length
      : (info ? (info.n_assigned !== undefined ? info.n_assigned : (info.leaves || []).reduce(function (t, l) { return t + ((clusterById[l] || {}).n_assigned || 0); }, 0)) : 0);
    if (c === -1) nAsg = 0;
    var head = el('div', { class: 'phead' },
      el('h2', { text: labelOf(c) }),
      el('div', { class: 'muted', id: 'cluster-size', text: (c === -1 ? 'noise (in no cluster)' : (c >= 100000 ? 'group of ' + leavesUnder(c).length + ' clusters' : 'cluster ' + c)) + ' · ' +
        fmt(size) + ' memes' + (nAsg ? ' (' + fmt(size - nAsg) + ' core, ' + fmt(nAsg) + ' assigned from noise)' : '') +
        (inPeriod ? (SAMPLE ? ' of the map sample' : '') + ' in the ' + TIME.period + ' of ' + TIME.periods[state.period] : '') +
        (inPeriod && SAMPLE ? '' : ' · ' + (TOTAL ? (100 * size / TOTAL).toFixed(1) : 0) + '% of the run') +
        (SAMPLE && !inPeriod ? ' · ' + fmt(members.length) + ' in the map sample' : '') }));
    p.append(head);
    if (inPeriod) {
      var clr = el('button', { type: 'button', id: 'period-clear', text: 'Show all periods' });
      clr.addEventListener('click', function () { setPeriod(null); });
      p.append(clr);
    }
    var fl = TIME && TIME.flags && state.level === null ? TIME.flags[String(c)] : null;
    if (fl && fl.trend !== 'steady') {
      p.append(el('div', { class: 'trend ' + fl.trend, text: fl.trend + ': share ' + (fl.delta > 0 ? '+' : '') + fl.delta.toFixed(3) +
        ' [' + fl.ci_low.toFixed(3) + ', ' + fl.ci_high.toFixed(3) + '] late vs. early (memeatlas trends)' }));
    }
    var kw = info ? info.keywords : ((cmpLabels[String(c)] || {}).keywords || []);
    if (kw && kw.length) {
      var chips = el('div', { class: 'chips' });
      kw.forEach(function (k) { chips.append(el('span', { class: 'chip', text: k })); });
      p.append(chips);
    }
    if (cmp && state.mode === 'a' && cmp.crosswalk && cmp.crosswalk[String(c)]) {
      var parts = cmp.crosswalk[String(c)].map(function (t) { return labelOf(t[0], 'b') + ' (' + t[1] + ')'; });
      p.append(el('div', { class: 'muted', text: 'In the compared run: ' + parts.join(' · ') }));
    }
    var g = el('div', { class: 'gallery', id: 'gallery' });
    gallery.forEach(function (i) { g.append(figure(i)); });
    p.append(g);
    var cmd = membersCommand(c);
    if (gallery.length < size) {
      p.append(el('p', { class: 'muted', text: 'Showing ' + gallery.length + ' of ' + fmt(size) +
        ' thumbnails (representatives first, then core members, then memes assigned from noise). ' +
        (SAMPLE ? 'The lists below hold the ' + fmt(members.length) + ' members in the map sample.' : 'All members are listed below.') }));
    }
    if (cmd && !inPeriod) p.append(el('div', { class: 'muted' }, 'All ' + fmt(size) + ' members: ', el('code', { id: 'members-command', text: cmd })));
    var core = members, asgd = [];
    if (c !== -1 && M.assigned) {
      core = members.filter(function (i) { return !M.assigned[i]; });
      asgd = members.filter(function (i) { return M.assigned[i]; });
    }
    var det = el('details', { class: 'members' }, el('summary', { text: (SAMPLE ? 'The ' + fmt(core.length) + (asgd.length ? ' core' : '') + ' members in the map sample' : 'All ' + core.length + (asgd.length ? ' core' : '') + ' members') }));
    var host = el('div', { id: 'member-pages' });
    det.append(host);
    memberPage(host, core, 0);
    p.append(det);
    if (asgd.length) {
      var det2 = el('details', { class: 'members', id: 'assigned-members' }, el('summary', { text: (SAMPLE ? 'The ' + fmt(asgd.length) + ' members in the map sample' : 'The ' + fmt(asgd.length) + ' members') + ' assigned from noise (soft membership' + (MB.assign_floor ? ' ≥ ' + MB.assign_floor : '') + ')' }));
      var host2 = el('div', { id: 'assigned-pages' });
      det2.append(host2);
      memberPage(host2, asgd, 0, 'assigned');
      p.append(det2);
    }
  }

  // ---- meme detail -----------------------------------------------------------
  // Only an absolute http(s) URL becomes a link (new tab, no opener); anything else, e.g. a
  // javascript: or data: URL, is shown as text.
  function httpUrl(u) {
    if (typeof u !== 'string' || !/^https?:\/\//i.test(u)) return null;
    try {
      var p = new URL(u);
      return (p.protocol === 'http:' || p.protocol === 'https:') ? p.href : null;
    } catch (e) { return null; }
  }
  function sourceField(i) {
    var t = M.source_title ? M.source_title[i] : null, u = M.source_url ? M.source_url[i] : null;
    if (!t && !u) return null;
    var v = el('div', { class: 'v', id: 'meme-source' }), href = httpUrl(u);
    if (href) v.append(el('a', { href: href, target: '_blank', rel: 'noopener noreferrer', text: t || u }));
    else v.append(t || '');
    if (u && !href) v.append(el('div', { class: 'muted', text: u }));  // shown, never followed
    if (href && t) v.append(el('div', { class: 'muted url', text: u }));
    return el('div', { class: 'field' }, el('div', { class: 'k', text: 'source' }), v);
  }
  function field(k, v) {
    if (v === null || v === undefined || v === '') return null;
    return el('div', { class: 'field' }, el('div', { class: 'k', text: k }), el('div', { class: 'v', text: v }));
  }
  function showMeme(i) {
    state.meme = i; draw();
    var b = $('detail-body'), a = D.details[String(i)] || null, t = thumbOf(i);
    b.replaceChildren();
    put(b, el('h2', { text: M.name[i] }));
    if (t) put(b, el('img', { src: t, alt: M.name[i] }));
    put(b, field('cluster', labelOf(M.cluster[i], 'a') + ' (' + M.cluster[i] + ')'));
    if (cmp) put(b, field('compared run', labelOf(cmp.per_meme[i], 'b')));
    var asg = M.assigned && M.assigned[i];
    put(b, field('membership', asg ? (M.cluster[i] === -1 ? 'noise (would be assigned; report --noise apart shows it as noise)' : 'assigned from noise')
      : (M.cluster[i] === -1 ? 'noise (in no cluster)' : 'core member')));
    put(b, field(asg ? 'soft membership' : 'membership probability', M.prob[i] === null ? null : fmt(M.prob[i], 2)));
    put(b, sourceField(i));
    if (a) {
      put(b, field('description', a.description), field('text in the image (OCR)', a.ocr_text),
        field('intent', a.intent), field('template', a.template), field('tone', a.tone));
      if (a.entities && a.entities.length) {
        var ul = el('ul');
        a.entities.forEach(function (e) {
          ul.append(el('li', null, el('b', { text: e.name || '' }), ' — ' + (e.role || '') + (e.stands_for ? ': ' + e.stands_for : '')));
        });
        put(b, el('div', { class: 'field' }, el('div', { class: 'k', text: 'entities' }), ul));
      }
      put(b, field('annotator', a.annotator));
    } else {
      put(b, field('text', M.snippet[i]));
    }
    put(b, field('meme id', M.id[i]));
    var sid = S.source_id ? S.source_id[i] : null;
    put(b, field('corpus id', sid));
    if (TIME && TIME.meme_period[i] !== null && TIME.meme_period[i] !== undefined) put(b, field(TIME.period, TIME.periods[TIME.meme_period[i]]));
    put(b, neighbourList(i));
    $('meme-detail').hidden = false;
  }
  $('detail-close').addEventListener('click', function () { $('meme-detail').hidden = true; state.meme = null; draw(); });
  document.addEventListener('keydown', function (ev) {
    if (ev.key === 'Escape') { $('meme-detail').hidden = true; state.meme = null; draw(); }
  });

  // ---- evaluations -----------------------------------------------------------
  function detailText(e) {
    var d = e.details || {}, parts = [];
    if (e.dimension) parts.push(e.dimension);
    if (e.pair_set) parts.push('pair set ' + e.pair_set);
    ['scope', 'run_b', 'vs', 'noise', 'n_within', 'n_between', 'coders', 'n_clusters'].forEach(function (k) {
      if (d[k] !== undefined && d[k] !== null) parts.push(k + '=' + (typeof d[k] === 'object' ? JSON.stringify(d[k]) : d[k]));
    });
    if (e.command) parts.push('(' + e.command + ')');
    return parts.join(' · ');
  }
  (function renderEvaluations() {
    var host = $('evaluations');
    if (!D.evaluations.length) {
      host.append(el('p', { class: 'muted', text: 'No evaluations stored for this run yet. Rate pairs (memeatlas evaluate pairs / rate / import-ratings) and score the run with memeatlas evaluate; the results appear here.' }));
      return;
    }
    var t = el('table', { class: 'grid', id: 'eval-table' });
    t.append(el('thead', null, el('tr', null, el('th', { text: 'metric' }), el('th', { text: 'run' }), el('th', { text: 'value' }),
      el('th', { text: '95% CI' }), el('th', { text: 'n' }), el('th', { text: 'details' }), el('th', { text: 'when' }))));
    var tb = el('tbody');
    var rank = function (m) { return m === 'cq' ? 0 : m === 'delta_cq' ? 1 : /^alpha/.test(m) ? 2 : /^label_/.test(m) ? 4 : 3; };
    D.evaluations.slice().sort(function (a, b) { return rank(a.metric) - rank(b.metric); }).forEach(function (e) {
      var ci = (e.ci_low === null || e.ci_low === undefined) ? '–' : '[' + fmt(e.ci_low) + ', ' + fmt(e.ci_high) + ']';
      var d = el('td', { text: detailText(e) });
      if (e.details && typeof e.details === 'object') d.setAttribute('title', JSON.stringify(e.details));
      tb.append(el('tr', null, el('td', { class: 'nowrap', text: e.metric }), el('td', { class: 'nowrap', text: e.run_id || 'pair set' }),
        el('td', { class: 'num', text: fmt(e.value) }), el('td', { class: 'num', text: ci }),
        el('td', { class: 'num', text: fmt(e.n) }), d, el('td', { class: 'num', text: e.created_at || '' })));
    });
    t.append(tb); host.append(t);
  })();

  // ---- plots -----------------------------------------------------------------
  function axisText(x, y, s, anchor, extra) {
    var t = svg('text', Object.assign({ x: x, y: y, 'font-size': 11, fill: '#555', 'text-anchor': anchor || 'middle' }, extra || {}));
    t.textContent = s; return t;
  }
  function niceTicks(lo, hi, n) {
    var span = hi - lo || 1, step = Math.pow(10, Math.floor(Math.log10(span / n)));
    [1, 2, 5, 10].some(function (m) { if (span / (step * m) <= n) { step *= m; return true; } return false; });
    var out = [];
    for (var v = Math.ceil(lo / step) * step; v <= hi + 1e-9; v += step) out.push(Math.round(v * 1e6) / 1e6 || 0);
    return out;
  }
  (function plotSizes() {
    var host = $('plot-sizes'), data = D.sizes.filter(function (s) { return s.cluster !== -1; });
    var noise = D.sizes.filter(function (s) { return s.cluster === -1; })[0];
    var bars = data.concat(noise ? [noise] : []);
    if (!bars.length) { host.append(el('p', { class: 'muted', text: 'No clusters.' })); return; }
    var w = 560, h = 240, l = 44, r = 10, t = 10, b = 38, maxV = Math.max.apply(null, bars.map(function (s) { return s.size; }));
    var s = svg('svg', { viewBox: '0 0 ' + w + ' ' + h, role: 'img', 'aria-label': 'cluster sizes', id: 'sizes-svg' });
    var bw = (w - l - r) / bars.length;
    niceTicks(0, maxV, 5).forEach(function (v) {
      var y = h - b - (h - t - b) * v / maxV;
      s.append(svg('line', { x1: l, x2: w - r, y1: y, y2: y, stroke: '#eee' }));
      s.append(axisText(l - 6, y + 4, fmt(v), 'end'));
    });
    bars.forEach(function (d, k) {
      var bh = (h - t - b) * d.size / maxV;
      var rect = svg('rect', { class: 'bar', x: l + k * bw + bw * 0.1, y: h - b - bh, width: Math.max(1, bw * 0.8), height: bh,
        fill: coloursA[d.cluster] || NOISE, 'data-cluster': d.cluster });
      var ti = svg('title'); ti.textContent = d.label + ': ' + d.size; rect.append(ti);
      rect.addEventListener('click', function () {
        if (state.mode !== 'a') { $('colour-by').value = 'a'; state.mode = 'a'; computeCentroids(); renderList(); }
        if (state.level !== null) { $('level').value = ''; setLevel(null); }  // sizes are of clusters
        selectCluster(d.cluster);
      });
      s.append(rect);
    });
    s.append(svg('line', { x1: l, x2: w - r, y1: h - b, y2: h - b, stroke: '#999' }));
    s.append(axisText((l + w - r) / 2, h - 8, 'clusters, largest first' + (noise ? ' (grey: noise)' : '')));
    s.append(axisText(12, (t + h - b) / 2, 'memes', 'middle', { transform: 'rotate(-90 12 ' + (t + h - b) / 2 + ')' }));
    host.append(s);
  })();
  (function plotSweep() {
    var host = $('plot-sweep'), pts = D.sweep || [];
    if (!pts.length) {
      host.append(el('p', { class: 'muted', text: 'No sweep yet: this curve appears when cluster quality (CQ) has been evaluated for runs of this space with different min_cluster_size values (memeatlas evaluate sweep).' }));
      return;
    }
    var series = {}; pts.forEach(function (p) { (series[p.series] = series[p.series] || []).push(p); });
    var names = Object.keys(series);
    var xsAll = pts.map(function (p) { return Number(p.min_cluster_size); });
    var ysAll = []; pts.forEach(function (p) { ysAll.push(p.value); if (p.ci_low !== null) ysAll.push(p.ci_low); if (p.ci_high !== null) ysAll.push(p.ci_high); });
    var x0 = Math.min.apply(null, xsAll), x1 = Math.max.apply(null, xsAll);
    var y0 = Math.min(0, Math.min.apply(null, ysAll)), y1 = Math.max.apply(null, ysAll);
    if (y1 === y0) y1 = y0 + 1;
    var rowsL = Math.ceil(names.length / 2), w = 560, h = 240 + 16 * rowsL, l = 44, r = 10, t = 10, b = 44 + 16 * rowsL;
    var X = function (v) { return l + (w - l - r) * (x1 === x0 ? 0.5 : (v - x0) / (x1 - x0)); };
    var Y = function (v) { return h - b - (h - t - b) * (v - y0) / (y1 - y0); };
    var s = svg('svg', { viewBox: '0 0 ' + w + ' ' + h, role: 'img', 'aria-label': 'CQ versus min cluster size', id: 'sweep-svg' });
    niceTicks(y0, y1, 5).forEach(function (v) {
      s.append(svg('line', { x1: l, x2: w - r, y1: Y(v), y2: Y(v), stroke: v === 0 ? '#bbb' : '#eee' }));
      s.append(axisText(l - 6, Y(v) + 4, fmt(v, 2), 'end'));
    });
    Array.from(new Set(xsAll)).sort(function (a, b2) { return a - b2; }).forEach(function (v) { s.append(axisText(X(v), h - b + 14, String(v))); });
    names.forEach(function (name, k) {
      var col = colourFor(k), ps = series[name];
      var d = ps.map(function (p, j) { return (j ? 'L' : 'M') + X(Number(p.min_cluster_size)).toFixed(1) + ' ' + Y(p.value).toFixed(1); }).join(' ');
      s.append(svg('path', { d: d, fill: 'none', stroke: col, 'stroke-width': 2 }));
      ps.forEach(function (p) {
        var cx = X(Number(p.min_cluster_size));
        if (p.ci_low !== null && p.ci_high !== null) s.append(svg('line', { x1: cx, x2: cx, y1: Y(p.ci_low), y2: Y(p.ci_high), stroke: col, 'stroke-opacity': 0.5 }));
        var dot = svg('circle', { cx: cx, cy: Y(p.value), r: p.current ? 5.5 : 3.5, fill: p.current ? '#fff' : col, stroke: col, 'stroke-width': 2 });
        var ti = svg('title'); ti.textContent = name + ' · min_cluster_size ' + p.min_cluster_size + ': CQ ' + fmt(p.value) +
          (p.ci_low !== null ? ' [' + fmt(p.ci_low) + ', ' + fmt(p.ci_high) + ']' : '') + (p.current ? ' (this run)' : '');
        dot.append(ti); s.append(dot);
      });
      var lx = l + (k % 2) * 250, ly = h - b + 46 + 16 * Math.floor(k / 2);
      s.append(svg('rect', { x: lx, y: ly - 8, width: 10, height: 10, fill: col }));
      s.append(axisText(lx + 14, ly + 1, clip(name, 40), 'start'));
    });
    s.append(axisText((l + w - r) / 2, h - b + 30, 'min_cluster_size (open circle: this run)'));
    s.append(axisText(12, (t + h - b) / 2, 'CQ', 'middle', { transform: 'rotate(-90 12 ' + (t + h - b) / 2 + ')' }));
    host.append(s);
  })();

  // ---- compare ---------------------------------------------------------------
  if (cmp) {
    $('compare-panel').hidden = false;
    var c2 = cmp.run;
    $('compare').append(el('dl', { class: 'kv' },
      el('dt', { text: 'run' }), el('dd', { text: c2.run_id + ' (' + c2.space + ', ' + c2.algorithm + ')' }),
      el('dt', { text: 'memes in both runs' }), el('dd', { text: fmt(cmp.n_shared) + ' of ' + fmt(TOTAL) }),
      el('dt', { text: 'adjusted Rand index' }), el('dd', { text: fmt(cmp.ari) }),
      el('dt', { text: 'normalised mutual information' }), el('dd', { text: fmt(cmp.nmi) }),
      el('dt', { text: 'clusters' }), el('dd', { text: fmt(c2.n_clusters) + ' (noise ' + (c2.noise_fraction === null ? '–' : (100 * c2.noise_fraction).toFixed(1) + '%') + ')' })),
      el('p', { class: 'muted', text: 'ARI/NMI count noise (-1) as one more group. Switch “Colour by” above the map to see the other run’s clusters on this layout.' }));
  }

  // ---- granularity and stability (issue 10) ----------------------------------
  (function renderGranularity() {
    var G = D.granularity || {}, curve = G.curve || [], scores = G.scores || [], st = G.stability, nz = G.noise || {};
    var assignedNoise = MB.assigned > 0;
    if (!curve.length && !scores.length && !st && !assignedNoise) return;
    $('granularity-panel').hidden = false;
    // One small SVG line chart: series = {name: [{x, y, label, mark}]}; logX for sizes.
    function chart(host, series, xlab, ylab, logX, id) {
      var names = Object.keys(series), all = [];
      names.forEach(function (n) { series[n].forEach(function (p) { if (p.y !== null && p.y !== undefined) all.push(p); }); });
      if (!all.length) return;
      var tx = function (v) { return logX ? Math.log(Math.max(v, 1e-9)) : v; };
      var xs = all.map(function (p) { return tx(p.x); }), ys = all.map(function (p) { return p.y; });
      var x0 = Math.min.apply(null, xs), x1 = Math.max.apply(null, xs);
      var y0 = Math.min(0, Math.min.apply(null, ys)), y1 = Math.max.apply(null, ys);
      if (y1 === y0) y1 = y0 + 1;
      var rowsL = Math.ceil(names.length / 2), w = 560, h = 230 + 16 * rowsL, l = 48, r = 10, t = 10, b = 44 + 16 * rowsL;
      var X = function (v) { return l + (w - l - r) * (x1 === x0 ? 0.5 : (tx(v) - x0) / (x1 - x0)); };
      var Y = function (v) { return h - b - (h - t - b) * (v - y0) / (y1 - y0); };
      var s = svg('svg', { viewBox: '0 0 ' + w + ' ' + h, role: 'img', 'aria-label': ylab + ' versus ' + xlab, id: id });
      niceTicks(y0, y1, 5).forEach(function (v) {
        s.append(svg('line', { x1: l, x2: w - r, y1: Y(v), y2: Y(v), stroke: v === 0 ? '#bbb' : '#eee' }));
        s.append(axisText(l - 6, Y(v) + 4, fmt(v, 2), 'end'));
      });
      Array.from(new Set(all.map(function (p) { return p.x; }))).sort(function (a, c) { return a - c; })
        .forEach(function (v) { s.append(axisText(X(v), h - b + 14, String(v))); });
      names.forEach(function (name, k) {
        var col = colourFor(k), ps = series[name].filter(function (p) { return p.y !== null && p.y !== undefined; });
        ps.sort(function (a, c) { return a.x - c.x; });
        var d = ps.map(function (p, j) { return (j ? 'L' : 'M') + X(p.x).toFixed(1) + ' ' + Y(p.y).toFixed(1); }).join(' ');
        s.append(svg('path', { d: d, fill: 'none', stroke: col, 'stroke-width': 2 }));
        ps.forEach(function (p) {
          var dot = svg('circle', { cx: X(p.x), cy: Y(p.y), r: p.mark ? 5.5 : 3.5, fill: p.mark ? '#fff' : col, stroke: col, 'stroke-width': 2 });
          var ti = svg('title'); ti.textContent = p.label; dot.append(ti); s.append(dot);
        });
        var lx = l + (k % 2) * 250, ly = h - b + 46 + 16 * Math.floor(k / 2);
        s.append(svg('rect', { x: lx, y: ly - 8, width: 10, height: 10, fill: col }));
        s.append(axisText(lx + 14, ly + 1, clip(name, 40), 'start'));
      });
      s.append(axisText((l + w - r) / 2, h - b + 30, xlab + ' (open circle: this run)'));
      s.append(axisText(12, (t + h - b) / 2, ylab, 'middle', { transform: 'rotate(-90 12 ' + (t + h - b) / 2 + ')' }));
      host.append(s);
    }
    var gh = $('plot-granularity');
    if (curve.length) {
      var crit = curve[0].criterion, chosen = curve.filter(function (p) { return p.chosen; })[0];
      var ser = {}; ser[crit] = curve.map(function (p) {
        return { x: p.min_cluster_size, y: p.value, mark: p.chosen,
          label: 'min_cluster_size ' + p.min_cluster_size + ': ' + crit + ' ' + fmt(p.value) + ', ' + p.n_clusters + ' clusters, ' + (100 * (p.noise_fraction || 0)).toFixed(1) + '% noise' + (p.chosen ? ' (chosen)' : '') };
      });
      chart(gh, ser, 'min_cluster_size', crit, true, 'granularity-svg');
      gh.append(el('p', { class: 'muted', text: 'min_cluster_size auto: HDBSCAN was fitted on one UMAP reduction for each candidate size; the size with the highest ' + crit + ' was kept' + (chosen ? ' (' + chosen.min_cluster_size + ', ' + chosen.n_clusters + ' clusters)' : '') + '. Clusters per candidate: ' + curve.map(function (p) { return p.min_cluster_size + '→' + p.n_clusters; }).join(', ') + '.' }));
    } else {
      gh.append(el('p', { class: 'muted', text: 'This run used a fixed min_cluster_size (' + fmt((run.params || {}).min_cluster_size) + '); with --min-cluster-size auto the criterion curve over the candidate sizes appears here.' }));
    }
    var sb = $('stability-box');
    if (assignedNoise) {
      sb.append(el('p', { id: 'noise-note', text: $('noise-line').textContent }));
    }
    if (st) {
      var weak = (G.clusters || []).filter(function (c) { return c.jaccard !== null && c.jaccard < 0.5; });
      sb.append(el('dl', { class: 'kv' },
        el('dt', { text: 'stability (mean pairwise ARI)' }), el('dd', { text: fmt(st.mean_ari) + ' over ' + (st.seeds || []).length + ' seeds (lowest pair ' + fmt(st.min_ari) + ')' }),
        el('dt', { text: 'with noise assigned' }), el('dd', { text: fmt(st.mean_ari_assigned) }),
        el('dt', { text: 'clusters per seed' }), el('dd', { text: (st.n_clusters || []).join(', ') }),
        el('dt', { text: 'mean cluster Jaccard' }), el('dd', { text: fmt(st.mean_cluster_jaccard) + (weak.length ? ' (' + weak.length + ' clusters below 0.5: ' + weak.slice(0, 8).map(function (c) { return labelOf(c.cluster, 'a'); }).join(', ') + ')' : '') })));
    } else {
      sb.append(el('p', { class: 'muted', text: 'Stability not measured: memeatlas cluster --stability 5 re-runs the clustering with 5 seeds and stores how much it changes.' }));
    }
    var sh = $('plot-scores');
    if (scores.length) {
      var bys = {};
      scores.forEach(function (p) {
        (bys[p.series] = bys[p.series] || []).push({ x: p.n_clusters, y: p.value, mark: p.current,
          label: p.series + ' · ' + p.n_clusters + ' clusters, ' + (100 * (p.noise_fraction || 0)).toFixed(1) + '% noise: ' + fmt(p.value) + ' (' + p.run_id + ')' });
      });
      chart(sh, bys, 'clusters', 'score', true, 'scores-svg');
      sh.append(el('p', { class: 'muted', text: 'Evaluations (CQ against human ratings; ARI/NMI against known labels) of every run of this space, by its number of clusters. Few clusters raise CQ on a fixed pair sample: read CQ with the cluster count beside it.' }));
    }
  })();

  // ---- provenance ------------------------------------------------------------
  (function renderProvenance() {
    var host = $('provenance'), dl = el('dl', { class: 'kv' });
    ['run_id', 'name', 'space', 'algorithm', 'kind', 'parent_run', 'seed', 'n_items', 'n_clusters', 'noise_fraction', 'fingerprint', 'created_at']
      .forEach(function (k) { if (run[k] !== null && run[k] !== undefined) dl.append(el('dt', { text: k }), el('dd', { text: fmt(run[k]) })); });
    if (D.annotators && D.annotators.length) dl.append(el('dt', { text: 'annotations shown' }), el('dd', { text: D.annotators.join(', ') }));
    var g = D.generated || {};
    dl.append(el('dt', { text: 'report generated' }), el('dd', { text: (g.at || '') + ' by memeatlas ' + (g.memeatlas || '') + ' from ' + (g.db || '') }));
    host.append(dl);
    renderEdits(host);
    ['params', 'spaces', 'software', 'timings'].forEach(function (k) {
      if (run[k] === null || run[k] === undefined) return;
      host.append(el('h3', { text: k }), el('pre', { class: 'json', text: JSON.stringify(run[k], null, 2) }));
    });
  })();

  // ---- study: box and lasso selection -------------------------------------------
  var selFlag = new Uint8Array(N);
  function insidePoly(x, y, poly) { // ray casting
    var inside = false;
    for (var a = 0, b = poly.length - 1; a < poly.length; b = a++) {
      var xa = poly[a][0], ya = poly[a][1], xb = poly[b][0], yb = poly[b][1];
      if (((ya > y) !== (yb > y)) && (x < (xb - xa) * (y - ya) / (yb - ya) + xa)) inside = !inside;
    }
    return inside;
  }
  function finishSelection() {
    var d = selDrag; selDrag = null;
    var pts = d.pts, out = [];
    if (pts.length < 2) { draw(); return; }
    var x0 = Math.min(pts[0][0], pts[pts.length - 1][0]), x1 = Math.max(pts[0][0], pts[pts.length - 1][0]);
    var y0 = Math.min(pts[0][1], pts[pts.length - 1][1]), y1 = Math.max(pts[0][1], pts[pts.length - 1][1]);
    for (var j = 0; j < has.length; j++) {
      var i = has[j], px = sx[i], py = sy[i];
      if (isNaN(px)) continue;  // hidden (noise switched off)
      if (d.mode === 'box' ? (px >= x0 && px <= x1 && py >= y0 && py <= y1) : insidePoly(px, py, pts)) out.push(i);
    }
    setSelection(out);
  }
  function setSelection(indices) {
    selFlag.fill(0);
    state.selection = indices.slice();
    state.selection.forEach(function (i) { selFlag[i] = 1; });
    draw(); renderSelection();
  }
  function drawSelectionOverlay(r) {
    if (state.selection.length) {
      ctx.strokeStyle = '#111'; ctx.lineWidth = 1.2;
      state.selection.forEach(function (i) {
        if (isNaN(sx[i])) return;
        ctx.beginPath(); ctx.arc(sx[i], sy[i], r + 1.5, 0, 6.2832); ctx.stroke();
      });
    }
    if (selDrag && selDrag.pts.length > 1) {
      var p = selDrag.pts;
      ctx.strokeStyle = '#2f6fed'; ctx.lineWidth = 1.5; ctx.setLineDash([5, 4]);
      ctx.fillStyle = 'rgba(47,111,237,0.08)';
      ctx.beginPath();
      if (selDrag.mode === 'box') {
        var a = p[0], b = p[p.length - 1];
        ctx.rect(Math.min(a[0], b[0]), Math.min(a[1], b[1]), Math.abs(b[0] - a[0]), Math.abs(b[1] - a[1]));
      } else {
        ctx.moveTo(p[0][0], p[0][1]);
        for (var k = 1; k < p.length; k++) ctx.lineTo(p[k][0], p[k][1]);
        ctx.closePath();
      }
      ctx.fill(); ctx.stroke(); ctx.setLineDash([]);
    }
  }
  function csvField(v) {
    v = v === null || v === undefined ? '' : String(v);
    return /[",\r\n]/.test(v) ? '"' + v.replace(/"/g, '""') + '"' : v;
  }
  // The download: meme_id, source_id, label — what `classify import-labels` reads as class
  // labels, and what `curate move --memes-file` reads (its meme_id column).
  function selectionCsv() {
    var label = $('selection-label').value.trim() || 'selected';
    var lines = ['meme_id,source_id,label'];
    state.selection.forEach(function (i) {
      lines.push([M.id[i], S.source_id ? S.source_id[i] : '', label].map(csvField).join(','));
    });
    return lines.join('\r\n') + '\r\n';
  }
  function downloadSelection() {
    var blob = new Blob([selectionCsv()], { type: 'text/csv;charset=utf-8' });
    var a = el('a', { href: URL.createObjectURL(blob), download: 'selection-' + run.run_id + '.csv' });
    document.body.append(a); a.click(); a.remove();
  }
  function renderSelection() {
    var p = $('selection-panel'), n = state.selection.length;
    p.hidden = n === 0;
    $('selection-count').textContent = n + ' memes selected' + (SAMPLE ? ' (of the map sample)' : '');
    $('selection-sample').hidden = !SAMPLE;
    if (SAMPLE) $('selection-sample').textContent = 'The map shows a sample of ' + fmt(SAMPLE.shown) + ' of ' + fmt(SAMPLE.total) +
      ' memes, so the selection and its CSV hold only the sampled memes in the area; open a cluster for a command that lists all of its members.';
    var by = {};
    state.selection.forEach(function (i) { var c = clusterOf(i); by[c] = (by[c] || 0) + 1; });
    var parts = Object.keys(by).map(Number).sort(function (a, b) { return by[b] - by[a]; })
      .map(function (c) { return labelOf(c) + ' (' + by[c] + ')'; });
    $('selection-clusters').textContent = parts.length ? 'In: ' + parts.slice(0, 12).join(' · ') + (parts.length > 12 ? ' …' : '') : '';
    $('selection-hint').textContent = 'memeatlas curate move --run ' + run.run_id + ' --to CLUSTER --memes-file selection-' + run.run_id + '.csv';
    var ul = $('selection-list');
    ul.replaceChildren();
    state.selection.slice(0, 300).forEach(function (i) {
      var li = el('li', { 'data-meme': i, title: M.snippet[i] || '' }, M.name[i]);
      li.addEventListener('click', function () { showMeme(i); });
      ul.append(li);
    });
    if (n > 300) ul.append(el('li', { class: 'muted', text: '… and ' + (n - 300) + ' more (all are in the CSV)' }));
  }
  $('selection-csv').addEventListener('click', downloadSelection);
  $('selection-clear').addEventListener('click', function () { setSelection([]); });
  $('drag-mode').addEventListener('change', function (ev) { canvas.setAttribute('data-drag', ev.target.value); });

  // ---- study: nearest neighbours of a meme -----------------------------------------
  function neighbourList(i) {
    if (!NB || !NB.k) return null;
    var box = el('div', { class: 'field', id: 'neighbours' }, el('div', { class: 'k', text: 'nearest memes ' + (SAMPLE ? 'in the map sample ' : '') + '(' + (NB.space || 'run space') + ', cosine)' }));
    var g = el('div', { class: 'nbgrid' });
    for (var j = 0; j < NB.k; j++) {
      var n = NB.idx[i * NB.k + j];
      if (n === null || n === undefined) continue;
      (function (n, simv) {
        var t = thumbOf(n);
        var f = el('figure', { 'data-meme': n, title: M.name[n] },
          t ? el('img', { src: t, alt: M.name[n] }) : el('div', { class: 'noimg', text: 'no image' }),
          el('figcaption', { text: M.name[n] }),
          el('div', { class: 'snip', text: labelOf(M.cluster[n], 'a') + ' · ' + (simv === null ? '' : simv.toFixed(2)) }));
        f.addEventListener('click', function () { showMeme(n); });
        g.append(f);
      })(n, NB.sim[i * NB.k + j]);
    }
    box.append(g);
    return box;
  }

  // ---- study: shares per cluster over time ----------------------------------------
  function periodFilter() {
    if (state.period === null || !TIME) return null;
    var p = state.period;
    return function (i) { return TIME.meme_period[i] === p; };
  }
  function setPeriod(k) { state.period = k; draw(); renderPanel(); drawTime(); }
  function drawTime() {
    if (!TIME) return;
    $('time-panel').hidden = false;
    var host = $('plot-time');
    host.replaceChildren();
    var P = TIME.periods.length, counts = [], totals = new Array(P).fill(0), size = {};
    for (var i = 0; i < N; i++) {
      var p = TIME.meme_period[i];
      if (p === null || p === undefined) continue;
      var c = clusterOf(i);
      if (c === null || c === undefined) continue;
      var wi = sampleWeight(i);  // a sampled meme counts for the memes of its cluster it stands for
      size[c] = (size[c] || 0) + wi; totals[p] += wi;
    }
    // The 12 largest clusters get their own band; the rest are "other", noise stays grey.
    var top = Object.keys(size).map(Number).filter(function (c) { return c !== -1; })
      .sort(function (a, b) { return size[b] - size[a] || a - b; }).slice(0, 12);
    var bands = top.concat(['other', -1]);
    var bandOf = function (c) { return c === -1 ? -1 : (top.indexOf(c) >= 0 ? c : 'other'); };
    for (var q = 0; q < P; q++) counts.push({});
    for (i = 0; i < N; i++) {
      p = TIME.meme_period[i];
      if (p === null || p === undefined) continue;
      c = clusterOf(i);
      if (c === null || c === undefined) continue;
      var bnd = bandOf(c);
      counts[p][bnd] = (counts[p][bnd] || 0) + sampleWeight(i);
    }
    var w = 900, h = 260, l = 44, r = 10, t = 10, b = 40, bw = (w - l - r) / Math.max(1, P);
    var sv = svg('svg', { viewBox: '0 0 ' + w + ' ' + h, role: 'img', 'aria-label': 'cluster shares per ' + TIME.period, id: 'time-svg' });
    [0, 0.25, 0.5, 0.75, 1].forEach(function (v) {
      var y = h - b - (h - t - b) * v;
      sv.append(svg('line', { x1: l, x2: w - r, y1: y, y2: y, stroke: '#eee' }));
      sv.append(axisText(l - 6, y + 4, Math.round(v * 100) + '%', 'end'));
    });
    var colours = currentColours(), drawnSegs = 0;
    for (q = 0; q < P; q++) {
      if (!totals[q]) continue;
      var y0 = h - b;
      bands.forEach(function (bd) {
        var n = counts[q][bd] || 0;
        if (!n) return;
        var hh = (h - t - b) * n / totals[q];
        var isSel = state.selected === null || state.selected === bd || (state.selLeaves !== null && state.selLeaves[bd] === 1);
        var rect = svg('rect', { class: 'bar seg', x: l + q * bw + 0.5, y: y0 - hh, width: Math.max(1, bw - 1), height: hh,
          fill: bd === 'other' ? '#d0d5dd' : (colours[bd] || NOISE), 'fill-opacity': isSel ? (state.period === null || state.period === q ? 1 : 0.35) : 0.18,
          'data-period': q, 'data-cluster': bd });
        var ti = svg('title');
        ti.textContent = TIME.periods[q] + ' · ' + (bd === 'other' ? 'other clusters' : labelOf(bd)) + ': ' + fmt(Math.round(n)) + ' of ' + fmt(Math.round(totals[q])) + (SAMPLE ? ' (estimated from the map sample, ' : ' (') + (100 * n / totals[q]).toFixed(1) + '%)';
        rect.append(ti);
        rect.addEventListener('click', (function (qq, bb) { return function () {
          if (bb !== 'other') selectCluster(bb);
          setPeriod(state.period === qq ? null : qq);
        }; })(q, bd));
        sv.append(rect); drawnSegs++;
        y0 -= hh;
      });
    }
    var step = Math.max(1, Math.ceil(P / 8));
    for (q = 0; q < P; q += step) sv.append(axisText(l + (q + 0.5) * bw, h - b + 14, TIME.periods[q]));
    sv.append(axisText((l + w - r) / 2, h - 6, 'share of the memes of each ' + TIME.period + ' (click a band: that cluster in that ' + TIME.period + ')'));
    sv.setAttribute('data-segments', String(drawnSegs));
    host.append(sv);
    var note = el('p', { class: 'muted' });
    note.textContent = (TIME.n_untimed ? TIME.n_untimed + ' memes' + (SAMPLE ? ' of the map sample' : '') + ' have no timestamp and are not in the chart (they are in every other view).' : '') +
      (SAMPLE ? ' Shares are estimated from the map sample, each meme weighted by its cluster’s size over its memes in the sample.' : '');
    host.append(note);
    var flags = TIME.flags || {}, rising = [], fading = [];
    Object.keys(flags).forEach(function (c) {
      if (Number(c) === -1) return;
      if (flags[c].trend === 'rising') rising.push(Number(c));
      if (flags[c].trend === 'fading') fading.push(Number(c));
    });
    if ((rising.length || fading.length) && state.level === null) {
      var fl = el('div', { class: 'chips', id: 'trend-flags' });
      rising.concat(fading).forEach(function (c) {
        var ch = el('span', { class: 'chip trend ' + flags[c].trend, 'data-cluster': c, text: (flags[c].trend === 'rising' ? '↑ ' : '↓ ') + labelOf(c) });
        ch.addEventListener('click', function () { selectCluster(c); });
        fl.append(ch);
      });
      host.append(fl);
    }
  }
  $('period-reset') && $('period-reset').addEventListener('click', function () { setPeriod(null); });

  // ---- study: the edit log of a curated run ---------------------------------------
  function renderEdits(host) {
    var edits = (D.study && D.study.edits) || [];
    if (!edits.length) return;
    host.append(el('h3', { text: 'Hand edits (memeatlas curate)' }));
    var t = el('table', { class: 'grid', id: 'edit-log' });
    t.append(el('thead', null, el('tr', null, el('th', { text: '#' }), el('th', { text: 'edit' }),
      el('th', { text: 'memes changed' }), el('th', { text: 'editor' }), el('th', { text: 'note' }),
      el('th', { text: 'run' }), el('th', { text: 'when' }))));
    var tb = el('tbody');
    edits.forEach(function (e, k) {
      var a = Object.assign({}, e.args || {}); delete a.op; delete a.note;
      var what = e.op + ' ' + Object.keys(a).map(function (key) {
        var v = a[key]; return key + '=' + (typeof v === 'object' ? JSON.stringify(v) : String(v)); }).join(' ');
      tb.append(el('tr', null, el('td', { class: 'num', text: String(k + 1) }), el('td', { text: what }),
        el('td', { class: 'num', text: fmt(e.n_changed) }), el('td', { text: e.editor || '' }),
        el('td', { text: e.note || '' }), el('td', { class: 'nowrap', text: e.run_id }),
        el('td', { class: 'num', text: e.edited_at || '' })));
    });
    t.append(tb); host.append(t);
    host.append(el('p', { class: 'muted', text: 'Replay them on a fresh database: memeatlas curate export --run ' + run.run_id + ' -o edits.yaml; memeatlas curate apply edits.yaml' }));
  }

  // ---- start -----------------------------------------------------------------
  computeCentroids();
  renderList();
  redraw();
  drawTime();
  // Hooks for tests and for people poking around in the console.
  window.memeatlasReport = {
    data: D, selectCluster: selectCluster, showMeme: showMeme, setLevel: setLevel, setPeriod: setPeriod,
    selectIndices: setSelection, selectionCsv: selectionCsv,
    screenPoint: function (i) { return [sx[i], sy[i]]; }
  };
  document.body.setAttribute('data-ready', '1');
})();
