// NetSpectra console page: reads the JSON API of the same origin and draws tables and SVG
// charts. No external assets; every value is inserted as text (never as HTML).
'use strict';

const SVG = 'http://www.w3.org/2000/svg';
const COLORS = ['#3b7dd8', '#e0913b', '#3aa675', '#c4463a', '#8a5cc2', '#6b7a8f', '#d6b23a', '#2fa3b5'];
const PROTO = { 1: 'ICMP', 6: 'TCP', 17: 'UDP', 58: 'ICMPv6', 47: 'GRE', 50: 'ESP', 132: 'SCTP' };

function $(id) { return document.getElementById(id); }

function el(tag, attrs, text) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  if (text !== undefined && text !== null) e.textContent = String(text);
  return e;
}

function svg(tag, attrs) {
  const e = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, String(v));
  return e;
}

function human(n) {
  const u = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  let v = Number(n) || 0;
  while (v >= 1024 && i < u.length - 1) { v /= 1024; i++; }
  return v.toFixed(i ? 1 : 0) + ' ' + u[i];
}

function isoTime(s) {
  return s === null || s === undefined ? '–' : new Date(Number(s) * 1000).toISOString().replace('.000Z', 'Z');
}

async function api(path, params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params || {})) if (v !== '' && v !== undefined && v !== null) q.set(k, v);
  const headers = {};
  const tok = sessionStorage.getItem('token');
  if (tok) headers.Authorization = 'Bearer ' + tok;
  const r = await fetch('/api/v1/' + path + (q.toString() ? '?' + q : ''), { headers });
  const body = await r.json().catch(() => ({ error: 'not JSON (HTTP ' + r.status + ')' }));
  if (!r.ok) throw new Error(body.error || ('HTTP ' + r.status));
  return body;
}

// A table of rows (objects) with these columns; numbers right-aligned.
function table(target, rows, cols) {
  const box = $(target);
  box.textContent = '';
  const t = el('table', { 'data-rows': rows.length });
  const hr = el('tr');
  for (const c of cols) hr.appendChild(el('th', {}, c));
  t.appendChild(hr);
  for (const r of rows) {
    const tr = el('tr');
    for (const c of cols) {
      const v = r[c];
      tr.appendChild(el('td', typeof v === 'number' ? { class: 'n' } : {}, v === null || v === undefined ? '' : v));
    }
    t.appendChild(tr);
  }
  box.appendChild(t);
}

// Horizontal bars: items [{label, value}].
function barChart(target, items) {
  const box = $(target);
  box.textContent = '';
  const w = 460, row = 20, left = 170;
  const h = Math.max(row * items.length + 10, 30);
  const s = svg('svg', { width: w, height: h, viewBox: `0 0 ${w} ${h}`, 'data-points': items.length, role: 'img' });
  const max = Math.max(1, ...items.map(i => Number(i.value) || 0));
  items.forEach((it, i) => {
    const y = 5 + i * row;
    const len = Math.max(1, (w - left - 70) * (Number(it.value) || 0) / max);
    const label = svg('text', { x: left - 6, y: y + 14, 'text-anchor': 'end', 'font-size': 11 });
    label.textContent = String(it.label).slice(0, 28);
    s.appendChild(label);
    s.appendChild(svg('rect', { x: left, y: y + 3, width: len, height: row - 6, fill: COLORS[i % COLORS.length] }));
    const val = svg('text', { x: left + len + 4, y: y + 14, 'font-size': 11 });
    val.textContent = String(it.value);
    s.appendChild(val);
  });
  box.appendChild(s);
}

// Lines over time: series [{name, points: [[t, v], ...]}].
function lineChart(target, series) {
  const box = $(target);
  box.textContent = '';
  const w = 900, h = 220, l = 60, r = 110, t = 10, b = 30;
  const pts = series.flatMap(x => x.points);
  const s = svg('svg', { width: w, height: h, viewBox: `0 0 ${w} ${h}`, 'data-points': pts.length, role: 'img' });
  if (!pts.length) { box.appendChild(s); return; }
  const t0 = Math.min(...pts.map(p => p[0])), t1 = Math.max(...pts.map(p => p[0]));
  const vmax = Math.max(1, ...pts.map(p => p[1]));
  const X = x => l + (t1 > t0 ? (x - t0) / (t1 - t0) : 0.5) * (w - l - r);
  const Y = y => h - b - (y / vmax) * (h - t - b);
  s.appendChild(svg('line', { x1: l, y1: h - b, x2: w - r, y2: h - b, stroke: '#889' }));
  s.appendChild(svg('line', { x1: l, y1: t, x2: l, y2: h - b, stroke: '#889' }));
  const ymax = svg('text', { x: l - 4, y: t + 10, 'text-anchor': 'end', 'font-size': 10 });
  ymax.textContent = String(vmax);
  s.appendChild(ymax);
  for (const [x, anchor] of [[t0, 'start'], [t1, 'end']]) {
    const tx = svg('text', { x: X(x), y: h - 10, 'text-anchor': anchor, 'font-size': 10 });
    tx.textContent = isoTime(x);
    s.appendChild(tx);
  }
  series.forEach((se, i) => {
    const c = COLORS[i % COLORS.length];
    const d = se.points.map((p, j) => (j ? 'L' : 'M') + X(p[0]).toFixed(1) + ' ' + Y(p[1]).toFixed(1)).join(' ');
    s.appendChild(svg('path', { d, fill: 'none', stroke: c, 'stroke-width': 2 }));
    for (const p of se.points) s.appendChild(svg('circle', { cx: X(p[0]), cy: Y(p[1]), r: 2.5, fill: c }));
    const lg = svg('text', { x: w - r + 8, y: t + 12 + i * 14, fill: c, 'font-size': 11 });
    lg.textContent = se.name;
    s.appendChild(lg);
  });
  box.appendChild(s);
}

