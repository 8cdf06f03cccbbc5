// Search box of the report: BM25 over the annotation text shipped in the page (D.search),
// fused with the precomputed nearest neighbours of the best hits (D.study.neighbours) by
// reciprocal rank fusion; the hits become the selection (panel, CSV download). No server.
// The tokenizer follows memeatlas/search/tokenize.py: NFKC, lower case, words of letters,
// marks, digits and apostrophes, English stop words dropped, plural "S" stemming, emoji,
// Han bigrams and Katakana runs.
(function () {
  var R = window.memeatlasReport, D = R && R.data, X = D && D.search;
  if (!X) return;
  var STOP = new Set(X.stop), TERM = new Map(X.terms.map(function (t, i) { return [t, i]; }));
  var N = X.len.filter(function (n) { return n > 0; }).length || 1;
  var AVG = X.len.reduce(function (a, b) { return a + b; }, 0) / N || 1;
  var RE = /(\p{Extended_Pictographic}(?:[\p{EMod}\uFE0F]|\u200D\p{Extended_Pictographic})*)|(\p{Script=Han}+)|([\p{Script=Katakana}\u30FC]+)|(\p{Script=Hiragana}+)|([\p{L}\p{N}][\p{L}\p{M}\p{N}'’]*)/gu;
  function stem(w) {
    if (w.length <= 3 || /[^\x00-\x7f]/.test(w)) return w;
    if (/ies$/.test(w) && !/(eies|aies)$/.test(w)) return w.slice(0, -3) + 'y';
    if (/es$/.test(w) && !/(aes|ees|oes)$/.test(w)) return w.slice(0, -1);
    if (/s$/.test(w) && !/(us|ss)$/.test(w)) return w.slice(0, -1);
    return w;
  }
  function tokens(text) {
    var out = [], m, s = text.normalize('NFKC').toLowerCase();
    RE.lastIndex = 0;
    while ((m = RE.exec(s))) {
      if (m[1]) out.push(m[1]);
      else if (m[2]) { if (m[2].length <= 2) out.push(m[2]); else for (var i = 0; i + 1 < m[2].length; i++) out.push(m[2].slice(i, i + 2)); }
      else if (m[3]) { if (m[3].length >= 2) out.push(m[3]); }
      else if (m[5]) {
        var w = m[5].replace(/^['’]+|['’]+$/g, '').replace(/’/g, "'");
        if (/'s$/.test(w)) w = w.slice(0, -2);
        if (w && !STOP.has(w)) out.push(stem(w));
      }
    }
    return out;
  }
  // BM25 scores of the page's memes: [[index, score]] best first.
  function bm25(query) {
    var acc = new Map(), seen = new Set();
    tokens(query).forEach(function (t) {
      if (seen.has(t) || !TERM.has(t)) return;
      seen.add(t);
      var j = TERM.get(t), docs = X.docs[j], tfs = X.tfs[j], df = docs.length;
      var idf = Math.log(1 + (N - df + 0.5) / (df + 0.5));
      for (var i = 0; i < docs.length; i++) {
        var tf = tfs[i], norm = X.k1 * (1 - X.b + X.b * X.len[docs[i]] / AVG);
        acc.set(docs[i], (acc.get(docs[i]) || 0) + idf * tf * (X.k1 + 1) / (tf + norm));
      }
    });
    return Array.from(acc.entries()).sort(function (a, b) { return b[1] - a[1] || a[0] - b[0]; });
  }
  // Hybrid: BM25 ranks fused with the neighbours of the 5 best hits, ranked by similarity.
  function search(query, k) {
    var lex = bm25(query).slice(0, 3 * k).map(function (p) { return p[0]; });
    var nb = D.study && D.study.neighbours, near = [];
    if (nb && lex.length) {
      var sims = new Map();
      lex.slice(0, 5).forEach(function (i) {
        for (var j = 0; j < nb.k; j++) {
          var o = nb.idx[i * nb.k + j], s = nb.sim[i * nb.k + j];
          if (o !== null && (!sims.has(o) || sims.get(o) < s)) sims.set(o, s);
        }
      });
      near = Array.from(sims.entries()).sort(function (a, b) { return b[1] - a[1] || a[0] - b[0]; }).map(function (p) { return p[0]; });
    }
    var score = new Map();
    [lex, near].forEach(function (list) {
      list.forEach(function (i, r) { score.set(i, (score.get(i) || 0) + 1 / (60 + r + 1)); });
    });
    return Array.from(score.entries()).sort(function (a, b) { return b[1] - a[1] || a[0] - b[0]; })
      .slice(0, k).map(function (p) { return p[0]; });
  }
  var find = document.getElementById('find');
  var box = document.createElement('label');
  box.innerHTML = 'Search <input id="search-box" type="search" placeholder="words; hits become the selection" autocomplete="off"> <span id="search-count" class="muted"></span>';
  if (find && find.parentNode && find.parentNode.parentNode) find.parentNode.parentNode.insertBefore(box, find.parentNode.nextSibling);
  else document.body.insertBefore(box, document.body.firstChild);
  var input = document.getElementById('search-box'), timer = null;
  function run() {
    var q = input.value.trim(), hits = q ? search(q, 50) : [];
    document.getElementById('search-count').textContent = q ? hits.length + ' hits' : '';
    R.selectIndices(hits);
  }
  input.addEventListener('input', function () { clearTimeout(timer); timer = setTimeout(run, 150); });
  R.search = search; R.tokens = tokens;
  if (D.preselect && D.preselect.length) R.selectIndices(D.preselect);
})();
