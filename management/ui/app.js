// Warren management UI: plain JS, no build step. Talks to the RabbitMQ-compatible
// management API under api/. All API text reaches the page through textContent only.
'use strict';
(() => {
  const REFRESH_MS = 5000, MAX_SAMPLES = 60;
  const st = { auth: null, view: null, timer: null, busy: false, vhosts: ['/'], samples: [] };
  const $ = (sel) => document.querySelector(sel);
  const enc = encodeURIComponent;

  // ---- DOM helpers -------------------------------------------------------
  function h(tag, attrs, ...kids) {
    const el = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v == null || v === false) continue;
      if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
      else if (k === 'class') el.className = v;
      else el.setAttribute(k, v === true ? '' : v);
    }
    for (const kid of kids.flat(Infinity)) {
      if (kid != null && kid !== false) el.append(kid instanceof Node ? kid : String(kid));
    }
    return el;
  }
  const fmtNum = (n) => (typeof n === 'number' ? n.toLocaleString('en') : (n == null ? '–' : String(n)));
  const fmtRate = (r) => (typeof r === 'number' ? (r >= 100 ? r.toFixed(0) : r.toFixed(1)) + '/s' : '–');
  const fmtBool = (b) => (b ? '✓' : '');
  function fmtBytes(b) {
    if (typeof b !== 'number') return '–';
    const u = ['B', 'KiB', 'MiB', 'GiB', 'TiB']; let i = 0;
    while (b >= 1024 && i < u.length - 1) { b /= 1024; i++; }
    return (i ? b.toFixed(1) : b) + ' ' + u[i];
  }
  function fmtUptime(ms) {
    if (typeof ms !== 'number') return '–';
    const s = Math.floor(ms / 1000), d = Math.floor(s / 86400), hh = Math.floor(s / 3600) % 24, m = Math.floor(s / 60) % 60;
    return d ? `${d}d ${hh}h` : hh ? `${hh}h ${m}m` : `${m}m ${s % 60}s`;
  }
  const tagList = (t) => (Array.isArray(t) ? t : String(t || '').split(',')).map((x) => x.trim()).filter(Boolean);
  const pills = (t) => tagList(t).map((x) => h('span', { class: 'pill' }, x));
  const json = (v) => JSON.stringify(v);

  // ---- API -----------------------------------------------------------------
  class ApiError extends Error {
    constructor(status, body) {
      const b = body && typeof body === 'object' ? body : { error: String(body || '') };
      super(`${status} ${b.error || 'error'}${b.reason ? ': ' + b.reason : ''}`);
      this.status = status;
    }
  }
  function basic(user, pass) {
    const bytes = new TextEncoder().encode(`${user}:${pass}`);
    return 'Basic ' + btoa(String.fromCharCode(...bytes));
  }
  async function api(method, path, body, headers) {
    const opts = { method, cache: 'no-store', credentials: 'omit', headers: { Authorization: st.auth, ...headers } };
    if (body !== undefined) {
      opts.headers['Content-Type'] = 'application/json';
      opts.body = typeof body === 'string' ? body : JSON.stringify(body);
    }
    const r = await fetch('api' + path, opts);
    const text = await r.text();
    let data = null;
    try { data = text ? JSON.parse(text) : null; } catch (_) { data = text; }
    if (!r.ok) throw new ApiError(r.status, data);
    return data;
  }
  const get = (path) => api('GET', path);

  function showError(e) {
    $('#error-text').textContent = e instanceof ApiError ? `Error ${e.message}` : String((e && e.message) || e);
    $('#error-banner').hidden = false;
  }
  function clearError() { $('#error-banner').hidden = true; }
  let noticeTimer = null;
  function notice(msg) {
    const n = $('#notice');
    n.textContent = msg; n.hidden = false;
    clearTimeout(noticeTimer); noticeTimer = setTimeout(() => { n.hidden = true; }, 6000);
  }
  // Runs a user action: errors go to the banner, success refreshes the view.
  async function act(fn, msg) {
    clearError();
    try {
      await fn();
      if (msg) notice(msg);
      await refresh();
    } catch (e) { showError(e); }
  }

  // ---- widgets ----------------------------------------------------------------
  // A table of API rows: cols are [header, cell(row) -> text|Node, class?].
  function table(id, cols, key = (r) => r.name) {
    const tbody = h('tbody');
    const filter = h('input', { type: 'search', class: 'filter', placeholder: 'Filter…', 'aria-label': 'Filter', oninput: draw });
    const count = h('span', { class: 'count' });
    let rows = [];
    function draw() {
      const f = filter.value.trim().toLowerCase();
      const shown = f ? rows.filter((r) => String(key(r)).toLowerCase().includes(f)) : rows;
      count.textContent = f ? `${shown.length} of ${rows.length}` : `${rows.length} item${rows.length === 1 ? '' : 's'}`;
      tbody.replaceChildren(...(shown.length ? shown.map((r) => h('tr', { 'data-name': key(r) },
        cols.map((c) => h('td', { class: c[2] }, c[1](r))))) :
        [h('tr', { class: 'empty' }, h('td', { colspan: cols.length }, 'Nothing to show'))]));
    }
    const el = h('div', { class: 'card table-card' },
      h('div', { class: 'table-tools' }, filter, count),
      h('div', { class: 'scroll' }, h('table', { id, class: 'data' },
        h('thead', {}, h('tr', {}, cols.map((c) => h('th', { class: c[2] }, c[0])))), tbody)));
    const t = el.querySelector('table');
    return { el, set(r) { rows = Array.isArray(r) ? r : []; draw(); t.dataset.loaded = 'true'; } };
  }
  // A button that asks for a second click before running a destructive action.
  function dangerBtn(label, attrs, action, msg) {
    let armed = null;
    const b = h('button', { type: 'button', class: 'btn danger small', ...attrs }, label);
    const reset = () => { clearTimeout(armed); armed = null; b.classList.remove('confirming'); b.textContent = label; };
    b.addEventListener('click', () => {
      if (!armed) { b.classList.add('confirming'); b.textContent = 'Click to confirm'; armed = setTimeout(reset, 4000); return; }
      reset(); act(action, msg);
    });
    return b;
  }
  const field = (label, input, cls) => h('label', { class: 'field ' + (cls || '') }, h('span', {}, label), input);
  const vhostSelect = (id) => h('select', { id, class: 'vhost-select' },
    st.vhosts.map((v) => h('option', { value: v, selected: v === '/' }, v)));
  // A collapsible "add" form; onsubmit receives the form element.
  function addForm(title, id, fields, button, onsubmit) {
    const f = h('form', { class: 'card form', id }, h('h3', {}, title), h('div', { class: 'fields' }, fields),
      h('div', { class: 'actions' }, button));
    f.addEventListener('submit', (ev) => { ev.preventDefault(); onsubmit(f); });
    return f;
  }
  const section = (title, ...kids) => h('section', { class: 'section' }, h('h2', {}, title), kids);
  async function loadVhosts() {
    try { st.vhosts = (await get('/vhosts')).map((v) => v.name); } catch (_) { /* keep default */ }
    for (const s of document.querySelectorAll('select.vhost-select')) {
      const cur = s.value;
      s.replaceChildren(...st.vhosts.map((v) => h('option', { value: v }, v)));
      s.value = st.vhosts.includes(cur) ? cur : (st.vhosts.includes('/') ? '/' : st.vhosts[0]);
    }
  }
  function parseArgs(text) {
    const out = {};
    for (const raw of text.split('\n')) {
      const line = raw.trim();
      if (!line) continue;
      const i = line.indexOf('=');
      if (i < 1) throw new Error(`Bad argument line "${line}": expected key=value`);
      const k = line.slice(0, i).trim(), v = line.slice(i + 1).trim();
      out[k] = /^-?\d+(\.\d+)?$/.test(v) ? Number(v) : v === 'true' ? true : v === 'false' ? false : v;
    }
    return out;
  }
  const input = (id, attrs) => h('input', { id, ...attrs });
  const val = (id) => document.getElementById(id).value;
  const checked = (id) => document.getElementById(id).checked;

  // ---- rates chart ------------------------------------------------------------
  const SERIES = [['publish', 'Publish', '#f97316'], ['deliver', 'Deliver / get', '#3b82f6'], ['ack', 'Ack', '#10b981']];
  function rate(ms, k) { return (ms && ms[k] && typeof ms[k].rate === 'number') ? ms[k].rate : 0; }
  async function getOverview() {
    const ov = await get('/overview');
    const ms = ov.message_stats || {};
    const s = { t: Date.now(), publish: rate(ms, 'publish_details'), deliver: rate(ms, 'deliver_get_details'), ack: rate(ms, 'ack_details') };
    const last = st.samples[st.samples.length - 1];
    if (last && s.t - last.t < REFRESH_MS / 2) st.samples[st.samples.length - 1] = s; else st.samples.push(s);
    if (st.samples.length > MAX_SAMPLES) st.samples.shift();
    const ver = ov.rabbitmq_version || ov.product_version;
    const info = ov.warren_version ? [`Warren ${ov.warren_version}`, ver && `RabbitMQ ${ver} compatible`]
      : [`${ov.product_name || 'RabbitMQ'} ${ver || ''}`.trim()];
    $('#server-info').textContent = [...info, ov.cluster_name].filter(Boolean).join(' · ');
    return ov;
  }
  function niceMax(m) {
    const p = Math.pow(10, Math.floor(Math.log10(m)));
    return [1, 2, 5, 10].map((f) => f * p).find((x) => x >= m);
  }
  function drawChart(canvas) {
    if (!canvas.isConnected) return;
    const dpr = window.devicePixelRatio || 1, w = canvas.clientWidth, ht = canvas.clientHeight;
    canvas.width = w * dpr; canvas.height = ht * dpr;
    const c = canvas.getContext('2d');
    c.scale(dpr, dpr); c.clearRect(0, 0, w, ht);
    const P = { l: 48, r: 12, t: 10, b: 22 }, pw = w - P.l - P.r, ph = ht - P.t - P.b;
    const data = st.samples, max = niceMax(Math.max(1, ...data.flatMap((s) => SERIES.map(([k]) => s[k]))));
    c.font = '11px system-ui, sans-serif'; c.fillStyle = '#6b7280'; c.strokeStyle = '#e5e7eb'; c.lineWidth = 1;
    c.textAlign = 'right'; c.textBaseline = 'middle';
    for (let i = 0; i <= 4; i++) {
      const y = Math.round(P.t + ph - (ph * i) / 4) + 0.5;
      c.beginPath(); c.moveTo(P.l, y); c.lineTo(P.l + pw, y); c.stroke();
      c.fillText(`${+((max * i) / 4).toFixed(2)}/s`, P.l - 6, y);
    }
    c.textBaseline = 'top'; c.textAlign = 'left';
    c.fillText(`-${Math.round((MAX_SAMPLES - 1) * REFRESH_MS / 60000)} min`, P.l, P.t + ph + 6);
    c.textAlign = 'right'; c.fillText('now', P.l + pw, P.t + ph + 6);
    const x = (i) => P.l + (pw * (i + MAX_SAMPLES - data.length)) / (MAX_SAMPLES - 1);
    const y = (v) => P.t + ph - (ph * v) / max;
    if (data.length < 2) {
      c.textAlign = 'center'; c.textBaseline = 'middle'; c.fillText('Collecting samples…', P.l + pw / 2, P.t + ph / 2);
      return;
    }
    c.lineWidth = 2; c.lineJoin = 'round';
    for (const [k, , color] of SERIES) {
      c.strokeStyle = color; c.beginPath();
      data.forEach((s, i) => (i ? c.lineTo(x(i), y(s[k])) : c.moveTo(x(i), y(s[k]))));
      c.stroke();
    }
  }

  // ---- views: each returns { el, refresh(overview?) } ---------------------------
  const stat = (label, id) => h('div', { class: 'stat' }, h('div', { class: 'stat-value', id }, '–'), h('div', { class: 'stat-label' }, label));
  const setText = (id, v) => { const el = document.getElementById(id); if (el) el.textContent = v; };

  function overviewView() {
    const canvas = h('canvas', { id: 'rates-chart', class: 'chart' });
    const nodes = table('nodes', [
      ['Name', (n) => n.name], ['Type', (n) => n.type || '–'], ['Running', (n) => (n.running === false ? 'no' : 'yes')],
      ['Uptime', (n) => fmtUptime(n.uptime)], ['Memory', (n) => fmtBytes(n.mem_used), 'num'],
      ['Disk free', (n) => fmtBytes(n.disk_free), 'num'], ['File descriptors', (n) => `${fmtNum(n.fd_used)} / ${fmtNum(n.fd_total)}`, 'num'],
      ['Processes', (n) => `${fmtNum(n.proc_used)} / ${fmtNum(n.proc_total)}`, 'num']]);
    const el = h('div', { id: 'overview' },
      h('div', { class: 'grid3 ov-cards' },
        h('div', { class: 'card' }, h('h3', {}, 'Totals'), h('div', { class: 'stats' },
          stat('Connections', 'ov-connections'), stat('Channels', 'ov-channels'), stat('Exchanges', 'ov-exchanges'),
          stat('Queues', 'ov-queues'), stat('Consumers', 'ov-consumers'))),
        h('div', { class: 'card' }, h('h3', {}, 'Queued messages'), h('div', { class: 'stats' },
          stat('Total', 'ov-messages'), stat('Ready', 'ov-ready'), stat('Unacked', 'ov-unacked'))),
        h('div', { class: 'card' }, h('h3', {}, 'Message rates'), h('div', { class: 'stats' },
          stat('Publish', 'ov-publish'), stat('Deliver / get', 'ov-deliver'), stat('Ack', 'ov-ack')))),
      h('div', { class: 'card' }, h('h3', {}, 'Message rates, last 5 minutes'), canvas,
        h('div', { class: 'legend' }, SERIES.map(([, label, color]) => h('span', {}, h('i', { style: `background:${color}` }), label)))),
      section('Nodes', nodes.el));
    return {
      el,
      overview: true,
      async refresh() {
        const ov = await getOverview();
        const o = ov.object_totals || {}, q = ov.queue_totals || {}, ms = ov.message_stats || {};
        for (const k of ['connections', 'channels', 'exchanges', 'queues', 'consumers']) setText('ov-' + k, fmtNum(o[k] ?? 0));
        setText('ov-messages', fmtNum(q.messages ?? 0)); setText('ov-ready', fmtNum(q.messages_ready ?? 0));
        setText('ov-unacked', fmtNum(q.messages_unacknowledged ?? 0));
        setText('ov-publish', fmtRate(rate(ms, 'publish_details'))); setText('ov-deliver', fmtRate(rate(ms, 'deliver_get_details')));
        setText('ov-ack', fmtRate(rate(ms, 'ack_details')));
        drawChart(canvas);
        nodes.set(await get('/nodes').catch(() => [])); // needs the monitoring tag
      },
    };
  }

  function connectionsView() {
    const t = table('connections', [
      ['Name', (c) => c.name], ['User', (c) => c.user], ['Virtual host', (c) => c.vhost], ['State', (c) => (c.state ? h('span', { class: 'state ' + c.state }, c.state) : '–')],
      ['Channels', (c) => fmtNum(c.channels), 'num'], ['Peer', (c) => `${c.peer_host ?? '?'}:${c.peer_port ?? '?'}`],
      ['Protocol', (c) => c.protocol || '–'],
      ['', (c) => dangerBtn('Close', { class: 'btn danger small close-connection' },
        () => api('DELETE', `/connections/${enc(c.name)}`, undefined, { 'X-Reason': 'Closed via management UI' }), 'Connection closed'), 'act']]);
    return { el: section('Connections', t.el), async refresh() { t.set(await get('/connections')); } };
  }

  function channelsView() {
    const t = table('channels', [
      ['Name', (c) => c.name], ['User', (c) => c.user], ['Virtual host', (c) => c.vhost], ['State', (c) => c.state || '–'],
      ['Consumers', (c) => fmtNum(c.consumer_count), 'num'], ['Prefetch', (c) => fmtNum(c.prefetch_count), 'num'],
      ['Unacked', (c) => fmtNum(c.messages_unacknowledged), 'num'], ['Confirm', (c) => fmtBool(c.confirm)]]);
    return { el: section('Channels', t.el), async refresh() { t.set(await get('/channels')); } };
  }

  function exchangesView() {
    const t = table('exchanges', [
      ['Virtual host', (x) => x.vhost], ['Name', (x) => x.name || '(AMQP default)'], ['Type', (x) => x.type],
      ['Durable', (x) => fmtBool(x.durable)], ['Auto-delete', (x) => fmtBool(x.auto_delete)], ['Internal', (x) => fmtBool(x.internal)],
      ['', (x) => (!x.name || x.name.startsWith('amq.')) ? '' : dangerBtn('Delete', { class: 'btn danger small delete-exchange' },
        () => api('DELETE', `/exchanges/${enc(x.vhost)}/${enc(x.name)}`), `Exchange ${x.name} deleted`), 'act']], (x) => x.name);
    const form = addForm('Add exchange', 'exchange-add', [
      field('Virtual host', vhostSelect('exchange-add-vhost')),
      field('Name', input('exchange-add-name', { required: true })),
      field('Type', h('select', { id: 'exchange-add-type' }, ['direct', 'fanout', 'topic', 'headers'].map((x) => h('option', {}, x)))),
      field('Durable', input('exchange-add-durable', { type: 'checkbox', checked: true }), 'check')],
    h('button', { id: 'exchange-add-button', class: 'btn primary', type: 'submit' }, 'Add exchange'),
    (f) => act(async () => {
      const name = val('exchange-add-name');
      await api('PUT', `/exchanges/${enc(val('exchange-add-vhost'))}/${enc(name)}`, { type: val('exchange-add-type'), durable: checked('exchange-add-durable') });
      f.reset();
    }, 'Exchange declared'));
    loadVhosts();
    return { el: h('div', {}, section('Exchanges', t.el), form), async refresh() { t.set(await get('/exchanges')); } };
  }

  const queueHref = (v, n) => `#/queues/${enc(v)}/${enc(n)}`;
  function queuesView() {
    const t = table('queues', [
      ['Virtual host', (q) => q.vhost], ['Name', (q) => h('a', { href: queueHref(q.vhost, q.name), class: 'queue-link' }, q.name)],
      ['Type', (q) => q.type || 'classic'], ['State', (q) => (q.state ? h('span', { class: 'state ' + q.state }, q.state) : '–')],
      ['Ready', (q) => fmtNum(q.messages_ready), 'num'], ['Unacked', (q) => fmtNum(q.messages_unacknowledged), 'num'],
      ['Total', (q) => fmtNum(q.messages), 'num'], ['Consumers', (q) => fmtNum(q.consumers), 'num'],
      ['Policy', (q) => q.policy || '']]);
    const form = addForm('Add queue', 'queue-add', [
      field('Virtual host', vhostSelect('queue-add-vhost')),
      field('Name', input('queue-add-name', { required: true })),
      field('Durable', input('queue-add-durable', { type: 'checkbox', checked: true }), 'check'),
      field('Arguments (key=value per line)', h('textarea', { id: 'queue-add-args', rows: 3, placeholder: 'x-queue-type=quorum\nx-max-length=1000' }), 'wide')],
    h('button', { id: 'queue-add-button', class: 'btn primary', type: 'submit' }, 'Add queue'),
    (f) => act(async () => {
      const body = { durable: checked('queue-add-durable'), auto_delete: false, arguments: parseArgs(val('queue-add-args')) };
      await api('PUT', `/queues/${enc(val('queue-add-vhost'))}/${enc(val('queue-add-name'))}`, body);
      f.reset();
    }, 'Queue declared'));
    loadVhosts();
    return { el: h('div', {}, section('Queues', t.el), form), async refresh() { t.set(await get('/queues')); } };
  }

  function queueView(vhost, name) {
    const path = `/queues/${enc(vhost)}/${enc(name)}`;
    const info = h('tbody');
    const results = h('div', { id: 'get-results', class: 'messages' });
    const publish = () => act(async () => {
      const r = await api('POST', `/exchanges/${enc(vhost)}/amq.default/publish`,
        { properties: {}, routing_key: name, payload: val('publish-payload'), payload_encoding: 'string' });
      if (r && r.routed === false) throw new Error('Message published but not routed');
    }, 'Message published');
    const getMessages = () => act(async () => {
      const msgs = await api('POST', `${path}/get`, { count: Number(val('get-count')) || 1, ackmode: 'ack_requeue_true', encoding: 'auto', truncate: 50000 });
      results.replaceChildren(...(msgs.length ? msgs.map((m, i) => h('div', { class: 'message' },
        h('div', { class: 'message-meta' }, `#${i + 1} · exchange ${m.exchange ? `"${m.exchange}"` : '(AMQP default)'} · routing key "${m.routing_key}"`,
          ` · ${fmtNum(m.payload_bytes)} bytes · ${m.payload_encoding}${m.redelivered ? ' · redelivered' : ''}`),
        Object.keys(m.properties || {}).length ? h('div', { class: 'message-props' }, json(m.properties)) : null,
        h('pre', { class: 'message-payload' }, m.payload))) : [h('p', { class: 'empty' }, 'Queue is empty')]));
      results.dataset.seq = (Number(results.dataset.seq) || 0) + 1;
    });
    const el = h('div', { id: 'queue-detail' },
      h('div', { class: 'crumbs' }, h('a', { href: '#/queues' }, 'Queues'), ' › ',
        h('strong', { id: 'queue-name' }, name), h('span', { class: 'pill' }, 'vhost ' + vhost)),
      h('div', { class: 'grid2' },
        h('div', {},
          h('div', { class: 'card' }, h('h3', {}, 'Details'), h('table', { id: 'queue-info', class: 'kv' }, info)),
          h('div', { class: 'card danger-zone' }, h('h3', {}, 'Danger zone'), h('div', { class: 'actions' },
            dangerBtn('Purge messages', { id: 'purge-button' }, () => api('DELETE', `${path}/contents`), 'Queue purged'),
            dangerBtn('Delete queue', { id: 'delete-button' }, async () => {
              await api('DELETE', path); location.hash = '#/queues';
            }, `Queue ${name} deleted`)))),
        h('div', {},
          h('div', { class: 'card form' }, h('h3', {}, 'Publish message'),
            field('Payload', h('textarea', { id: 'publish-payload', rows: 4 }), 'wide'),
            h('div', { class: 'actions' }, h('button', { id: 'publish-button', class: 'btn primary', type: 'button', onclick: publish }, 'Publish'))),
          h('div', { class: 'card form' }, h('h3', {}, 'Get messages'),
            h('div', { class: 'fields' }, field('Count', input('get-count', { type: 'number', min: 1, value: 1 })),
              h('button', { id: 'get-button', class: 'btn', type: 'button', onclick: getMessages }, 'Get messages'),
              h('p', { class: 'muted hint' }, 'Fetched messages are requeued.')),
            results))));
    return {
      el,
      async refresh() {
        let q;
        try { q = await get(path); } catch (e) {
          if (e.status === 404) { info.replaceChildren(h('tr', {}, h('td', { colspan: 2 }, 'Queue not found'))); return; }
          throw e;
        }
        const rows = [['Virtual host', q.vhost], ['Type', q.type || 'classic'], ['State', q.state], ['Durable', q.durable ? 'yes' : 'no'],
          ['Auto-delete', q.auto_delete ? 'yes' : 'no'], ['Exclusive', q.exclusive ? 'yes' : 'no'],
          ['Messages', fmtNum(q.messages)], ['Ready', fmtNum(q.messages_ready)], ['Unacked', fmtNum(q.messages_unacknowledged)],
          ['Consumers', fmtNum(q.consumers)], ['Memory', fmtBytes(q.memory)], ['Policy', q.policy || '–'],
          ['Arguments', Object.keys(q.arguments || {}).length ? json(q.arguments) : '–']];
        info.replaceChildren(...rows.map(([k, v]) => h('tr', {}, h('th', {}, k), h('td', {}, v ?? '–'))));
      },
    };
  }

  function usersView() {
    const users = table('users', [
      ['Name', (u) => u.name], ['Tags', (u) => pills(u.tags)], ['Password', (u) => (u.password_hash ? 'set' : 'none')],
      ['', (u) => dangerBtn('Delete', { class: 'btn danger small delete-user' }, () => api('DELETE', `/users/${enc(u.name)}`), `User ${u.name} deleted`), 'act']]);
    const perms = table('permissions', [
      ['User', (p) => p.user], ['Virtual host', (p) => p.vhost], ['Configure', (p) => h('code', {}, p.configure)],
      ['Write', (p) => h('code', {}, p.write)], ['Read', (p) => h('code', {}, p.read)],
      ['', (p) => dangerBtn('Clear', { class: 'btn danger small clear-permission' }, () => api('DELETE', `/permissions/${enc(p.vhost)}/${enc(p.user)}`), 'Permissions cleared'), 'act']],
    (p) => `${p.user} ${p.vhost}`);
    const userForm = addForm('Add user', 'user-add', [
      field('Name', input('user-add-name', { required: true, autocomplete: 'off' })),
      field('Password', input('user-add-pass', { type: 'password', autocomplete: 'new-password' })),
      field('Tags (comma separated)', input('user-add-tags', { placeholder: 'administrator' }))],
    h('button', { id: 'user-add-button', class: 'btn primary', type: 'submit' }, 'Add user'),
    (f) => act(async () => {
      await api('PUT', `/users/${enc(val('user-add-name'))}`, { password: val('user-add-pass'), tags: val('user-add-tags') }); f.reset();
    }, 'User saved'));
    const permForm = addForm('Set permissions', 'perm-set', [
      field('User', input('perm-user', { required: true })),
      field('Virtual host', vhostSelect('perm-vhost')),
      field('Configure', input('perm-configure', { value: '.*' })), field('Write', input('perm-write', { value: '.*' })),
      field('Read', input('perm-read', { value: '.*' }))],
    h('button', { id: 'perm-button', class: 'btn primary', type: 'submit' }, 'Set permissions'),
    () => act(() => api('PUT', `/permissions/${enc(val('perm-vhost'))}/${enc(val('perm-user'))}`,
      { configure: val('perm-configure'), write: val('perm-write'), read: val('perm-read') }), 'Permissions set'));
    loadVhosts();
    return {
      el: h('div', {}, section('Users', users.el), userForm, section('Permissions', perms.el), permForm),
      async refresh() { const [u, p] = await Promise.all([get('/users'), get('/permissions')]); users.set(u); perms.set(p); },
    };
  }

  function vhostsView() {
    const t = table('vhosts', [
      ['Name', (v) => v.name], ['Description', (v) => v.description || ''], ['Ready', (v) => fmtNum(v.messages_ready), 'num'],
      ['Unacked', (v) => fmtNum(v.messages_unacknowledged), 'num'], ['Total', (v) => fmtNum(v.messages), 'num'],
      ['', (v) => dangerBtn('Delete', { class: 'btn danger small delete-vhost' }, async () => {
        await api('DELETE', `/vhosts/${enc(v.name)}`); await loadVhosts();
      }, `Virtual host ${v.name} deleted`), 'act']]);
    const form = addForm('Add virtual host', 'vhost-add', [field('Name', input('vhost-add-name', { required: true }))],
      h('button', { id: 'vhost-add-button', class: 'btn primary', type: 'submit' }, 'Add virtual host'),
      (f) => act(async () => { await api('PUT', `/vhosts/${enc(val('vhost-add-name'))}`); f.reset(); await loadVhosts(); }, 'Virtual host added'));
    return { el: h('div', {}, section('Virtual hosts', t.el), form), async refresh() { t.set(await get('/vhosts')); } };
  }

  function policiesView() {
    const t = table('policies', [
      ['Virtual host', (p) => p.vhost], ['Name', (p) => p.name], ['Pattern', (p) => h('code', {}, p.pattern)],
      ['Apply to', (p) => p['apply-to']], ['Definition', (p) => h('code', {}, json(p.definition))], ['Priority', (p) => fmtNum(p.priority), 'num'],
      ['', (p) => dangerBtn('Delete', { class: 'btn danger small delete-policy' }, () => api('DELETE', `/policies/${enc(p.vhost)}/${enc(p.name)}`), `Policy ${p.name} deleted`), 'act']]);
    const form = addForm('Add / update policy', 'policy-add', [
      field('Virtual host', vhostSelect('policy-add-vhost')),
      field('Name', input('policy-add-name', { required: true })), field('Pattern', input('policy-add-pattern', { required: true, placeholder: '^orders\\.' })),
      field('Apply to', h('select', { id: 'policy-add-applyto' }, ['queues', 'exchanges', 'all'].map((x) => h('option', {}, x)))),
      field('Priority', input('policy-add-priority', { type: 'number', value: 0 })),
      field('Definition (JSON)', h('textarea', { id: 'policy-add-definition', rows: 3, placeholder: '{"max-length": 1000}' }), 'wide')],
    h('button', { id: 'policy-add-button', class: 'btn primary', type: 'submit' }, 'Save policy'),
    (f) => act(async () => {
      let definition;
      try { definition = JSON.parse(val('policy-add-definition') || '{}'); } catch (e) { throw new Error('Definition is not valid JSON: ' + e.message); }
      await api('PUT', `/policies/${enc(val('policy-add-vhost'))}/${enc(val('policy-add-name'))}`,
        { pattern: val('policy-add-pattern'), definition, priority: Number(val('policy-add-priority')) || 0, 'apply-to': val('policy-add-applyto') });
      f.reset();
    }, 'Policy saved'));
    loadVhosts();
    return { el: h('div', {}, section('Policies', t.el), form), async refresh() { t.set(await get('/policies')); } };
  }

  function definitionsView() {
    const file = input('definitions-file', { type: 'file', accept: 'application/json,.json' });
    const el = h('div', { class: 'grid2' },
      h('div', { class: 'card form' }, h('h3', {}, 'Export definitions'),
        h('p', { class: 'muted' }, 'Users, virtual hosts, permissions, policies, exchanges, queues and bindings as a JSON file.'),
        h('div', { class: 'actions' }, h('button', { id: 'definitions-download', class: 'btn primary', type: 'button', onclick: () => act(async () => {
          const defs = await get('/definitions');
          const url = URL.createObjectURL(new Blob([JSON.stringify(defs, null, 2)], { type: 'application/json' }));
          const a = h('a', { href: url, download: `warren-definitions-${new Date().toISOString().slice(0, 10)}.json` });
          document.body.append(a); a.click(); a.remove();
          setTimeout(() => URL.revokeObjectURL(url), 10000);
        }, 'Definitions downloaded') }, 'Download'))),
      h('div', { class: 'card form' }, h('h3', {}, 'Import definitions'),
        h('p', { class: 'muted' }, 'Upload a definitions file previously exported from Warren or RabbitMQ.'),
        field('File', file, 'wide'),
        h('div', { class: 'actions' }, h('button', { id: 'definitions-upload', class: 'btn primary', type: 'button', onclick: () => act(async () => {
          if (!file.files.length) throw new Error('Choose a definitions file first');
          const text = await file.files[0].text();
          try { JSON.parse(text); } catch (e) { throw new Error('File is not valid JSON: ' + e.message); }
          await api('POST', '/definitions', text);
        }, 'Definitions imported') }, 'Upload'))));
    return { el: section('Definitions', el), async refresh() {} };
  }

  // ---- routing and lifecycle -------------------------------------------------
  const VIEWS = { overview: overviewView, connections: connectionsView, channels: channelsView, exchanges: exchangesView,
    queues: queuesView, users: usersView, vhosts: vhostsView, policies: policiesView, definitions: definitionsView };

  // Refreshes the current view; a request made while one runs is queued, not dropped.
  async function refresh() {
    if (!st.view) return;
    if (st.busy) { st.again = true; return; }
    st.busy = true;
    try {
      do {
        st.again = false;
        const v = st.view;
        if (!v) break;
        if (!v.overview) await getOverview().catch(() => {}); // keep the chart's samples flowing
        await v.refresh();
        $('#updated').textContent = 'Updated ' + new Date().toLocaleTimeString();
      } while (st.again);
    } catch (e) { showError(e); } finally { st.busy = false; }
  }
  function route() {
    if (!st.auth) return;
    const parts = location.hash.replace(/^#\/?/, '').split('/');
    let tab = parts[0] || 'overview', view;
    let detail = null;
    try { if (tab === 'queues' && parts.length === 3) detail = parts.slice(1).map(decodeURIComponent); } catch (_) { /* bad escape */ }
    if (detail) view = queueView(detail[0], detail[1]);
    else { if (!VIEWS[tab]) tab = 'overview'; view = VIEWS[tab](); }
    for (const a of document.querySelectorAll('#tabs a')) a.classList.toggle('active', a.dataset.tab === tab);
    clearError();
    st.view = view;
    $('#content').replaceChildren(view.el);
    refresh();
  }

  function showLogin(msg) {
    $('#app').hidden = true; $('#login').hidden = false;
    const err = $('#login-error');
    err.textContent = msg || ''; err.hidden = !msg;
    $('#login-user').focus();
  }
  function start(who) {
    $('#user-name').textContent = who.name;
    $('#user-tags').replaceChildren(...pills(who.tags));
    $('#login').hidden = true; $('#app').hidden = false;
    clearInterval(st.timer);
    st.timer = setInterval(refresh, REFRESH_MS);
    route();
  }
  async function whoami(auth) {
    const r = await fetch('api/whoami', { headers: { Authorization: auth }, cache: 'no-store', credentials: 'omit' });
    return r.ok ? r.json() : Promise.reject(r.status);
  }
  function logout() {
    sessionStorage.removeItem('warren.auth');
    st.auth = null; st.view = null; st.samples = [];
    clearInterval(st.timer);
    $('#content').replaceChildren();
    showLogin();
  }

  $('#login-form').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const auth = basic($('#login-user').value, $('#login-pass').value);
    $('#login-button').disabled = true;
    try {
      const who = await whoami(auth);
      st.auth = auth; sessionStorage.setItem('warren.auth', auth);
      $('#login-pass').value = '';
      start(who);
    } catch (status) {
      showLogin(status === 401 ? 'Login failed: wrong username or password' :
        typeof status === 'number' ? `Login failed: HTTP ${status}` : 'Login failed: server unreachable');
    } finally { $('#login-button').disabled = false; }
  });
  $('#logout-button').addEventListener('click', logout);
  $('#error-close').addEventListener('click', clearError);
  window.addEventListener('hashchange', route);
  window.addEventListener('resize', () => { const c = $('#rates-chart'); if (c) drawChart(c); });

  const saved = sessionStorage.getItem('warren.auth');
  if (saved) {
    whoami(saved).then((who) => { st.auth = saved; start(who); }, () => { sessionStorage.removeItem('warren.auth'); showLogin(); });
  } else showLogin();
})();
