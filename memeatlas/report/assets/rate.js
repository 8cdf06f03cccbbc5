// memeatlas rating page: pairs side by side, a 1/2/3 scale per dimension, progress in
// localStorage, and a long-format CSV (pair_id,coder,dimension,rating) that
// `memeatlas evaluate import-ratings` reads as is. Meme-derived strings only ever go
// into the DOM as text.
(function () {
  'use strict';
  var D = JSON.parse(document.getElementById('memeatlas-data').textContent);
  var $ = function (id) { return document.getElementById(id); };
  var DIMS = D.dimensions.map(function (d) { return d.name; });
  var P = D.pairs, NP = P.length;

  function el(tag, attrs) {
    var e = document.createElement(tag);
    if (attrs) Object.keys(attrs).forEach(function (k) {
      var v = attrs[k];
      if (v === null || v === undefined || v === false) return;
      if (k === 'text') e.textContent = String(v); else e.setAttribute(k, String(v));
    });
    for (var i = 2; i < arguments.length; i++) if (arguments[i] !== null && arguments[i] !== undefined) e.append(arguments[i]);
    return e;
  }

  // ---- state, persisted ------------------------------------------------------
  var KEY = D.storage_key;
  var st = { coder: '', pos: 0, dim: 0, mode: 'all', showText: !!D.show_text, auto: true, ratings: {} };
  var storageOk = true;
  try {
    var saved = JSON.parse(window.localStorage.getItem(KEY) || 'null');
    if (saved && typeof saved === 'object') Object.keys(st).forEach(function (k) { if (k in saved) st[k] = saved[k]; });
  } catch (e) { storageOk = false; }
  if (typeof st.ratings !== 'object' || st.ratings === null) st.ratings = {};
  st.pos = Math.min(Math.max(0, st.pos | 0), NP - 1);
  st.dim = Math.min(Math.max(0, st.dim | 0), DIMS.length - 1);
  if (st.mode !== 'all' && DIMS.indexOf(st.mode) < 0) st.mode = 'all';
  function save() {
    if (!storageOk) return;
    try { window.localStorage.setItem(KEY, JSON.stringify(st)); } catch (e) { storageOk = false; }
  }
  // ratings[coder][pair_id][dimension] = 1|2|3 (several coders may share one browser)
  function mine() { return (st.ratings[st.coder] = st.ratings[st.coder] || {}); }
  function ratingOf(pid, dim) { var r = (st.ratings[st.coder] || {})[pid]; return r ? r[dim] : undefined; }
  function activeDims() { return st.mode === 'all' ? DIMS : [st.mode]; }
  function pairDone(pid) { return activeDims().every(function (d) { return ratingOf(pid, d) !== undefined; }); }

  // ---- static parts ----------------------------------------------------------
  $('set-name').textContent = 'pair set ' + D.pair_set + ' · ' + NP + ' pairs';
  $('import-cmd').textContent = 'memeatlas evaluate import-ratings --pair-set ' + shellQuote(D.pair_set) + ' ' + fileName();
  function shellQuote(s) { return /^[A-Za-z0-9_.\-]+$/.test(s) ? s : "'" + s.replace(/'/g, "'\\''") + "'"; }
  var modeSel = $('dim-mode');
  modeSel.append(el('option', { value: 'all', text: 'all dimensions' }));
  DIMS.forEach(function (d) { modeSel.append(el('option', { value: d, text: d + ' only' })); });
  modeSel.value = st.mode;
  $('coder').value = st.coder;
  $('show-text').checked = st.showText;
  $('auto-advance').checked = st.auto;

  var dimBoxes = D.dimensions.map(function (d, k) {
    var scale = el('div', { class: 'scale' });
    var buttons = D.scale.map(function (s) {
      var b = el('button', { type: 'button', 'data-value': s.value, title: 'key ' + s.value }, s.value + ' · ' + s.label);
      b.addEventListener('click', function () { st.dim = k; rate(s.value); });
      scale.append(b);
      return b;
    });
    var box = el('div', { class: 'dim', 'data-dimension': d.name },
      el('div', null, el('div', { class: 'name', text: d.name }), el('div', { class: 'q', text: d.question })), scale);
    box.addEventListener('mousedown', function () { st.dim = k; render(); });
    $('dims').append(box);
    return { box: box, buttons: buttons };
  });

  function memeCard(fig, m, side) {
    fig.replaceChildren();
    fig.append(el('div', { class: 'label', text: side }));
    if (m.img) fig.append(el('img', { src: m.img, alt: 'meme ' + side }));
    else fig.append(el('div', { class: 'noimg', text: 'no image: judge by the text' }));
    if ((st.showText || !m.img) && m.text) fig.append(el('div', { class: 'text', text: m.text }));
  }

  // ---- rendering -------------------------------------------------------------
  function render() {
    var p = P[st.pos];
    memeCard($('meme-a'), D.memes[p.a], 'A');
    memeCard($('meme-b'), D.memes[p.b], 'B');
    var act = activeDims();
    if (act.indexOf(DIMS[st.dim]) < 0) st.dim = DIMS.indexOf(act[0]);
    dimBoxes.forEach(function (b, k) {
      var name = DIMS[k], v = ratingOf(p.id, name);
      b.box.classList.toggle('off', act.indexOf(name) < 0);
      b.box.classList.toggle('active', k === st.dim);
      b.buttons.forEach(function (btn) { btn.classList.toggle('chosen', Number(btn.getAttribute('data-value')) === v); });
    });
    $('pair-pos').textContent = 'pair ' + (st.pos + 1) + ' of ' + NP + (pairDone(p.id) ? ' ✓' : '');
    var done = 0, total = NP * act.length;
    P.forEach(function (q) { act.forEach(function (d) { if (ratingOf(q.id, d) !== undefined) done++; }); });
    $('progress-text').textContent = done + ' / ' + total + ' ratings' + (st.coder ? ' by ' + st.coder : '') + (storageOk ? '' : ' (browser storage unavailable: download often)');
    $('bar-fill').style.width = (total ? 100 * done / total : 0) + '%';
    $('download').disabled = countRows() === 0;
    $('import-cmd').textContent = 'memeatlas evaluate import-ratings --pair-set ' + shellQuote(D.pair_set) + ' ' + fileName();
    document.body.setAttribute('data-pos', String(st.pos));
  }

  // ---- actions ---------------------------------------------------------------
  function needCoder() {
    if (st.coder) return false;
    $('coder-warning').hidden = false;
    $('coder').focus();
    return true;
  }
  function rate(v) {
    if (needCoder()) return;
    var p = P[st.pos], dim = DIMS[st.dim], r = mine();
    (r[p.id] = r[p.id] || {})[dim] = v;
    // next: the next unrated dimension of this pair, else (auto-advance) the next pair
    var act = activeDims(), next = act.filter(function (d) { return ratingOf(p.id, d) === undefined; })[0];
    if (next !== undefined) st.dim = DIMS.indexOf(next);
    else if (st.auto && st.pos < NP - 1) { st.pos++; st.dim = DIMS.indexOf(act[0]); }
    save(); render();
  }
  function clear() {
    var p = P[st.pos], r = mine();
    if (r[p.id]) { delete r[p.id][DIMS[st.dim]]; if (!Object.keys(r[p.id]).length) delete r[p.id]; }
    save(); render();
  }
  function go(delta) { st.pos = Math.min(NP - 1, Math.max(0, st.pos + delta)); st.dim = DIMS.indexOf(activeDims()[0]); save(); render(); }
  function nextUnrated() {
    for (var k = 1; k <= NP; k++) {
      var j = (st.pos + k) % NP;
      if (!pairDone(P[j].id)) { st.pos = j; st.dim = DIMS.indexOf(activeDims()[0]); save(); render(); return; }
    }
  }
  function switchDim(step) {
    var act = activeDims(), k = act.indexOf(DIMS[st.dim]);
    st.dim = DIMS.indexOf(act[(k + step + act.length) % act.length]); save(); render();
  }

  // ---- CSV -------------------------------------------------------------------
  function csvCell(s) { s = String(s); return /[",\r\n]/.test(s) ? '"' + s.replace(/"/g, '""') + '"' : s; }
  function rows() {
    var out = [], r = st.ratings[st.coder] || {};
    P.forEach(function (p) {
      DIMS.forEach(function (d) { if (r[p.id] && r[p.id][d] !== undefined) out.push([p.id, st.coder, d, r[p.id][d]]); });
    });
    return out;
  }
  function countRows() { return st.coder ? rows().length : 0; }
  function csv() {
    return 'pair_id,coder,dimension,rating\r\n' + rows().map(function (r) { return r.map(csvCell).join(','); }).join('\r\n') + '\r\n';
  }
  function fileName() {
    var safe = function (s) { return String(s).replace(/[^A-Za-z0-9_.-]+/g, '_').replace(/^[._-]+|[._-]+$/g, '').slice(0, 60) || 'coder'; };
    return 'ratings-' + safe(D.pair_set) + '-' + safe(st.coder || 'coder') + '.csv';
  }
  function download() {
    if (needCoder() || !countRows()) return;
    var blob = new Blob([csv()], { type: 'text/csv;charset=utf-8' });
    var a = el('a', { href: URL.createObjectURL(blob), download: fileName() });
    document.body.append(a); a.click(); a.remove();
    setTimeout(function () { URL.revokeObjectURL(a.href); }, 10000);
  }

  // ---- events ----------------------------------------------------------------
  $('coder').addEventListener('input', function (ev) {
    st.coder = ev.target.value.replace(/[\r\n]/g, ' ').trim();
    if (st.coder) $('coder-warning').hidden = true;
    save(); render();
  });
  $('coder').addEventListener('keydown', function (ev) { if (ev.key === 'Enter') ev.target.blur(); });
  $('prev').addEventListener('click', function () { go(-1); });
  $('next').addEventListener('click', function () { go(1); });
  $('next-unrated').addEventListener('click', nextUnrated);
  $('download').addEventListener('click', download);
  modeSel.addEventListener('change', function () { st.mode = modeSel.value; save(); render(); modeSel.blur(); });
  $('show-text').addEventListener('change', function (ev) { st.showText = ev.target.checked; save(); render(); });
  $('auto-advance').addEventListener('change', function (ev) { st.auto = ev.target.checked; save(); });
  document.addEventListener('keydown', function (ev) {
    var t = ev.target;
    if (t && (t.tagName === 'INPUT' && t.type === 'text' || t.tagName === 'TEXTAREA' || t.tagName === 'SELECT')) return;
    if (ev.ctrlKey || ev.metaKey || ev.altKey) return;
    var k = ev.key;
    if (k === '1' || k === '2' || k === '3') { ev.preventDefault(); rate(Number(k)); }
    else if (k === '0' || k === 'Backspace' || k === 'Delete') { ev.preventDefault(); clear(); }
    else if (k === 'ArrowRight') { ev.preventDefault(); go(1); }
    else if (k === 'ArrowLeft') { ev.preventDefault(); go(-1); }
    else if (k === 'Tab' || k === 'd' || k === 'D') { ev.preventDefault(); switchDim(ev.shiftKey ? -1 : 1); }
    else if (k === 'n' || k === 'N') { ev.preventDefault(); nextUnrated(); }
    else if (k === 't' || k === 'T') { ev.preventDefault(); st.showText = !st.showText; $('show-text').checked = st.showText; save(); render(); }
  });

  render();
  window.memeatlasRate = { state: st, csv: csv, fileName: fileName };
  document.body.setAttribute('data-ready', '1');
})();
