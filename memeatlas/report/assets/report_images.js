// memeatlas report, "Near-duplicates and templates" (memeatlas.images): its own section,
// drawn only when the payload has D.images. Text goes in through textContent only.
(function () {
  'use strict';
  var D = JSON.parse(document.getElementById('memeatlas-data').textContent);
  var I = D.images;
  if (!I) return;
  function el(tag, attrs) {
    var e = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) {
      if (k === 'text') e.textContent = attrs[k]; else e.setAttribute(k, attrs[k]);
    });
    for (var i = 2; i < arguments.length; i++) if (arguments[i] != null) e.append(arguments[i]);
    return e;
  }
  var sec = el('section', { class: 'panel', id: 'images-panel' }, el('h2', { text: 'Near-duplicates and templates' }));
  var nd = I.near_dups;
  if (nd) {
    sec.append(el('p', { class: 'muted', text: nd.n_groups + ' near-duplicate group' + (nd.n_groups === 1 ? '' : 's') + ' among ' + nd.n_memes +
      ' memes (' + nd.n_same_image + ' of one image, the rest one template with different text) · run ' + nd.run }));
    var list = el('div', { class: 'gallery' });
    nd.groups.forEach(function (g) {
      var fig = el('figure', { class: 'dupgroup' });
      g.members.forEach(function (i) {
        var t = D.thumbs ? D.thumbs[String(i)] : null;
        if (t) fig.append(el('img', { src: t, alt: D.memes.name[i], title: D.memes.name[i], width: '72' }));
      });
      fig.append(el('figcaption', { text: g.n + ' memes · ' + g.kind.replace('_', ' ') +
        (g.n_images > 1 ? ' (' + g.n_images + ' texts)' : '') }));
      list.append(fig);
    });
    sec.append(list);
  }
  var tm = I.templates;
  if (tm) {
    var agree = tm.vlm_compared ? (tm.vlm_agree + ' of ' + tm.vlm_compared + ' agree with the VLM template') : 'no VLM templates to compare';
    sec.append(el('p', { class: 'muted', text: 'Templates from ' + tm.gallery + ' (' + tm.n_templates +
      ' templates, unknown below ' + tm.threshold + '): ' + agree }));
    var tbl = el('table', {}, el('tr', {}, el('th', { text: 'template' }), el('th', { text: 'memes' })));
    tm.counts.forEach(function (r) { tbl.append(el('tr', {}, el('td', { text: r[0] }), el('td', { text: String(r[1]) }))); });
    sec.append(tbl);
  }
  var prov = document.getElementById('provenance');
  var anchor = prov ? prov.closest('section') : null;
  if (anchor) anchor.before(sec); else document.querySelector('main').append(sec);
})();
