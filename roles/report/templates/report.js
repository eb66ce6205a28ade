// virtfleet.libvirt report: the filters of every page (the fleet page and the per-host pages).
// Rows are the elements of class "item"; data-host, data-status and data-rule may hold several
// space-separated values (a host row of the fleet table lists every status and rule it has),
// data-text is what the free-text box searches. Boxes (a host section, a domain) with no visible
// row are hidden. Inline on the page and allowed by its Content-Security-Policy by its SHA-256.
(function () {
  'use strict';
  var byId = function (id) { return document.getElementById(id); };
  var controls = {};
  ['host', 'status', 'rule', 'text'].forEach(function (k) {
    var el = byId('f-' + k);
    if (el) { controls[k] = el; }
  });
  var items = Array.prototype.slice.call(document.querySelectorAll('.item'));
  var boxes = Array.prototype.slice.call(document.querySelectorAll('details.domain, section.host'));
  var count = byId('f-count');
  var none = byId('f-none');
  function has(list, value) {
    return !value || (' ' + (list || '') + ' ').indexOf(' ' + value + ' ') !== -1;
  }
  function value(k) { return controls[k] ? controls[k].value : ''; }
  // What the free-text box searches: data-text, or for a finding row its domain's data-text (host,
  // domain, UUID) and the row's own text, built on the first search and kept in data-text.
  function text(el) {
    var d = el.dataset;
    if (d.text === undefined) {
      var box = el.closest('[data-text]');
      d.text = ((box ? box.dataset.text + ' ' : '') + el.textContent).replace(/\s+/g, ' ').trim().toLowerCase();
    }
    return d.text;
  }
  function apply() {
    var host = value('host'), status = value('status'), rule = value('rule');
    var words = value('text').toLowerCase().split(/\s+/).filter(Boolean);
    var shown = 0;
    items.forEach(function (el) {
      var d = el.dataset;
      var ok = (!host || d.host === host) && has(d.status, status) && has(d.rule, rule) &&
        (!words.length || words.every(function (w) { return text(el).indexOf(w) !== -1; }));
      if (el.hidden === ok) { el.hidden = !ok; }   // touch only the rows that change
      if (ok) { shown += 1; }
    });
    boxes.forEach(function (box) {
      var hide = !box.querySelector('.item:not([hidden])');
      if (box.hidden !== hide) { box.hidden = hide; }
    });
    if (count) { count.textContent = 'showing ' + shown + ' of ' + items.length + ' rows'; }
    if (none) { none.hidden = shown !== 0; }
  }
  Object.keys(controls).forEach(function (k) {
    controls[k].addEventListener('input', apply);
    controls[k].addEventListener('change', apply);
  });
  var clear = byId('f-clear');
  if (clear) {
    clear.addEventListener('click', function () {
      Object.keys(controls).forEach(function (k) { controls[k].value = ''; });
      apply();
    });
  }
  document.addEventListener('click', function (ev) {
    var chip = ev.target.closest('[data-set]');
    if (!chip || !controls[chip.dataset.set]) { return; }
    controls[chip.dataset.set].value = chip.dataset.value;
    apply();
    byId('filters').scrollIntoView({ block: 'start' });
  });
  document.addEventListener('keydown', function (ev) {
    var text = controls.text;
    if (!text) { return; }
    if (ev.key === '/' && document.activeElement !== text) { ev.preventDefault(); text.focus(); }
    if (ev.key === 'Escape' && document.activeElement === text) { text.value = ''; apply(); }
  });
  // Nothing is filtered when the page opens: show the count without touching thousands of rows.
  if (count) { count.textContent = 'showing ' + items.length + ' of ' + items.length + ' rows'; }
}());