function step(first, last) {
  const span = Math.max(1, (last || 0) - (first || 0));
  for (const s of [1, 5, 10, 30, 60, 300, 600, 1800, 3600, 21600, 86400]) if (span / s <= 120) return s;
  return 86400;
}

function setNum(id, v) {
  const e = $(id);
  e.textContent = v === null || v === undefined ? '0' : String(v);
  e.setAttribute('data-value', e.textContent);
}

// The start of the selected range, from the newest data (null: everything).
let summaryCache = null;
async function rangeFrom() {
  summaryCache = await api('summary');
  const span = Number($('range').value);
  const f = summaryCache.flows || {};
  return span && f.last ? Math.max(f.first || 0, f.last - span + 1) : null;
}

async function overview() {
  const from = await rangeFrom();
  const s = summaryCache;
  const f = s.flows || {};
  setNum('total-flows', f.flows);
  setNum('total-packets', f.packets);
  setNum('total-bytes', f.bytes);
  $('total-bytes-h').textContent = human(f.bytes);
  setNum('http-requests', (s.http || {}).requests);
  $('time-range').textContent = isoTime(f.first) + ' – ' + isoTime(f.last);
  const ts = await api('flows/timeseries', { step: step(from || f.first, f.last), from, limit: 1000 });
  lineChart('chart-traffic', [{ name: 'bytes', points: ts.rows.map(r => [r.t, r.bytes]) }]);
  const talkers = await api('flows/top', { by: 'src_ip', order: 'bytes', limit: 10, from });
  barChart('chart-talkers', talkers.rows.map(r => ({ label: r.src_ip, value: r.bytes })));
  table('table-talkers', talkers.rows.map(r => ({ ...r, share: (100 * r.share).toFixed(1) + ' %' })), ['src_ip', 'bytes', 'packets', 'flows', 'share']);
  const conv = await api('flows/top', { by: 'src_ip,dst_ip', order: 'bytes', limit: 10, from });
  table('table-conversations', conv.rows, ['src_ip', 'dst_ip', 'bytes', 'packets', 'flows']);
  const pr = await api('flows/aggregate', { by: 'proto', order: 'bytes', limit: 20, from });
  const prows = pr.rows.map(r => ({ ...r, name: PROTO[r.proto] || String(r.proto) }));
  barChart('chart-protocols', prows.map(r => ({ label: r.name, value: r.bytes })));
  table('table-protocols', prows, ['name', 'proto', 'bytes', 'packets', 'flows']);
}

function formParams(form) {
  const p = {};
  for (const [k, v] of new FormData(form).entries()) if (String(v).trim() !== '') p[k] = String(v).trim();
  return p;
}

async function aggregate() {
  const p = formParams($('agg-form'));
  if (!p.from && !p.to) {
    const from = await rangeFrom();
    if (from) p.from = String(from);
  }
  $('agg-error').textContent = '';
  try {
    const r = await api('flows/aggregate', p);
    const metric = p.order || 'bytes';
    barChart('chart-agg', r.rows.slice(0, 20).map(x => ({ label: r.keys.map(k => x[k]).join(' '), value: x[metric] })));
    table('table-agg', r.rows, [...r.keys, 'bytes', 'packets', 'flows']);
  } catch (e) { $('agg-error').textContent = e.message; }
}

async function trace(params) {
  $('trace-error').textContent = '';
  try {
    const r = await api('flows/trace', params);
    const s = r.summary;
    const box = $('trace-summary');
    box.textContent = '';
    const fields = [['community_id', r.community_id], ['records', s.records], ['first', s.first], ['last', s.last],
      ['fwd_packets', s.fwd_packets], ['rev_packets', s.rev_packets], ['fwd_bytes', s.fwd_bytes],
      ['rev_bytes', s.rev_bytes], ['end_reasons', (s.end_reasons || []).join(', ')]];
    const t = el('table', { id: 'trace-facts' });
    for (const [k, v] of fields) {
      const tr = el('tr');
      tr.appendChild(el('th', {}, k));
      tr.appendChild(el('td', { id: 'trace-' + k.replace('_', '-'), 'data-value': v }, v));
      t.appendChild(tr);
    }
    box.appendChild(t);
    table('table-trace', r.records, ['start', 'end', 'src_ip', 'src_port', 'dst_ip', 'dst_port', 'proto', 'fwd_packets', 'rev_packets', 'fwd_bytes', 'rev_bytes', 'end_reason']);
    table('table-trace-http', r.http, ['ts', 'type', 'method', 'host', 'uri', 'status', 'latency_us']);
  } catch (e) { $('trace-error').textContent = e.message; }
}

async function flows() {
  await aggregate();
  const h = new URLSearchParams(location.hash.split('?')[1] || '');
  if (h.get('trace')) {
    $('trace-form').elements.community_id.value = h.get('trace');
    await trace({ community_id: h.get('trace') });
  }
}

async function http() {
  const from = await rangeFrom();
  const hosts = await api('http/counts', { by: 'host', limit: 15, from });
  barChart('chart-hosts', hosts.rows.map(r => ({ label: r.key, value: r.count })));
  table('table-hosts', hosts.rows, ['key', 'count']);
  const dev = await api('http/counts', { by: 'ua_device', limit: 10, from });
  barChart('chart-devices', dev.rows.map(r => ({ label: r.key, value: r.count })));
  table('table-devices', dev.rows, ['key', 'count']);
  const s = summaryCache;
  const st = step(from || s.flows.first, s.flows.last);
  const sc = await api('http/counts', { by: 'status', step: st, limit: 10000, from });
  const classes = {};
  const totals = {};
  for (const r of sc.rows) {
    const c = Math.floor(r.key / 100) + 'xx';
    classes[c] = classes[c] || {};
    classes[c][r.t] = (classes[c][r.t] || 0) + r.count;
    totals[r.key] = (totals[r.key] || 0) + r.count;
  }
  lineChart('chart-status', Object.keys(classes).sort().map(c => ({
    name: c, points: Object.entries(classes[c]).map(([t, v]) => [Number(t), v]).sort((a, b) => a[0] - b[0]),
  })));
  table('table-status', Object.entries(totals).map(([k, v]) => ({ status: Number(k), count: v })), ['status', 'count']);
  const lat = await api('http/latency', { by: 'host', limit: 15, from });
  table('table-latency', lat.rows, ['host', 'count', 'p50', 'p90', 'p99', 'max']);
  const slow = await api('http/search', { order: 'latency', type: 'response', limit: 15, from });
  table('table-slowest', slow.rows, ['ts', 'method', 'host', 'uri', 'status', 'latency_us', 'src_ip', 'dst_ip']);
}

async function alerts() {
  const a = await api('alerts', { limit: 200 });
  table('table-alerts', a.rows.map(r => ({ ...r, labels: JSON.stringify(r.labels || {}) })), ['time', 'state', 'rule', 'severity', 'key', 'value', 'labels']);
}

async function probes() {
  const p = await api('probes');
  table('table-probes', p.rows.map(r => ({ ...r, first: isoTime(r.first), last: isoTime(r.last) })), ['probe', 'flows', 'packets', 'bytes', 'first', 'last']);
  // Read from each probe's metrics endpoint at this refresh (console --probe-metrics URL).
  table('table-probes-live', (p.live || []).map(r => ({
    ...r,
    up: r.up ? 'up' : 'DOWN',
    drop_ratio: r.up ? (100 * r.drop_ratio).toFixed(3) + ' %' : '',
    error: r.error || '',
  })), ['url', 'up', 'packets', 'kernel_drops', 'drop_ratio', 'sink_backlog_records', 'sink_dropped_records', 'sink_spool_bytes', 'sinks_down', 'error']);
}

const VIEWS = { overview, flows, http, alerts, probes };

function current() {
  const v = (location.hash.slice(1).split('?')[0]) || 'overview';
  return VIEWS[v] ? v : 'overview';
}

async function show() {
  const v = current();
  for (const s of document.querySelectorAll('.view')) s.classList.toggle('active', s.id === 'view-' + v);
  for (const a of document.querySelectorAll('#nav a')) a.classList.toggle('active', a.dataset.view === v);
  $('status').textContent = 'loading…';
  try {
    await VIEWS[v]();
    $('status').textContent = 'updated ' + new Date().toISOString().slice(11, 19) + 'Z';
    document.body.setAttribute('data-loaded', v);
  } catch (e) {
    $('status').textContent = 'error: ' + e.message;
    document.body.setAttribute('data-error', e.message);
  }
}

document.addEventListener('DOMContentLoaded', () => {
  $('token').value = sessionStorage.getItem('token') || '';
  $('token').addEventListener('change', e => { sessionStorage.setItem('token', e.target.value); show(); });
  $('agg-form').addEventListener('submit', e => { e.preventDefault(); aggregate(); });
  $('trace-form').addEventListener('submit', e => { e.preventDefault(); trace(formParams($('trace-form'))); });
  window.addEventListener('hashchange', show);
  $('range').addEventListener('change', show);
  setInterval(() => { if ($('auto').checked) show(); }, 30000);
  show();
});
