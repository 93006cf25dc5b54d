// entrasync console: a client of /api/v1 and nothing else. Plain ES2020, no framework, no build step.
// Served with a strict Content-Security-Policy: no inline scripts or styles, the DOM is built from nodes, never from HTML strings.
(function () {
  'use strict';

  const TOKEN_KEY = 'entrasync.token';
  const CLASSES = ['user', 'group', 'device'];
  const CLASS_LABEL = { user: 'Users', group: 'Groups', device: 'Devices' };
  const CLOUDS = [
    ['global', 'Global'],
    ['us_gov', 'US Gov'],
    ['us_gov_dod', 'US Gov DoD'],
    ['china', 'China'],
    ['custom', 'Custom'],
  ];
  const RUN_STATUSES = ['running', 'success', 'warning', 'held', 'failed', 'cancelled'];
  const PAGE_SIZES = [50, 100, 1000];
  const PERMISSION_LABEL = {
    unknown: 'Not checked',
    granted: 'Granted',
    granted_needs_settings: 'Granted, needs settings',
    needs_additional_permissions: 'Needs permissions',
    error: 'Error',
  };
  const PERMISSION_NEXT_STEP = {
    unknown: 'Test the connection to read the permissions the app has in this directory.',
    granted: 'Nothing to do: the app has every permission entrasync needs.',
    granted_needs_settings: 'The permissions are granted but a directory setting is missing; see the test result.',
    needs_additional_permissions: 'Grant the missing application permissions (Grant permissions), then test the connection again.',
    error: 'The last check failed; test the connection to see why.',
  };

  const state = {
    token: null,
    session: null,
    tenants: [],
    profiles: null,
    route: null,
    view: 0, // bumped on every navigation; timers and late answers of an old view check it
    testResults: {}, // tenant id -> last test-connection result, for the permissions panel
  };

  // ---------------------------------------------------------------- DOM helpers

  function $(id) { return document.getElementById(id); }

  // el('div', {class: 'x', id: 'y', onclick: fn}, child, 'text', [children]...)
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    if (attrs) {
      for (const [key, value] of Object.entries(attrs)) {
        if (value === undefined || value === null || value === false) continue;
        if (key.startsWith('on') && typeof value === 'function') {
          node.addEventListener(key.slice(2), value);
        } else if (key === 'class') {
          node.className = value;
        } else if (key === 'value') {
          node.value = value;
        } else if (key === 'checked' || key === 'disabled' || key === 'selected' || key === 'readOnly' || key === 'hidden') {
          node[key] = Boolean(value);
        } else if (value === true) {
          node.setAttribute(key, '');
        } else {
          node.setAttribute(key, String(value));
        }
      }
    }
    append(node, children);
    return node;
  }

  function append(node, children) {
    for (const child of children) {
      if (child === undefined || child === null || child === false) continue;
      if (Array.isArray(child)) append(node, child);
      else if (child instanceof Node) node.appendChild(child);
      else node.appendChild(document.createTextNode(String(child)));
    }
  }

  function clear(node) {
    while (node.firstChild) node.removeChild(node.firstChild);
    return node;
  }

  function isAdmin() { return state.session && state.session.role === 'admin'; }

  // A button that changes something: disabled for viewers, with the reason as its title.
  function writeButton(attrs, ...children) {
    const button = el('button', Object.assign({ type: 'button', class: 'btn' }, attrs), ...children);
    if (!isAdmin()) {
      button.disabled = true;
      button.title = 'Needs the admin role';
    }
    return button;
  }

  function option(value, label, selected) {
    return el('option', { value, selected: selected ? true : undefined }, label);
  }

  function select(attrs, options, current) {
    return el('select', attrs, options.map(([value, label]) => option(value, label, String(value) === String(current))));
  }

  function field(id, label, input, hint) {
    return el('div', { class: 'field' },
      el('label', { for: id }, label),
      input,
      hint ? el('p', { class: 'hint', id: id + '-hint' }, hint) : null,
      el('p', { class: 'field-error', id: id + '-error', role: 'alert' }));
  }

  function checkbox(id, label, checked, disabled) {
    return el('label', { class: 'check', for: id },
      el('input', { type: 'checkbox', id, checked, disabled }), label);
  }

  function pad(n) { return String(n).padStart(2, '0'); }

  function fmtTime(iso) {
    if (!iso) return '—';
    const d = new Date(iso);
    if (Number.isNaN(d.getTime())) return iso;
    return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
  }

  function labelled(cell, label) {
    cell.setAttribute('data-label', label);
    return cell;
  }

  function timeCell(iso) {
    return el('td', { class: 'nowrap', title: iso || undefined }, fmtTime(iso));
  }

  function fmtNum(n) {
    if (n === undefined || n === null) return '—';
    return Number(n).toLocaleString('en-US');
  }

  function today() {
    const d = new Date();
    return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}`;
  }

  function cloudLabel(cloud) {
    const found = CLOUDS.find(([value]) => value === cloud);
    return found ? found[1] : cloud;
  }

  function statusTone(status) {
    switch (status) {
      case 'success': case 'granted': case 'ok': return 'green';
      case 'warning': case 'held': case 'granted_needs_settings': return 'amber';
      case 'failed': case 'error': case 'needs_additional_permissions': return 'red';
      case 'running': return 'blue';
      default: return 'grey';
    }
  }

  function pill(status, label) {
    return el('span', { class: `pill pill-${statusTone(status)}` }, label || status || 'none');
  }

  function permissionPill(status) {
    return pill(status || 'unknown', PERMISSION_LABEL[status] || status || 'Not checked');
  }

  function loading(text) {
    return el('div', { class: 'loading' }, el('span', { class: 'spinner', 'aria-hidden': 'true' }), text || 'Loading…');
  }

  // ---------------------------------------------------------------- API client

  class ApiError extends Error {
    constructor(status, problem) {
      super(problem.detail || problem.title || `HTTP ${status}`);
      this.status = status;
      this.title = problem.title || `Request failed (${status})`;
      this.detail = problem.detail || '';
      this.field = problem.field || null;
      // A 422 of mappings and expressions lists every problem: {field, message, position?}.
      this.problems = Array.isArray(problem.problems) ? problem.problems : [];
      this.position = problem.position || null;
    }
  }

  async function problemOf(response) {
    const type = response.headers.get('Content-Type') || '';
    if (type.includes('json')) {
      try { return await response.json(); } catch (_) { /* fall through */ }
    }
    let text = '';
    try { text = (await response.text()).slice(0, 300); } catch (_) { /* nothing to read */ }
    return { title: `${response.status} ${response.statusText}`.trim(), detail: text };
  }

  async function request(method, path, body, options) {
    const headers = { Accept: 'application/json' };
    const token = (options && options.token) || state.token;
    if (token) headers.Authorization = `Bearer ${token}`;
    const init = { method, headers, cache: 'no-store' };
    if (body !== undefined) {
      headers['Content-Type'] = 'application/json';
      init.body = JSON.stringify(body);
    }
    let response;
    try {
      response = await fetch(path, init);
    } catch (error) {
      throw new ApiError(0, { title: 'The service did not answer', detail: String(error.message || error) });
    }
    if (response.status === 401 && !(options && options.signIn)) {
      signOut('Your token is no longer accepted. Sign in again.');
      throw new ApiError(401, await problemOf(response));
    }
    if (!response.ok) throw new ApiError(response.status, await problemOf(response));
    if (options && options.raw) return response;
    if (response.status === 204) return null;
    const type = response.headers.get('Content-Type') || '';
    return type.includes('json') ? response.json() : response.text();
  }

  const api = {
    get: (path, options) => request('GET', path, undefined, options),
    post: (path, body) => request('POST', path, body === undefined ? {} : body),
    patch: (path, body) => request('PATCH', path, body),
    put: (path, body) => request('PUT', path, body),
    del: (path) => request('DELETE', path),
  };

  function query(params) {
    const search = new URLSearchParams();
    for (const [key, value] of Object.entries(params)) {
      if (value !== undefined && value !== null && value !== '') search.set(key, String(value));
    }
    const text = search.toString();
    return text ? `?${text}` : '';
  }

  // ---------------------------------------------------------------- notifications and field errors

  function notify(kind, title, detail, items) {
    $('announcer').textContent = `${title}${detail ? '. ' + detail : ''}`;
    // With a dialog open, the message belongs to it: shown inside, above its buttons.
    const dialog = $('dialog');
    const area = dialog.open && dialog.querySelector('#dialog-message');
    if (area) {
      clear(area).appendChild(el('div', { class: `callout callout-${kind === 'success' ? 'green' : kind === 'error' ? 'red' : kind === 'warning' ? 'amber' : 'blue'}` },
        el('strong', null, title),
        detail ? el('div', null, detail) : null,
        items && items.length && !dialog.querySelector('.result-list') ? el('ul', null, items.map((item) => el('li', null, item))) : null));
      return area;
    }
    const box = $('notifications');
    const toast = el('div', { class: `toast ${kind}` },
      el('div', { class: 'body' },
        el('div', { class: 'title' }, title),
        detail ? el('div', { class: 'detail' }, detail) : null,
        items && items.length ? el('ul', null, items.map((item) => el('li', null, item))) : null),
      el('button', { type: 'button', class: 'btn btn-ghost close', 'aria-label': 'Dismiss notification', onclick: () => toast.remove() }, '×'));
    box.appendChild(toast);
    while (box.children.length > 4) box.firstChild.remove();

    const keep = kind === 'error' || kind === 'warning' ? 15000 : 6000;
    setTimeout(() => toast.remove(), keep);
    return toast;
  }

  function clearFieldErrors(root) {
    for (const node of root.querySelectorAll('.field-error')) node.textContent = '';
    for (const node of root.querySelectorAll('[aria-invalid]')) node.removeAttribute('aria-invalid');
  }

  // Shows an API error: next to its input when the problem names a field the form has, and always as a
  // notification. `fields` maps API field names to input ids.
  function showError(error, fields, root) {
    if (!(error instanceof ApiError)) {
      notify('error', 'Something went wrong', String(error && error.message ? error.message : error));
      return;
    }
    if (error.status === 401) return; // signed out already, with its own message
    let inline = false;
    if (error.field && fields) {
      const id = fields[error.field];
      const input = id && (root || document).querySelector(`#${CSS.escape(id)}`);
      if (input) {
        input.setAttribute('aria-invalid', 'true');
        input.setAttribute('aria-describedby', `${id}-error`);
        const message = $(`${id}-error`);
        if (message) message.textContent = error.detail || error.title;
        input.focus();
        inline = true;
      }
    }
    // In a dialog the message next to the input is enough; elsewhere a notification tells it too.
    if (inline && $('dialog').open) {
      $('announcer').textContent = `${error.title}. ${error.detail}`;
      return;
    }
    notify('error', error.title, error.detail);
  }

  // Runs `work` with `button` disabled and a spinner; errors go to showError.
  async function busy(button, work, fields, root) {
    const label = Array.from(button.childNodes);
    button.disabled = true;
    button.setAttribute('aria-busy', 'true');
    clear(button);
    append(button, [el('span', { class: 'spinner', 'aria-hidden': 'true' }), label]);
    try {
      return await work();
    } catch (error) {
      showError(error, fields, root);
      return undefined;
    } finally {
      clear(button);
      append(button, label);
      button.removeAttribute('aria-busy');
      button.disabled = false;
    }
  }

  // ---------------------------------------------------------------- dialogs

  let dialogReturnFocus = null;

  // Opens the one <dialog> with a form built by `build(form)`. Escape closes it (native), focus moves to
  // the first field and comes back to what had it.
  function openDialog(id, title, build, wide) {
    const dialog = $('dialog');
    if (dialog.open) dialog.close();
    clear(dialog);
    dialog.classList.toggle('dialog-wide', Boolean(wide));
    dialogReturnFocus = document.activeElement;
    const form = el('form', { id: `${id}-form`, novalidate: true, method: 'dialog' });
    form.appendChild(el('div', { class: 'dialog-head' },
      el('h2', { id: 'dialog-title' }, title),
      el('button', { type: 'button', class: 'btn btn-ghost', 'aria-label': 'Close dialog', id: `${id}-close`, onclick: closeDialog }, '×')));
    dialog.dataset.name = id;
    dialog.appendChild(form);
    build(form);
    const foot = form.querySelector('.dialog-foot');
    form.insertBefore(el('div', { id: 'dialog-message', class: 'dialog-message' }), foot);
    dialog.showModal();
    const first = form.querySelector('[autofocus], input:not([type=hidden]):not([readonly]):not([disabled]), select, textarea, button.btn-primary');
    if (first) first.focus();
    return { dialog, form };
  }

  function closeDialog() {
    const dialog = $('dialog');
    if (dialog.open) dialog.close();
  }

  function initDialog() {
    const dialog = $('dialog');
    dialog.addEventListener('close', () => {
      clear(dialog);
      delete dialog.dataset.name;
      if (dialogReturnFocus && document.contains(dialogReturnFocus)) dialogReturnFocus.focus();
      dialogReturnFocus = null;
    });
  }

  // A yes/no question; resolves true when confirmed.
  function confirmDialog(title, message, confirmLabel, danger) {
    return new Promise((resolve) => {
      let answered = false;
      const { dialog } = openDialog('confirm', title, (form) => {
        form.appendChild(el('div', { class: 'dialog-body' }, el('p', { id: 'confirm-message' }, message)));
        form.appendChild(el('div', { class: 'dialog-foot' },
          el('button', { type: 'button', class: 'btn', id: 'confirm-cancel', onclick: closeDialog }, 'Cancel'),
          el('button', { type: 'submit', class: danger ? 'btn btn-danger-solid' : 'btn btn-primary', id: 'confirm-ok', autofocus: true }, confirmLabel)));
        form.addEventListener('submit', (event) => {
          event.preventDefault();
          answered = true;
          closeDialog();
          resolve(true);
        });
      });
      dialog.addEventListener('close', () => { if (!answered) resolve(false); }, { once: true });
    });
  }

  // ---------------------------------------------------------------- session

  async function signIn(token) {
    const session = await request('GET', '/api/v1/session', undefined, { token, signIn: true });
    state.token = token;
    state.session = session;
    sessionStorage.setItem(TOKEN_KEY, token);
  }

  function signOut(message) {
    state.token = null;
    state.session = null;
    state.tenants = [];
    state.profiles = null;
    sessionStorage.removeItem(TOKEN_KEY);
    closeDialog();
    showSignIn(message);
  }

  function showSignIn(message) {
    state.view += 1;
    $('shell').hidden = true;
    $('signin').hidden = false;
    $('signin-error').textContent = message || '';
    $('signin-token').value = '';
    $('signin-token').focus();
  }

  function showShell() {
    $('signin').hidden = true;
    $('shell').hidden = false;
    $('session-name').textContent = state.session.token_name;
    const role = $('session-role');
    role.textContent = state.session.role;
    role.className = `pill ${state.session.role === 'admin' ? 'pill-blue' : 'pill-grey'}`;
    document.body.classList.toggle('role-viewer', !isAdmin());
    $('nav-tokens-item').hidden = !isAdmin();
  }

  function initSignIn() {
    $('signin-form').addEventListener('submit', async (event) => {
      event.preventDefault();
      const token = $('signin-token').value.trim();
      const error = $('signin-error');
      if (!token) {
        error.textContent = 'Paste an API token.';
        $('signin-token').focus();
        return;
      }
      const button = $('signin-submit');
      button.disabled = true;
      error.textContent = '';
      try {
        await signIn(token);
        showShell();
        await refreshTenants();
        if (!location.hash || location.hash === '#' || location.hash.startsWith('#/signin')) location.hash = '#/tenants';
        else route();
      } catch (e) {
        error.textContent = e instanceof ApiError
          ? (e.status === 401 ? 'This token is not accepted (unknown or revoked).' : `${e.title}${e.detail ? ': ' + e.detail : ''}`)
          : String(e);
        $('signin-token').focus();
      } finally {
        button.disabled = false;
      }
    });
    $('signout').addEventListener('click', () => signOut('Signed out.'));
  }

  // ---------------------------------------------------------------- navigation pane

  async function refreshTenants() {
    try {
      const tenants = await api.get('/api/v1/tenants');
      state.tenants = Array.isArray(tenants) ? tenants : (tenants.items || []);
    } catch (error) {
      showError(error);
    }
    renderNavTenants();
    return state.tenants;
  }

  async function loadProfiles(force) {
    if (!state.profiles || force) {
      const profiles = await api.get('/api/v1/credential-profiles');
      state.profiles = Array.isArray(profiles) ? profiles : (profiles.items || []);
    }
    return state.profiles;
  }

  function tenantDotTone(tenant) {
    if (tenant.quarantined_at || tenant.blocked) return 'red';
    const sync = tenant.last_sync && tenant.last_sync.status;
    const worst = [statusTone(sync), statusTone(tenant.permission_status)];
    if (worst.includes('red')) return 'red';
    if (worst.includes('amber')) return 'amber';
    if (sync === 'running') return 'blue';
    if (sync === 'success') return 'green';
    return 'grey';
  }

  function renderNavTenants() {
    const list = clear($('nav-tenant-list'));
    const filter = $('nav-tenant-filter').value.trim().toLowerCase();
    const shown = state.tenants.filter((t) => !filter || t.name.toLowerCase().includes(filter));
    for (const tenant of shown) {
      list.appendChild(el('li', null,
        el('a', { href: `#/tenants/${tenant.id}/config`, id: `nav-tenant-${tenant.id}`, 'data-tenant': tenant.id },
          el('span', { class: `dot dot-${tenantDotTone(tenant)}`, 'aria-hidden': 'true' }),
          el('span', { class: 'name' }, tenant.name))));
    }
    if (!shown.length) list.appendChild(el('li', { class: 'nav-empty' }, state.tenants.length ? 'No tenant matches.' : 'No tenants yet.'));
    markNav();
  }

  function markNav() {
    const hash = location.hash || '#/tenants';
    for (const link of document.querySelectorAll('.nav a')) {
      const target = link.getAttribute('href');
      const current = link.dataset.tenant
        ? hash.startsWith(`#/tenants/${link.dataset.tenant}/`) || hash === `#/tenants/${link.dataset.tenant}`
        : (target === '#/tenants' ? hash === '#/tenants' : hash.startsWith(target));
      if (current) link.setAttribute('aria-current', 'page');
      else link.removeAttribute('aria-current');
    }
  }

  function initNav() {
    $('nav-tenant-filter').addEventListener('input', renderNavTenants);
    const toggle = $('nav-toggle');
    toggle.addEventListener('click', () => {
      const open = !$('nav').classList.contains('open');
      $('nav').classList.toggle('open', open);
      toggle.setAttribute('aria-expanded', String(open));
    });
    $('nav').addEventListener('click', (event) => {
      if (event.target.closest('a')) {
        $('nav').classList.remove('open');
        toggle.setAttribute('aria-expanded', 'false');
      }
    });
  }

  // ---------------------------------------------------------------- router

  function parseHash() {
    const raw = (location.hash || '').replace(/^#/, '') || '/tenants';
    const [path, search] = raw.split('?');
    return { parts: path.split('/').filter(Boolean).map(decodeURIComponent), params: new URLSearchParams(search || '') };
  }

  function main() { return $('main'); }

  async function route() {
    if (!state.session) return;
    state.view += 1;
    const view = state.view;
    const { parts, params } = parseHash();
    markNav();
    closeDialog();
    const root = clear(main());
    root.appendChild(loading());
    const [section, id, tab, ...rest] = parts;
    consentOutcome(params);
    try {
      if (section === 'tenants' && id) {
        const tenantTab = tab || 'config';
        await renderTenant(root, view, Number(id), tenantTab, rest, params);
      } else if (section === 'tenants' || !section) {
        await renderTenantList(root, view);
      } else if (section === 'history') {
        await renderHistoryPage(root, view, null);
      } else if (section === 'credential-profiles') {
        await renderProfiles(root, view);
      } else if (section === 'audit') {
        await renderAudit(root, view);
      } else if (section === 'tokens') {
        await renderTokens(root, view);
      } else if (section === 'directory') {
        await renderDirectoryPicker(root, view);
      } else {
        clear(root).appendChild(el('div', { class: 'empty-state' }, el('h2', null, 'Page not found'), el('a', { href: '#/tenants' }, 'Go to the tenants')));
      }
    } catch (error) {
      if (view !== state.view) return;
      clear(root).appendChild(el('div', { class: 'empty-state', id: 'page-error' },
        el('h2', null, error.title || 'Could not load this page'), el('p', null, error.detail || String(error.message || error))));
      showError(error);
    }
  }

  function pageHead(title, sub, actions, crumbs) {
    return el('div', { class: 'page-head' },
      el('div', { class: 'titles' },
        crumbs ? el('div', { class: 'crumbs' }, crumbs) : null,
        el('h1', { id: 'page-title' }, title),
        sub ? el('div', { class: 'sub' }, sub) : null),
      actions ? el('div', { class: 'btn-row' }, actions) : null);
  }

  // ---------------------------------------------------------------- tenant list

  function lastSyncCell(tenant) {
    const sync = tenant.last_sync;
    if (!sync || !sync.status) return el('td', { 'data-label': 'Last sync status' }, el('span', { class: 'muted' }, 'Never synced'));
    const classes = sync.classes || {};
    return el('td', { class: 'nowrap', 'data-label': 'Last sync status' },
      pill(sync.status),
      el('span', { class: 'class-pills' }, CLASSES.map((cls) => {
        const run = classes[cls];
        const status = run ? run.status : 'none';
        return el('span', {
          class: `class-pill pill-${statusTone(status)}`,
          title: `${CLASS_LABEL[cls]}: ${run ? `${status}, started ${fmtTime(run.started_at)}` : 'never synced'}`,
          'aria-label': `${CLASS_LABEL[cls]}: ${status}`,
        }, cls[0].toUpperCase());
      })));
  }

  async function renderTenantList(root, view) {
    await refreshTenants();
    if (view !== state.view) return;
    clear(root);
    root.appendChild(pageHead('Tenants', `${state.tenants.length} Entra ID ${state.tenants.length === 1 ? 'directory' : 'directories'} kept in sync`, [
      el('button', { type: 'button', class: 'btn', id: 'tenants-refresh', onclick: route }, 'Refresh'),
      writeButton({ id: 'add-by-consent', onclick: openConsentDialog }, 'Add by consent'),
      writeButton({ id: 'add-tenant', class: 'btn btn-primary', onclick: openAddTenantDialog }, 'Add tenant'),
    ]));
    const body = el('tbody');
    for (const tenant of state.tenants) {
      body.appendChild(el('tr', { id: `tenant-row-${tenant.id}` },
        el('td', { class: 'primary' },
          el('span', null, el('a', { href: `#/tenants/${tenant.id}/config`, class: 'tenant-link' }, tenant.name),
            el('span', { class: 'cell-sub mono' }, tenant.entra_tenant_id))),
        el('td', { 'data-label': 'Enabled' }, tenant.enabled
          ? el('span', { class: 'icon-yes', role: 'img', 'aria-label': 'Enabled', title: 'Enabled' }, '✓')
          : el('span', { class: 'icon-no', role: 'img', 'aria-label': 'Disabled', title: 'Disabled' }, '—'),
        tenant.blocked ? el('span', { class: 'pill pill-red' }, 'Blocked') : null,
        tenant.quarantined_at ? el('span', { class: 'pill pill-red', title: tenant.quarantine_reason || '' }, 'Quarantined') : null),
        el('td', { 'data-label': 'Credential profile' }, tenant.credential_profile_name || el('span', { class: 'muted' }, 'None')),
        el('td', { class: 'hide-narrow' }, cloudLabel(tenant.cloud)),
        labelled(timeCell(tenant.last_sync && tenant.last_sync.started_at), 'Last sync start'),
        lastSyncCell(tenant),
        el('td', { 'data-label': 'Permissions' }, permissionPill(tenant.permission_status))));
    }
    if (!state.tenants.length) {
      body.appendChild(el('tr', null, el('td', { colspan: 7, class: 'empty' },
        'No tenants yet. Add one with its domain or GUID, or let an administrator of the directory consent.')));
    }
    root.appendChild(el('div', { class: 'table-wrap' },
      el('table', { id: 'tenant-table', class: 'table-cards' },
        el('thead', null, el('tr', null,
          el('th', null, 'Name'), el('th', null, 'Enabled'), el('th', null, 'Credential profile'),
          el('th', { class: 'hide-narrow' }, 'Cloud'), el('th', null, 'Last sync start'), el('th', null, 'Last sync status'),
          el('th', null, 'Permission status'))),
        body)));
  }

  // ---------------------------------------------------------------- add tenant / test connection

  // The cloud select and, for Custom, its two URLs; `beside` (a field) goes next to the select.
  function cloudFields(prefix, form, beside) {
    const cloud = select({ id: `${prefix}-cloud` }, CLOUDS, 'global');
    const custom = el('div', { id: `${prefix}-custom`, class: 'span-2 form-grid', hidden: true },
      field(`${prefix}-login-url`, 'Login URL', el('input', { type: 'url', id: `${prefix}-login-url`, placeholder: 'https://login.example.com', autocomplete: 'off' })),
      field(`${prefix}-graph-url`, 'Graph URL', el('input', { type: 'url', id: `${prefix}-graph-url`, placeholder: 'https://graph.example.com', autocomplete: 'off' })));
    cloud.addEventListener('change', () => { custom.hidden = cloud.value !== 'custom'; });
    form.appendChild(field(`${prefix}-cloud`, 'Azure cloud', cloud));
    if (beside) form.appendChild(beside);
    form.appendChild(custom);
  }

  function cloudValue(prefix) {
    const cloud = $(`${prefix}-cloud`).value;
    if (cloud !== 'custom') return { cloud };
    return { cloud, login_url: $(`${prefix}-login-url`).value.trim(), graph_url: $(`${prefix}-graph-url`).value.trim() };
  }

  function profileOptions(profiles) {
    return [['', profiles.length ? 'Choose a credential profile' : 'No credential profiles yet']]
      .concat(profiles.map((p) => [String(p.id), `${p.name} (${p.kind})`]));
  }

  // The outcome of a test connection as a list: the token, then one line per permission set.
  function testResultList(result, id) {
    const items = [];
    if (result.display_name || result.entra_tenant_id) {
      items.push(el('li', null,
        el('div', { class: 'head' }, el('span', { class: 'label' }, 'Directory'), pill('ok', 'found')),
        el('div', { class: 'detail' }, [result.display_name, result.entra_tenant_id].filter(Boolean).join(' · '))));
    }
    if (result.token) {
      items.push(el('li', null,
        el('div', { class: 'head' }, el('span', { class: 'label' }, 'Access token'),
          pill(result.token.ok ? 'ok' : 'error', result.token.ok ? 'acquired' : 'failed')),
        result.token.error ? el('div', { class: 'detail' }, result.token.error) : null,
        result.token.roles && result.token.roles.length
          ? el('div', { class: 'detail' }, `Roles: ${result.token.roles.join(', ')}`) : null));
    }
    for (const [key, label] of [['users', 'Users'], ['groups', 'Groups with membership'], ['devices', 'Devices']]) {
      const set = result[key];
      if (!set) continue;
      items.push(el('li', { 'data-set': key },
        el('div', { class: 'head' }, el('span', { class: 'label' }, label), permissionPill(set.status)),
        set.missing && set.missing.length
          ? el('div', { class: 'missing' }, 'Missing: ', set.missing.map((m) => el('code', null, m))) : null,
        set.next_step ? el('div', { class: 'detail' }, set.next_step) : null,
        set.detail ? el('div', { class: 'detail' }, set.detail) : null));
    }
    return el('ul', { class: 'result-list', id }, items);
  }

  function summarizeTest(result) {
    const sets = ['users', 'groups', 'devices'].map((k) => result[k]).filter(Boolean);
    const statuses = sets.map((s) => s.status);
    let kind = 'success';
    let title = 'Connection works: every permission is granted';
    if (result.token && !result.token.ok) {
      kind = 'error';
      title = 'Could not get a token';
    } else if (statuses.some((s) => s === 'error' || s === 'needs_additional_permissions')) {
      kind = 'error';
      title = 'Connection test: permissions are missing';
    } else if (statuses.some((s) => s !== 'granted')) {
      kind = 'warning';
      title = 'Connection test: granted, settings needed';
    }
    const lines = [['users', 'Users'], ['groups', 'Groups'], ['devices', 'Devices']]
      .filter(([k]) => result[k])
      .map(([k, label]) => `${label}: ${PERMISSION_LABEL[result[k].status] || result[k].status}`
        + (result[k].missing && result[k].missing.length ? ` (missing ${result[k].missing.join(', ')})` : ''));
    if (result.token && result.token.error) lines.unshift(result.token.error);
    return { kind, title, lines };
  }

  async function openAddTenantDialog() {
    let profiles;
    try { profiles = await loadProfiles(true); } catch (error) { showError(error); return; }
    const fields = {
      name: 'tenant-form-name', tenant: 'tenant-form-tenant', cloud: 'tenant-form-cloud',
      login_url: 'tenant-form-login-url', graph_url: 'tenant-form-graph-url',
      credential_profile_id: 'tenant-form-profile', enabled: 'tenant-form-enabled', full_scan_next_run: 'tenant-form-full-scan',
    };
    openDialog('tenant-dialog', 'Add tenant', (form) => {
      const body = el('div', { class: 'dialog-body' });
      const grid = el('div', { class: 'form-grid' });
      grid.appendChild(field('tenant-form-tenant', 'Tenant',
        el('input', { type: 'text', id: 'tenant-form-tenant', placeholder: 'contoso.onmicrosoft.com or GUID', autocomplete: 'off', spellcheck: 'false', required: true }),
        'The directory’s GUID or one of its domains.'));
      grid.appendChild(field('tenant-form-name', 'Name',
        el('input', { type: 'text', id: 'tenant-form-name', maxlength: 200, autocomplete: 'off' }),
        'Optional: the directory’s display name by default.'));
      cloudFields('tenant-form', grid, field('tenant-form-profile', 'Credential profile',
        select({ id: 'tenant-form-profile', required: true }, profileOptions(profiles), profiles.length === 1 ? profiles[0].id : ''),
        profiles.length ? null : 'Add a credential profile first (Credential profiles page).'));
      body.appendChild(grid);
      body.appendChild(el('div', { class: 'check-row' },
        checkbox('tenant-form-enabled', 'Enabled', true),
        checkbox('tenant-form-full-scan', 'Perform a full scan on next run', true)));
      body.appendChild(el('div', { id: 'test-connection-output' }));
      form.appendChild(body);
      form.appendChild(el('div', { class: 'dialog-foot' },
        el('button', { type: 'button', class: 'btn left', id: 'test-connection' }, 'Test Connection'),
        el('button', { type: 'button', class: 'btn', id: 'tenant-form-cancel', onclick: closeDialog }, 'Cancel'),
        el('button', { type: 'submit', class: 'btn btn-primary', id: 'tenant-form-submit' }, 'Add')));

      function payload() {
        const profile = $('tenant-form-profile').value;
        return Object.assign({
          tenant: $('tenant-form-tenant').value.trim(),
        }, cloudValue('tenant-form'), { credential_profile_id: profile ? Number(profile) : null });
      }

      $('test-connection').addEventListener('click', (event) => {
        clearFieldErrors(form);
        const output = clear($('test-connection-output'));
        busy(event.currentTarget, async () => {
          const result = await api.post('/api/v1/test-connection', payload());
          const summary = summarizeTest(result);
          output.appendChild(el('h3', null, 'Test result'));
          output.appendChild(testResultList(result, 'test-connection-result'));
          output.scrollIntoView({ block: 'nearest' });
          notify(summary.kind, summary.title, null, summary.lines);
          const name = $('tenant-form-name');
          if (result.display_name && !name.value) name.placeholder = result.display_name;
        }, fields, form);
      });

      form.addEventListener('submit', (event) => {
        event.preventDefault();
        clearFieldErrors(form);
        const body = payload();
        const name = $('tenant-form-name').value.trim();
        if (name) body.name = name;
        body.enabled = $('tenant-form-enabled').checked;
        body.full_scan_next_run = $('tenant-form-full-scan').checked;
        if (!body.tenant) {
          showError(new ApiError(422, { title: 'Tenant is required', detail: 'Enter the directory’s GUID or domain.', field: 'tenant' }), fields, form);
          return;
        }
        busy($('tenant-form-submit'), async () => {
          const tenant = await api.post('/api/v1/tenants', body);
          closeDialog();
          notify('success', `Tenant “${tenant.name}” added`, tenant.entra_tenant_id);
          await refreshTenants();
          location.hash = `#/tenants/${tenant.id}/config`;
        }, fields, form);
      });
    }, true);
  }

  async function openConsentDialog() {
    let profiles;
    try { profiles = await loadProfiles(true); } catch (error) { showError(error); return; }
    const fields = { credential_profile_id: 'consent-profile', cloud: 'consent-cloud', login_url: 'consent-login-url', graph_url: 'consent-graph-url' };
    openDialog('consent-dialog', 'Add a tenant by consent', (form) => {
      const body = el('div', { class: 'dialog-body' });
      body.appendChild(el('p', { class: 'muted' },
        'An administrator of the directory signs in at Microsoft and grants the app its permissions. ',
        'entrasync then registers the directory the consent names, with the name Entra reports.'));
      body.appendChild(field('consent-profile', 'Credential profile (the app to consent to)',
        select({ id: 'consent-profile' }, profileOptions(profiles), profiles.length === 1 ? profiles[0].id : '')));
      cloudFields('consent', body);
      form.appendChild(body);
      form.appendChild(el('div', { class: 'dialog-foot' },
        el('button', { type: 'button', class: 'btn', id: 'consent-cancel', onclick: closeDialog }, 'Cancel'),
        el('button', { type: 'submit', class: 'btn btn-primary', id: 'consent-submit' }, 'Continue to consent')));
      form.addEventListener('submit', (event) => {
        event.preventDefault();
        clearFieldErrors(form);
        const profile = $('consent-profile').value;
        if (!profile) {
          showError(new ApiError(422, { title: 'Choose a credential profile', detail: 'The consent is for one app.', field: 'credential_profile_id' }), fields, form);
          return;
        }
        busy($('consent-submit'), async () => {
          const answer = await api.post(`/api/v1/credential-profiles/${profile}/consent`, cloudValue('consent'));
          location.assign(answer.url);
        }, fields, form);
      });
    });
  }

  // ---------------------------------------------------------------- tenant page

  async function renderTenant(root, view, id, tab, rest, params) {
    const tenant = await api.get(`/api/v1/tenants/${id}`);
    if (view !== state.view) return;
    // Keep the navigation pane's copy fresh.
    const index = state.tenants.findIndex((t) => t.id === tenant.id);
    if (index >= 0) state.tenants[index] = tenant; else state.tenants.push(tenant);
    renderNavTenants();
    clear(root);
    const sub = [
      el('span', { class: 'mono', id: 'tenant-entra-id' }, tenant.entra_tenant_id),
      el('span', null, cloudLabel(tenant.cloud)),
      tenant.enabled ? pill('success', 'Enabled') : pill('none', 'Disabled'),
      permissionPill(tenant.permission_status),
      tenant.blocked ? pill('failed', 'Blocked') : null,
      tenant.quarantined_at ? pill('failed', 'Quarantined') : null,
    ];
    root.appendChild(pageHead(tenant.name, sub, [
      el('button', { type: 'button', class: 'btn', id: 'tenant-refresh', onclick: route }, 'Refresh'),
    ], el('a', { href: '#/tenants' }, 'Tenants')));
    root.appendChild(el('nav', { class: 'tabs', 'aria-label': 'Tenant' },
      el('a', { href: `#/tenants/${id}/config`, id: 'tab-config', 'aria-current': tab === 'config' ? 'page' : undefined }, 'Tenant Configuration'),
      el('a', { href: `#/tenants/${id}/history`, id: 'tab-history', 'aria-current': tab === 'history' ? 'page' : undefined }, 'Sync History'),
      el('a', { href: `#/tenants/${id}/directory`, id: 'tab-directory', 'aria-current': tab === 'directory' || tab === 'objects' ? 'page' : undefined }, 'Directory'),
      el('a', { href: `#/tenants/${id}/mappings/${tab === 'mappings' && CLASSES.includes(rest[0]) ? rest[0] : 'user'}`, id: 'tab-mappings', 'aria-current': tab === 'mappings' ? 'page' : undefined }, 'Mappings'),
      el('a', { href: `#/tenants/${id}/tags`, id: 'tab-tags', 'aria-current': tab === 'tags' ? 'page' : undefined }, 'Tags')));
    const content = el('div', { id: `tenant-tab-${tab}` });
    root.appendChild(content);
    // In a narrow window the tab strip scrolls: keep the current tab in sight.
    const currentTab = root.querySelector('.tabs a[aria-current=page]');
    if (currentTab && currentTab.scrollIntoView) currentTab.scrollIntoView({ block: 'nearest', inline: 'nearest' });
    if (tab === 'history') await renderHistory(content, view, tenant);
    else if (tab === 'directory') await renderDirectory(content, view, tenant, params);
    else if (tab === 'objects') await renderObject(content, view, tenant, rest[0], rest.slice(1).join('/'));
    else if (tab === 'mappings') await renderMappings(content, view, tenant, rest[0]);
    else if (tab === 'tags') await renderTags(content, view, tenant);
    else await renderTenantConfig(content, view, tenant);
  }

  // The consent redirect comes back with the outcome in the hash's query (…?consent=granted or error=…).
  function consentOutcome(params) {
    const consent = params.get('consent');
    const error = params.get('consent_error') || params.get('error') || params.get('error_description');
    if (!consent && !error) return;
    if (error || consent === 'denied' || consent === 'error' || consent === 'refused') {
      notify('error', 'Consent was not completed', params.get('detail') || params.get('error_description') || error || consent);
    } else {
      notify('success', 'Consent recorded', 'entrasync checked the permissions again: see the Permissions panel.');
    }
    // Drop the outcome from the address so a reload does not repeat it.
    const clean = location.hash.split('?')[0];
    history.replaceState(null, '', clean);
  }

  async function renderTenantConfig(root, view, tenant) {
    let profiles = [];
    try { profiles = await loadProfiles(true); } catch (error) { showError(error); }
    let held = [];
    try {
      const answer = await api.get(`/api/v1/tenants/${tenant.id}/held-deletions`);
      held = Array.isArray(answer) ? answer : (answer.items || []);
    } catch (error) { showError(error); }
    if (view !== state.view) return;
    clear(root);
    const left = el('div', { class: 'stack' }, configPanel(tenant, profiles), syncPanel(tenant));
    const right = el('div', { class: 'stack' }, permissionsPanel(tenant), heldPanel(tenant, held));
    root.appendChild(el('div', { class: 'grid-2' }, left, right));
  }

  function configPanel(tenant, profiles) {
    const fields = { name: 'config-name', credential_profile_id: 'config-profile', enabled: 'config-enabled', full_scan_next_run: 'config-full-scan',
      change_events: 'config-change-events', change_events_first_round: 'config-first-round' };
    const form = el('form', { id: 'config-form', class: 'panel', novalidate: true });
    const admin = isAdmin();
    form.appendChild(el('div', { class: 'panel-head' }, el('h2', null, 'Tenant Configuration')));
    const grid = el('div', { class: 'form-grid' });
    grid.appendChild(field('config-name', 'Name', el('input', { type: 'text', id: 'config-name', value: tenant.name, maxlength: 200, readOnly: !admin, autocomplete: 'off' })));
    const profileList = profileOptions(profiles);
    if (tenant.credential_profile_id && !profiles.some((p) => p.id === tenant.credential_profile_id)) {
      profileList.push([String(tenant.credential_profile_id), tenant.credential_profile_name || `Profile ${tenant.credential_profile_id}`]);
    }
    grid.appendChild(field('config-profile', 'Credential profile',
      select({ id: 'config-profile', disabled: !admin }, profileList, tenant.credential_profile_id || '')));
    const tenantField = field('config-tenant', 'Tenant', el('input', { type: 'text', id: 'config-tenant', class: 'mono', value: tenant.entra_tenant_id, readOnly: true }),
      tenant.verified_domains && tenant.verified_domains.length ? `Verified domains: ${tenant.verified_domains.join(', ')}` : null);
    tenantField.classList.add('span-2');
    grid.appendChild(tenantField);
    const cloudText = tenant.cloud === 'custom' && tenant.login_url ? `${cloudLabel(tenant.cloud)}: ${tenant.login_url}` : cloudLabel(tenant.cloud);
    const cloudField = field('config-cloud', 'Azure cloud', el('input', { type: 'text', id: 'config-cloud', value: cloudText, readOnly: true, title: cloudText }));
    cloudField.classList.add('span-2');
    grid.appendChild(cloudField);
    grid.appendChild(el('p', { class: 'hint span-2' }, 'Tenant and cloud are fixed when a tenant is added; add a new tenant to change them.'));
    form.appendChild(grid);
    form.appendChild(checkbox('config-enabled', 'Enabled', tenant.enabled, !admin));
    form.appendChild(checkbox('config-full-scan', 'Perform a full scan on next run', tenant.full_scan_next_run, !admin));
    // Change events (docs/events.md): switching on sends one snapshot event per class as the consumers' baseline.
    form.appendChild(checkbox('config-change-events', 'Publish change events', tenant.change_events, !admin));
    const firstRound = field('config-first-round', 'First full round of an empty class',
      select({ id: 'config-first-round', disabled: !admin },
        [['snapshot', 'One snapshot event per class'], ['objects', 'An event per object and membership']],
        tenant.change_events_first_round || 'snapshot'),
      'Switching events on sends a snapshot event for every class that already holds objects.');
    firstRound.style.marginTop = '10px';
    form.appendChild(firstRound);
    const save = el('button', { type: 'submit', class: 'btn btn-primary', id: 'config-save', disabled: true }, 'Save');
    const test = writeButton({ id: 'config-test-connection' }, 'Test Connection');
    const remove = writeButton({ id: 'config-delete', class: 'btn btn-danger' }, 'Delete tenant');
    form.appendChild(el('div', { class: 'panel-actions' }, test, remove, el('span', { class: 'push' }), save));

    function changes() {
      const patch = {};
      const name = $('config-name').value.trim();
      if (name !== tenant.name) patch.name = name;
      const profile = $('config-profile').value ? Number($('config-profile').value) : null;
      if (profile !== (tenant.credential_profile_id || null)) patch.credential_profile_id = profile;
      if ($('config-enabled').checked !== tenant.enabled) patch.enabled = $('config-enabled').checked;
      if ($('config-full-scan').checked !== tenant.full_scan_next_run) patch.full_scan_next_run = $('config-full-scan').checked;
      if ($('config-change-events').checked !== tenant.change_events) patch.change_events = $('config-change-events').checked;
      if ($('config-first-round').value !== tenant.change_events_first_round) patch.change_events_first_round = $('config-first-round').value;
      return patch;
    }
    const update = () => { save.disabled = !admin || Object.keys(changes()).length === 0; };
    form.addEventListener('input', update);
    form.addEventListener('change', update);
    form.addEventListener('submit', (event) => {
      event.preventDefault();
      const patch = changes();
      if (!Object.keys(patch).length) return;
      clearFieldErrors(form);
      busy(save, async () => {
        const updated = await api.patch(`/api/v1/tenants/${tenant.id}`, patch);
        notify('success', 'Tenant saved', `${updated.name}: ${Object.keys(patch).join(', ').replace(/_/g, ' ')} changed.`);
        await refreshTenants();
        route();
      }, fields, form);
    });
    test.addEventListener('click', () => busy(test, async () => {
      const result = await api.post(`/api/v1/tenants/${tenant.id}/test-connection`);
      state.testResults[tenant.id] = result;
      const summary = summarizeTest(result);
      notify(summary.kind, summary.title, null, summary.lines);
      route();
    }));
    remove.addEventListener('click', () => openDeleteDialog(tenant));
    return form;
  }

  function openDeleteDialog(tenant) {
    openDialog('delete-dialog', `Delete tenant “${tenant.name}”?`, (form) => {
      form.appendChild(el('div', { class: 'dialog-body' },
        el('p', null, 'This deletes the tenant ', el('strong', null, tenant.name),
          ' and everything stored for it: objects, memberships, cursors, history and held deletions. Its queued jobs are dropped. The directory in Entra ID is not touched.'),
        field('delete-confirm-name', `Type the tenant’s name (${tenant.name}) to confirm`,
          el('input', { type: 'text', id: 'delete-confirm-name', autocomplete: 'off', spellcheck: 'false' }))));
      const confirm = el('button', { type: 'submit', class: 'btn btn-danger-solid', id: 'delete-confirm', disabled: true }, 'Delete tenant');
      form.appendChild(el('div', { class: 'dialog-foot' },
        el('button', { type: 'button', class: 'btn', id: 'delete-cancel', onclick: closeDialog }, 'Cancel'), confirm));
      $('delete-confirm-name').addEventListener('input', (event) => { confirm.disabled = event.target.value !== tenant.name; });
      form.addEventListener('submit', (event) => {
        event.preventDefault();
        const typed = $('delete-confirm-name').value;
        if (typed !== tenant.name) return;
        busy(confirm, async () => {
          await api.del(`/api/v1/tenants/${tenant.id}${query({ confirm: typed })}`);
          closeDialog();
          notify('success', `Tenant “${tenant.name}” deleted`);
          state.tenants = state.tenants.filter((t) => t.id !== tenant.id);
          location.hash = '#/tenants';
        }, { confirm: 'delete-confirm-name' }, form);
      });
    });
  }

  function permissionsPanel(tenant) {
    const panel = el('section', { class: 'panel', id: 'permissions-panel', 'aria-labelledby': 'permissions-title' });
    panel.appendChild(el('div', { class: 'panel-head' }, el('h2', { id: 'permissions-title' }, 'Permissions'), permissionPill(tenant.permission_status)));
    const result = state.testResults[tenant.id];
    panel.appendChild(el('dl', { class: 'props' },
      el('dt', null, 'Status'), el('dd', { id: 'permission-status' }, PERMISSION_LABEL[tenant.permission_status] || tenant.permission_status || 'Not checked'),
      el('dt', null, 'Checked'), el('dd', null, fmtTime(tenant.permissions_checked_at)),
      tenant.consent_state ? [el('dt', null, 'Admin consent'), el('dd', { id: 'consent-state' },
        tenant.consent_state === 'granted' ? pill('granted', 'granted') : pill('error', tenant.consent_state),
        ' ', fmtTime(tenant.consented_at),
        tenant.consent_error ? el('div', { class: 'small muted' }, tenant.consent_error) : null)] : null,
      el('dt', null, 'Next step'), el('dd', { id: 'permission-next-step' }, PERMISSION_NEXT_STEP[tenant.permission_status] || PERMISSION_NEXT_STEP.unknown)));
    if (result) {
      panel.appendChild(el('h3', null, 'Last test'));
      panel.appendChild(testResultList(result, 'permission-test-result'));
    }
    if (tenant.blocked) {
      panel.appendChild(el('div', { class: 'callout callout-red', id: 'blocked-callout' }, 'Blocked: entrasync does not sync this tenant. Its data and credentials are kept. Reset to sync again.'));
    }
    if (tenant.quarantined_at) {
      panel.appendChild(el('div', { class: 'callout callout-red', id: 'quarantine-callout' },
        el('strong', null, `Quarantined since ${fmtTime(tenant.quarantined_at)}`),
        tenant.quarantine_reason ? el('div', null, tenant.quarantine_reason) : null));
    }
    const grant = writeButton({ id: 'grant-permissions', class: 'btn btn-primary' }, 'Grant permissions');
    grant.addEventListener('click', () => busy(grant, async () => {
      const answer = await api.post(`/api/v1/tenants/${tenant.id}/consent`);
      location.assign(answer.url);
    }));
    const check = writeButton({ id: 'check-permissions' }, 'Check now');
    check.title = isAdmin() ? 'Queue a permission check job' : check.title;
    check.addEventListener('click', () => busy(check, async () => {
      await api.post(`/api/v1/tenants/${tenant.id}/permissions/check`);
      notify('success', 'Permission check queued', 'The status updates when a worker has run it.');
    }));
    const block = writeButton({ id: 'block-tenant', class: 'btn btn-danger' }, 'Block');
    if (tenant.blocked) block.disabled = true;
    block.addEventListener('click', async () => {
      if (!(await confirmDialog(`Block “${tenant.name}”?`, 'entrasync stops syncing this tenant. Its stored data and credentials are kept; Reset resumes syncing.', 'Block', true))) return;
      busy(block, async () => {
        await api.post(`/api/v1/tenants/${tenant.id}/block`);
        notify('success', `Tenant “${tenant.name}” blocked`);
        await refreshTenants();
        route();
      });
    });
    const reset = writeButton({ id: 'reset-tenant' }, 'Reset');
    reset.title = isAdmin() ? 'Clear the block, the last error, the failures and the quarantine' : reset.title;
    reset.addEventListener('click', async () => {
      if (!(await confirmDialog(`Reset “${tenant.name}”?`, 'This clears the block, the last error, the failure count and the quarantine.', 'Reset', false))) return;
      busy(reset, async () => {
        await api.post(`/api/v1/tenants/${tenant.id}/reset`);
        notify('success', `Tenant “${tenant.name}” reset`);
        await refreshTenants();
        route();
      });
    });
    const actions = [grant, check, block, reset];
    if (tenant.quarantined_at) {
      const lift = writeButton({ id: 'lift-quarantine' }, 'Lift quarantine');
      lift.addEventListener('click', () => busy(lift, async () => {
        await api.del(`/api/v1/tenants/${tenant.id}/quarantine`);
        notify('success', 'Quarantine lifted');
        await refreshTenants();
        route();
      }));
      actions.push(lift);
    }
    panel.appendChild(el('div', { class: 'panel-actions', id: 'permission-actions' }, actions));
    return panel;
  }

  function syncPanel(tenant) {
    const panel = el('section', { class: 'panel', id: 'sync-panel', 'aria-labelledby': 'sync-title' });
    panel.appendChild(el('div', { class: 'panel-head' }, el('h2', { id: 'sync-title' }, 'Sync'),
      tenant.last_sync && tenant.last_sync.status ? pill(tenant.last_sync.status) : null));
    const classes = (tenant.last_sync && tenant.last_sync.classes) || {};
    const rows = CLASSES.map((cls) => {
      const run = classes[cls];
      return el('tr', null,
        el('td', null, CLASS_LABEL[cls]),
        timeCell(run && run.started_at),
        el('td', null, run ? pill(run.status) : el('span', { class: 'muted' }, 'Never')));
    });
    panel.appendChild(el('table', { id: 'sync-classes' },
      el('thead', null, el('tr', null, el('th', null, 'Class'), el('th', null, 'Last start'), el('th', null, 'Status'))),
      el('tbody', null, rows)));
    const cls = select({ id: 'sync-class' }, [['all', 'All classes']].concat(CLASSES.map((c) => [c, CLASS_LABEL[c]])), 'all');
    const mode = select({ id: 'sync-mode' }, [['delta', 'Delta'], ['full', 'Full']], 'delta');
    const run = writeButton({ id: 'sync-now', class: 'btn btn-primary' }, 'Sync now');
    run.addEventListener('click', () => busy(run, async () => {
      const body = { mode: mode.value };
      if (cls.value !== 'all') body.classes = [cls.value];
      const answer = await api.post(`/api/v1/tenants/${tenant.id}/sync`, body);
      const jobs = (answer && answer.jobs) || [];
      notify('success', `Sync queued: ${jobs.length} ${jobs.length === 1 ? 'job' : 'jobs'}`,
        jobs.map((j) => `${CLASS_LABEL[j.class] || j.class} (${j.mode})`).join(', '));
    }));
    panel.appendChild(el('div', { class: 'panel-actions toolbar' },
      el('label', { for: 'sync-class' }, 'Class'), cls,
      el('label', { for: 'sync-mode' }, 'Type'), mode, run));
    return panel;
  }

  function heldPanel(tenant, held) {
    const panel = el('section', { class: 'panel', id: 'held-panel', 'aria-labelledby': 'held-title' });
    panel.appendChild(el('div', { class: 'panel-head' }, el('h2', { id: 'held-title' }, 'Held deletions'),
      held.length ? pill('held', `${held.length} held`) : null));
    if (!held.length) {
      panel.appendChild(el('p', { class: 'muted', id: 'held-empty' }, 'No deletions are held. A run holds its deletions when they exceed the deletion guard.'));
      return panel;
    }
    panel.appendChild(el('p', { class: 'muted small' }, 'The deletion guard held these. Allow applies exactly the held deletions; Reject keeps the objects.'));
    const body = el('tbody');
    for (const item of held) {
      const allow = writeButton({ id: `held-allow-${item.run_id}`, class: 'btn btn-small btn-primary' }, 'Allow');
      const reject = writeButton({ id: `held-reject-${item.run_id}`, class: 'btn btn-small' }, 'Reject');
      allow.addEventListener('click', async () => {
        if (!(await confirmDialog('Allow the held deletions?', `${fmtNum(item.count)} ${CLASS_LABEL[item.class] || item.class} will be marked deleted in entrasync's copy.`, 'Allow deletions', true))) return;
        busy(allow, async () => {
          const answer = await api.post(`/api/v1/tenants/${tenant.id}/held-deletions/${item.run_id}/allow`);
          const deleted = answer ? (answer.deleted ?? answer.applied ?? answer.resolved) : undefined;
          notify('success', 'Held deletions applied', `${fmtNum(deleted)} objects deleted.`);
          route();
        });
      });
      reject.addEventListener('click', async () => {
        if (!(await confirmDialog('Reject the held deletions?', `The ${fmtNum(item.count)} objects stay in entrasync's copy.`, 'Reject', false))) return;
        busy(reject, async () => {
          const answer = await api.post(`/api/v1/tenants/${tenant.id}/held-deletions/${item.run_id}/reject`);
          const rejected = answer ? (answer.resolved ?? answer.rejected) : undefined;
          notify('success', 'Held deletions rejected', `${fmtNum(rejected)} held deletions resolved; the objects stay.`);
          route();
        });
      });
      body.appendChild(el('tr', { id: `held-row-${item.run_id}` },
        el('td', null, CLASS_LABEL[item.class] || item.class),
        el('td', { class: 'num' }, fmtNum(item.count)),
        timeCell(item.held_at),
        el('td', { class: 'nowrap' }, allow, ' ', reject)));
    }
    panel.appendChild(el('div', { class: 'table-wrap' }, el('table', { id: 'held-table' },
      el('thead', null, el('tr', null, el('th', null, 'Class'), el('th', { class: 'num' }, 'Deletions'), el('th', null, 'Held at'), el('th', null, ''))),
      body)));
    return panel;
  }

  // ---------------------------------------------------------------- sync history

  async function renderHistoryPage(root, view) {
    await refreshTenants();
    if (view !== state.view) return;
    clear(root);
    root.appendChild(pageHead('Sync history', 'Every run of every tenant, newest first'));
    const content = el('div');
    root.appendChild(content);
    await renderHistory(content, view, null);
  }

  // The history table with its filters, paging (a stack of cursors for Previous), CSV export and a 2 s
  // refresh while a run is running. `tenant` fixes the tenant filter (the tenant page's tab).
  async function renderHistory(root, view, tenant) {
    const filters = { q: '', class: '', status: '', mode: '', tenant_id: tenant ? tenant.id : '', limit: 50 };
    const cursors = []; // cursors of the pages before the current one ('' for the first)
    let cursor = '';
    let timer = null;
    let searchTimer = null;

    const search = el('input', { type: 'search', id: 'history-search', placeholder: 'Search tenant, status, error', autocomplete: 'off' });
    const cls = select({ id: 'history-class' }, [['', 'All classes']].concat(CLASSES.map((c) => [c, CLASS_LABEL[c]])), '');
    const status = select({ id: 'history-status' }, [['', 'All statuses']].concat(RUN_STATUSES.map((s) => [s, s])), '');
    const mode = select({ id: 'history-mode' }, [['', 'Full and delta'], ['full', 'Full'], ['delta', 'Delta']], '');
    const size = select({ id: 'history-page-size' }, PAGE_SIZES.map((n) => [n, String(n)]), 50);
    const tenantSelect = tenant ? null : select({ id: 'history-tenant' },
      [['', 'All tenants']].concat(state.tenants.map((t) => [t.id, t.name])), '');
    const exportButton = el('button', { type: 'button', class: 'btn', id: 'history-export' }, 'Export to CSV');
    const refresh = el('button', { type: 'button', class: 'btn', id: 'history-refresh' }, 'Refresh');
    const prev = el('button', { type: 'button', class: 'btn', id: 'history-prev', disabled: true }, '← Previous');
    const next = el('button', { type: 'button', class: 'btn', id: 'history-next', disabled: true }, 'Next →');
    const total = el('span', { id: 'history-total', class: 'muted', 'aria-live': 'polite' });
    const live = el('span', { id: 'history-live', class: 'muted small', hidden: true }, el('span', { class: 'spinner', 'aria-hidden': 'true' }), ' live');
    const body = el('tbody', { id: 'history-rows' });

    clear(root);
    root.appendChild(el('div', { class: 'toolbar', role: 'search' },
      el('label', { for: 'history-search', class: 'visually-hidden' }, 'Search the history'), search,
      tenantSelect ? [el('label', { for: 'history-tenant', class: 'visually-hidden' }, 'Tenant'), tenantSelect] : null,
      el('label', { for: 'history-class', class: 'visually-hidden' }, 'Class'), cls,
      el('label', { for: 'history-status', class: 'visually-hidden' }, 'Status'), status,
      el('label', { for: 'history-mode', class: 'visually-hidden' }, 'Type'), mode,
      el('span', { class: 'grow' }), live, refresh, exportButton));
    root.appendChild(el('div', { class: 'table-foot pager' },
      total, el('span', { class: 'grow' }),
      el('label', { for: 'history-page-size', class: 'muted' }, 'Rows per page'), size, prev, next));
    root.appendChild(el('div', { class: 'table-wrap' }, el('table', { id: 'history-table' },
      el('thead', null, el('tr', null,
        tenant ? null : el('th', null, 'Tenant'),
        el('th', null, 'Start'), el('th', { class: 'hide-narrow' }, 'End'), el('th', { class: 'hide-narrow' }, 'Type'), el('th', null, 'Class'),
        el('th', { class: 'num' }, 'Total'), el('th', { class: 'num' }, 'Changed'), el('th', { class: 'num' }, 'Deleted'),
        el('th', { class: 'num hide-narrow' }, 'Filtered'), el('th', null, 'Status'), el('th', null, 'Error'))),
      body)));

    function params(withPaging) {
      const p = { tenant_id: filters.tenant_id, class: filters.class, status: filters.status, mode: filters.mode, q: filters.q };
      if (withPaging) { p.limit = filters.limit; p.cursor = cursor; }
      return p;
    }

    async function load() {
      clearTimeout(timer);
      if (view !== state.view) return;
      let page;
      try {
        page = await api.get(`/api/v1/runs${query(params(true))}`);
      } catch (error) {
        if (view === state.view) showError(error);
        return;
      }
      if (view !== state.view) return;
      const items = page.items || [];
      clear(body);
      for (const run of items) {
        body.appendChild(el('tr', { 'data-run': run.id, 'data-status': run.status },
          tenant ? null : el('td', null, el('a', { href: `#/tenants/${run.tenant_id}/history` }, run.tenant_name || `#${run.tenant_id}`)),
          timeCell(run.started_at), Object.assign(timeCell(run.finished_at), { className: 'nowrap hide-narrow' }),
          el('td', { class: 'nowrap hide-narrow', title: run.trigger ? `trigger: ${run.trigger}` : undefined }, run.mode),
          el('td', null, CLASS_LABEL[run.class] || run.class),
          el('td', { class: 'num' }, fmtNum(run.total)), el('td', { class: 'num' }, fmtNum(run.changed)),
          el('td', { class: 'num' }, fmtNum(run.deleted)), el('td', { class: 'num hide-narrow' }, fmtNum(run.filtered)),
          el('td', null, run.status === 'running'
            ? el('span', { class: 'pill pill-blue' }, el('span', { class: 'spinner', 'aria-hidden': 'true' }), 'running')
            : pill(run.status)),
          el('td', { class: 'error-cell', title: run.error || run.reason || undefined }, run.error || run.reason || '')));
      }
      if (!items.length) {
        body.appendChild(el('tr', null, el('td', { colspan: tenant ? 10 : 11, class: 'empty' },
          filters.q || filters.class || filters.status || filters.mode ? 'No run matches these filters.' : 'No runs yet.')));
      }
      const first = cursors.length * filters.limit;
      total.textContent = page.total === undefined
        ? `${fmtNum(items.length)} runs`
        : (items.length
          ? `${fmtNum(first + 1)}–${fmtNum(first + items.length)} of ${page.total_exact === false ? 'at least ' : ''}${fmtNum(page.total)} runs`
          : `0 of ${fmtNum(page.total)} runs`);
      prev.disabled = cursors.length === 0;
      next.disabled = !page.next_cursor;
      next.dataset.cursor = page.next_cursor || '';
      const running = items.some((run) => run.status === 'running');
      live.hidden = !running;
      if (running) timer = setTimeout(load, 2000);
    }

    function restart() {
      cursors.length = 0;
      cursor = '';
      load();
    }

    search.addEventListener('input', () => {
      clearTimeout(searchTimer);
      searchTimer = setTimeout(() => { filters.q = search.value.trim(); restart(); }, 300);
    });
    search.addEventListener('keydown', (event) => {
      if (event.key === 'Enter') { clearTimeout(searchTimer); filters.q = search.value.trim(); restart(); }
    });
    cls.addEventListener('change', () => { filters.class = cls.value; restart(); });
    status.addEventListener('change', () => { filters.status = status.value; restart(); });
    mode.addEventListener('change', () => { filters.mode = mode.value; restart(); });
    size.addEventListener('change', () => { filters.limit = Number(size.value); restart(); });
    if (tenantSelect) tenantSelect.addEventListener('change', () => { filters.tenant_id = tenantSelect.value; restart(); });
    refresh.addEventListener('click', load);
    next.addEventListener('click', () => {
      if (!next.dataset.cursor) return;
      cursors.push(cursor);
      cursor = next.dataset.cursor;
      load();
    });
    prev.addEventListener('click', () => {
      if (!cursors.length) return;
      cursor = cursors.pop();
      load();
    });
    exportButton.addEventListener('click', () => busy(exportButton, async () => {
      const response = await request('GET', `/api/v1/runs.csv${query(params(false))}`, undefined, { raw: true });
      const blob = await response.blob();
      const url = URL.createObjectURL(blob);
      const link = el('a', { href: url, download: `entrasync-history-${today()}.csv`, id: 'history-export-link', hidden: true });
      document.body.appendChild(link);
      link.click();
      link.remove();
      setTimeout(() => URL.revokeObjectURL(url), 10000);
      notify('success', 'History exported', `entrasync-history-${today()}.csv`);
    }));

    await load();
  }

  // ---------------------------------------------------------------- credential profiles

  const PROFILE_FIELDS = {
    name: 'profile-form-name', client_id: 'profile-form-client-id', secret: 'profile-form-secret',
    certificate_pem: 'profile-form-certificate', private_key_pem: 'profile-form-key',
  };

  function materialFields(prefix, container) {
    const kindName = `${prefix}-kind`;
    const secretBox = el('div', { id: `${prefix}-secret-fields` },
      field(`${prefix}-secret`, 'Client secret', el('input', { type: 'password', id: `${prefix}-secret`, autocomplete: 'off', spellcheck: 'false' })));
    const certBox = el('div', { id: `${prefix}-certificate-fields`, hidden: true },
      field(`${prefix}-certificate`, 'Certificate (PEM)', el('textarea', { id: `${prefix}-certificate`, spellcheck: 'false', placeholder: '-----BEGIN CERTIFICATE-----' })),
      field(`${prefix}-key`, 'Private key (PEM)', el('textarea', { id: `${prefix}-key`, spellcheck: 'false', placeholder: '-----BEGIN PRIVATE KEY-----' })));
    const radios = el('fieldset', null, el('legend', null, 'Credential'),
      el('label', { class: 'check', for: `${prefix}-kind-secret` },
        el('input', { type: 'radio', name: kindName, id: `${prefix}-kind-secret`, value: 'secret', checked: true }), 'Client secret'),
      el('label', { class: 'check', for: `${prefix}-kind-certificate` },
        el('input', { type: 'radio', name: kindName, id: `${prefix}-kind-certificate`, value: 'certificate' }), 'Certificate and private key'),
      secretBox, certBox);
    radios.addEventListener('change', () => {
      const cert = $(`${prefix}-kind-certificate`).checked;
      certBox.hidden = !cert;
      secretBox.hidden = cert;
    });
    container.appendChild(radios);
  }

  function materialValue(prefix) {
    if ($(`${prefix}-kind-certificate`).checked) {
      return { certificate_pem: $(`${prefix}-certificate`).value, private_key_pem: $(`${prefix}-key`).value };
    }
    return { secret: $(`${prefix}-secret`).value };
  }

  async function renderProfiles(root, view) {
    const profiles = await loadProfiles(true);
    if (view !== state.view) return;
    clear(root);
    root.appendChild(pageHead('Credential profiles', 'The app registrations entrasync signs in with. Secrets and keys never leave the server.', [
      writeButton({ id: 'add-profile', class: 'btn btn-primary', onclick: openAddProfileDialog }, 'Add credential profile'),
    ]));
    const body = el('tbody');
    for (const profile of profiles) {
      const rename = writeButton({ id: `profile-rename-${profile.id}`, class: 'btn btn-small' }, 'Rename');
      const rotate = writeButton({ id: `profile-rotate-${profile.id}`, class: 'btn btn-small' }, profile.kind === 'certificate' ? 'Replace certificate' : 'Rotate secret');
      const remove = writeButton({ id: `profile-delete-${profile.id}`, class: 'btn btn-small btn-danger' }, 'Delete');
      if (profile.tenant_count > 0 && isAdmin()) remove.title = `Used by ${profile.tenant_count} tenant(s): deleting is refused while a tenant uses it`;
      rename.addEventListener('click', () => openRenameProfileDialog(profile));
      rotate.addEventListener('click', () => openRotateDialog(profile));
      remove.addEventListener('click', async () => {
        if (!(await confirmDialog(`Delete “${profile.name}”?`, 'The profile and its stored secret or key are deleted.', 'Delete', true))) return;
        busy(remove, async () => {
          await api.del(`/api/v1/credential-profiles/${profile.id}`);
          notify('success', `Credential profile “${profile.name}” deleted`);
          route();
        });
      });
      body.appendChild(el('tr', { id: `profile-row-${profile.id}` },
        el('td', null, el('strong', null, profile.name)),
        el('td', { class: 'mono' }, profile.client_id),
        el('td', null, profile.kind === 'certificate' ? 'Certificate' : 'Secret',
          profile.certificate_thumbprint ? el('span', { class: 'cell-sub mono', title: 'Thumbprint' }, profile.certificate_thumbprint) : null),
        el('td', { class: 'num' }, fmtNum(profile.tenant_count)),
        timeCell(profile.updated_at || profile.created_at),
        el('td', { class: 'nowrap' }, rename, ' ', rotate, ' ', remove)));
    }
    if (!profiles.length) {
      body.appendChild(el('tr', null, el('td', { colspan: 6, class: 'empty' }, 'No credential profiles yet. Add the app registration entrasync uses to read your directories.')));
    }
    root.appendChild(el('div', { class: 'table-wrap' }, el('table', { id: 'profile-table' },
      el('thead', null, el('tr', null, el('th', null, 'Name'), el('th', null, 'Client ID'), el('th', null, 'Kind'),
        el('th', { class: 'num' }, 'Tenants'), el('th', null, 'Updated'), el('th', null, ''))),
      body)));
  }

  function openAddProfileDialog() {
    openDialog('profile-dialog', 'Add credential profile', (form) => {
      const body = el('div', { class: 'dialog-body' });
      body.appendChild(field('profile-form-name', 'Name', el('input', { type: 'text', id: 'profile-form-name', maxlength: 200, autocomplete: 'off' })));
      body.appendChild(field('profile-form-client-id', 'Application (client) ID',
        el('input', { type: 'text', id: 'profile-form-client-id', autocomplete: 'off', spellcheck: 'false', placeholder: '00000000-0000-0000-0000-000000000000' })));
      materialFields('profile-form', body);
      form.appendChild(body);
      form.appendChild(el('div', { class: 'dialog-foot' },
        el('button', { type: 'button', class: 'btn', id: 'profile-form-cancel', onclick: closeDialog }, 'Cancel'),
        el('button', { type: 'submit', class: 'btn btn-primary', id: 'profile-form-submit' }, 'Add')));
      form.addEventListener('submit', (event) => {
        event.preventDefault();
        clearFieldErrors(form);
        const payload = Object.assign({ name: $('profile-form-name').value.trim(), client_id: $('profile-form-client-id').value.trim() }, materialValue('profile-form'));
        busy($('profile-form-submit'), async () => {
          const profile = await api.post('/api/v1/credential-profiles', payload);
          closeDialog();
          notify('success', `Credential profile “${profile.name}” added`);
          state.profiles = null;
          route();
        }, PROFILE_FIELDS, form);
      });
    });
  }

  function openRenameProfileDialog(profile) {
    openDialog('rename-dialog', `Rename “${profile.name}”`, (form) => {
      form.appendChild(el('div', { class: 'dialog-body' },
        field('rename-name', 'New name', el('input', { type: 'text', id: 'rename-name', value: profile.name, maxlength: 200, autocomplete: 'off' }))));
      form.appendChild(el('div', { class: 'dialog-foot' },
        el('button', { type: 'button', class: 'btn', id: 'rename-cancel', onclick: closeDialog }, 'Cancel'),
        el('button', { type: 'submit', class: 'btn btn-primary', id: 'rename-submit' }, 'Rename')));
      form.addEventListener('submit', (event) => {
        event.preventDefault();
        clearFieldErrors(form);
        busy($('rename-submit'), async () => {
          await api.patch(`/api/v1/credential-profiles/${profile.id}`, { name: $('rename-name').value.trim() });
          closeDialog();
          notify('success', 'Credential profile renamed');
          route();
        }, { name: 'rename-name' }, form);
      });
    });
  }

  function openRotateDialog(profile) {
    openDialog('rotate-dialog', `Replace the credential of “${profile.name}”`, (form) => {
      const body = el('div', { class: 'dialog-body' });
      body.appendChild(el('p', { class: 'muted' }, 'The new secret or certificate replaces the stored one for every tenant that uses this profile.'));
      materialFields('rotate', body);
      form.appendChild(body);
      if (profile.kind === 'certificate') {
        $('rotate-kind-certificate').checked = true;
        $('rotate-certificate-fields').hidden = false;
        $('rotate-secret-fields').hidden = true;
      }
      form.appendChild(el('div', { class: 'dialog-foot' },
        el('button', { type: 'button', class: 'btn', id: 'rotate-cancel', onclick: closeDialog }, 'Cancel'),
        el('button', { type: 'submit', class: 'btn btn-primary', id: 'rotate-submit' }, 'Replace')));
      form.addEventListener('submit', (event) => {
        event.preventDefault();
        clearFieldErrors(form);
        busy($('rotate-submit'), async () => {
          await api.put(`/api/v1/credential-profiles/${profile.id}/material`, materialValue('rotate'));
          closeDialog();
          notify('success', 'Credential replaced', `${profile.name} uses the new credential from its next token.`);
          route();
        }, { secret: 'rotate-secret', certificate_pem: 'rotate-certificate', private_key_pem: 'rotate-key' }, form);
      });
    });
  }

  // ---------------------------------------------------------------- API tokens

  async function renderTokens(root, view) {
    const tokens = await api.get('/api/v1/tokens');
    if (view !== state.view) return;
    clear(root);
    root.appendChild(pageHead('API tokens', 'Who may use the API and this console. A token is shown once, when it is created.', [
      writeButton({ id: 'add-token', class: 'btn btn-primary', onclick: openAddTokenDialog }, 'Create token'),
    ]));
    const body = el('tbody', { id: 'token-rows' });
    for (const token of tokens) {
      const revoke = writeButton({ id: `token-revoke-${token.id}`, class: 'btn btn-small btn-danger' }, 'Revoke');
      if (token.revoked_at) revoke.disabled = true;
      revoke.addEventListener('click', async () => {
        if (!(await confirmDialog(`Revoke “${token.name}”?`, 'Requests with this token are refused from now on.', 'Revoke', true))) return;
        busy(revoke, async () => {
          await api.del(`/api/v1/tokens/${token.id}`);
          notify('success', `Token “${token.name}” revoked`);
          route();
        });
      });
      body.appendChild(el('tr', { id: `token-row-${token.id}` },
        el('td', null, el('strong', null, token.name)),
        el('td', null, pill(token.role === 'admin' ? 'running' : 'none', token.role)),
        timeCell(token.created_at), timeCell(token.last_used_at),
        el('td', null, token.revoked_at ? pill('failed', `revoked ${fmtTime(token.revoked_at)}`) : pill('success', 'active')),
        el('td', { class: 'nowrap' }, revoke)));
    }
    if (!tokens.length) body.appendChild(el('tr', null, el('td', { colspan: 6, class: 'empty' }, 'No tokens yet besides the bootstrap token.')));
    root.appendChild(el('div', { class: 'table-wrap' }, el('table', { id: 'token-table' },
      el('thead', null, el('tr', null, el('th', null, 'Name'), el('th', null, 'Role'), el('th', null, 'Created'),
        el('th', null, 'Last used'), el('th', null, 'State'), el('th', null, ''))),
      body)));
  }

  function openAddTokenDialog() {
    openDialog('token-dialog', 'Create API token', (form) => {
      form.appendChild(el('div', { class: 'dialog-body' },
        field('token-form-name', 'Name', el('input', { type: 'text', id: 'token-form-name', maxlength: 200, autocomplete: 'off' }), 'Who or what uses it, e.g. “helpdesk” or “reporting job”.'),
        field('token-form-role', 'Role', select({ id: 'token-form-role' }, [['viewer', 'Viewer: reads everything'], ['admin', 'Admin: also changes things']], 'viewer')),
        el('div', { id: 'token-created-box', hidden: true },
          field('token-created', 'The new token (shown only now: copy it)', el('input', { type: 'text', id: 'token-created', class: 'mono', readOnly: true })))));
      const submit = el('button', { type: 'submit', class: 'btn btn-primary', id: 'token-form-submit' }, 'Create');
      form.appendChild(el('div', { class: 'dialog-foot' },
        el('button', { type: 'button', class: 'btn', id: 'token-form-cancel', onclick: closeDialog }, 'Close'), submit));
      form.addEventListener('submit', (event) => {
        event.preventDefault();
        clearFieldErrors(form);
        busy(submit, async () => {
          const created = await api.post('/api/v1/tokens', { name: $('token-form-name').value.trim(), role: $('token-form-role').value });
          $('token-created-box').hidden = false;
          $('token-created').value = created.token;
          $('token-created').select();
          $('token-form-name').readOnly = true;
          $('token-form-role').disabled = true;
          submit.hidden = true;
          notify('success', `Token “${created.name}” created`, 'Copy it now: entrasync keeps only its hash.');
          $('dialog').addEventListener('close', () => route(), { once: true });
        }, { name: 'token-form-name', role: 'token-form-role' }, form);
      });
    });
  }

  // ---------------------------------------------------------------- audit log

  async function renderAudit(root, view) {
    const cursors = [];
    let cursor = '';
    clear(root);
    root.appendChild(pageHead('Audit log', 'Every change made through the API: who, what, when, before and after. Secrets show as [redacted].'));
    const body = el('tbody', { id: 'audit-rows' });
    const prev = el('button', { type: 'button', class: 'btn', id: 'audit-prev', disabled: true }, '← Previous');
    const next = el('button', { type: 'button', class: 'btn', id: 'audit-next', disabled: true }, 'Next →');
    const type = select({ id: 'audit-target-type' }, [['', 'All targets'], ['tenant', 'Tenants'], ['credential_profile', 'Credential profiles'], ['token', 'Tokens'], ['held_deletion', 'Held deletions']], '');
    root.appendChild(el('div', { class: 'toolbar' }, el('label', { for: 'audit-target-type' }, 'Target'), type));
    root.appendChild(el('div', { class: 'table-wrap' }, el('table', { id: 'audit-table' },
      el('thead', null, el('tr', null, el('th', null, 'When'), el('th', null, 'Who'), el('th', null, 'Action'), el('th', null, 'Target'), el('th', null, 'Change'))),
      body)));
    root.appendChild(el('div', { class: 'table-foot' }, el('span', { class: 'grow' }), prev, next));

    function change(before, after) {
      if (before === null && after === null) return '';
      return el('details', { class: 'changes' }, el('summary', null, 'Before / after'),
        el('pre', { class: 'json' }, `before: ${JSON.stringify(before, null, 2)}\nafter:  ${JSON.stringify(after, null, 2)}`));
    }

    async function load() {
      const page = await api.get(`/api/v1/audit${query({ cursor, limit: 50, target_type: type.value })}`);
      if (view !== state.view) return;
      clear(body);
      for (const item of page.items || []) {
        body.appendChild(el('tr', null, timeCell(item.at), el('td', null, item.actor), el('td', null, el('code', null, item.action)),
          el('td', null, `${item.target_type || ''}${item.target_id !== undefined && item.target_id !== null ? ' ' + item.target_id : ''}`),
          el('td', null, change(item.before === undefined ? null : item.before, item.after === undefined ? null : item.after))));
      }
      if (!(page.items || []).length) body.appendChild(el('tr', null, el('td', { colspan: 5, class: 'empty' }, 'No changes recorded.')));
      prev.disabled = !cursors.length;
      next.disabled = !page.next_cursor;
      next.dataset.cursor = page.next_cursor || '';
    }
    const guarded = () => load().catch((error) => showError(error));
    type.addEventListener('change', () => { cursors.length = 0; cursor = ''; guarded(); });
    next.addEventListener('click', () => { cursors.push(cursor); cursor = next.dataset.cursor; guarded(); });
    prev.addEventListener('click', () => { cursor = cursors.pop() || ''; guarded(); });
    await load();
  }

  // ---------------------------------------------------------------- directory browser

  async function renderDirectoryPicker(root, view) {
    await refreshTenants();
    if (view !== state.view) return;
    clear(root);
    root.appendChild(pageHead('Directory', 'Browse the users, groups and devices entrasync keeps for a tenant'));
    if (!state.tenants.length) {
      root.appendChild(el('div', { class: 'empty-state' }, 'No tenants yet.'));
      return;
    }
    root.appendChild(el('div', { class: 'table-wrap' }, el('table', { id: 'directory-tenants' },
      el('thead', null, el('tr', null, el('th', null, 'Tenant'), el('th', null, ''))),
      el('tbody', null, state.tenants.map((t) => el('tr', null,
        el('td', null, t.name, el('span', { class: 'cell-sub mono' }, t.entra_tenant_id)),
        el('td', null, CLASSES.map((cls) => [el('a', { href: `#/tenants/${t.id}/directory?class=${cls}`, id: `directory-${t.id}-${cls}` }, CLASS_LABEL[cls]), ' ']))))))));
  }

  async function renderDirectory(root, view, tenant, params) {
    let cls = CLASSES.includes(params.get('class')) ? params.get('class') : 'user';
    let q = params.get('q') || '';
    let deleted = false;
    const cursors = [];
    let cursor = '';
    clear(root);
    const classTabs = el('div', { class: 'btn-row', role: 'group', 'aria-label': 'Object class' });
    const search = el('input', { type: 'search', id: 'directory-search', placeholder: 'Search name or principal', value: q, autocomplete: 'off' });
    const showDeleted = el('input', { type: 'checkbox', id: 'directory-deleted' });
    const body = el('tbody', { id: 'directory-rows' });
    const prev = el('button', { type: 'button', class: 'btn', id: 'directory-prev', disabled: true }, '← Previous');
    const next = el('button', { type: 'button', class: 'btn', id: 'directory-next', disabled: true }, 'Next →');
    root.appendChild(el('div', { class: 'toolbar' }, classTabs,
      el('label', { for: 'directory-search', class: 'visually-hidden' }, 'Search objects'), search,
      el('label', { class: 'check', for: 'directory-deleted' }, showDeleted, 'Deleted objects')));
    root.appendChild(el('div', { class: 'table-wrap' }, el('table', { id: 'directory-table' },
      el('thead', null, el('tr', null, el('th', null, 'Display name'), el('th', null, 'Principal'), el('th', { class: 'hide-narrow' }, 'Object ID'), el('th', null, 'Updated'), el('th', null, 'Deleted'))),
      body)));
    root.appendChild(el('div', { class: 'table-foot' }, el('span', { class: 'grow' }), prev, next));

    function drawTabs() {
      clear(classTabs);
      for (const c of CLASSES) {
        classTabs.appendChild(el('button', {
          type: 'button', id: `directory-class-${c}`, class: c === cls ? 'btn btn-primary' : 'btn', 'aria-pressed': String(c === cls),
          onclick: () => { cls = c; drawTabs(); restart(); },
        }, CLASS_LABEL[c]));
      }
    }

    async function load() {
      let page;
      try {
        page = await api.get(`/api/v1/tenants/${tenant.id}/objects${query({ class: cls, q, cursor, limit: 50, deleted: deleted ? 'true' : undefined })}`);
      } catch (error) { showError(error); return; }
      if (view !== state.view) return;
      clear(body);
      for (const item of page.items || []) {
        body.appendChild(el('tr', null,
          el('td', null, el('a', { href: `#/tenants/${tenant.id}/objects/${item.class || cls}/${encodeURIComponent(item.object_id)}` }, item.display_name || '(no name)')),
          el('td', null, item.principal || ''),
          el('td', { class: 'mono hide-narrow' }, item.object_id),
          timeCell(item.updated_at),
          el('td', null, item.deleted_at ? pill('failed', fmtTime(item.deleted_at)) : '')));
      }
      if (!(page.items || []).length) body.appendChild(el('tr', null, el('td', { colspan: 5, class: 'empty' }, q ? 'No object matches.' : 'No objects stored for this class yet.')));
      prev.disabled = !cursors.length;
      next.disabled = !page.next_cursor;
      next.dataset.cursor = page.next_cursor || '';
    }
    function restart() { cursors.length = 0; cursor = ''; load(); }
    let searchTimer = null;
    search.addEventListener('input', () => { clearTimeout(searchTimer); searchTimer = setTimeout(() => { q = search.value.trim(); restart(); }, 300); });
    showDeleted.addEventListener('change', () => { deleted = showDeleted.checked; restart(); });
    next.addEventListener('click', () => { cursors.push(cursor); cursor = next.dataset.cursor; load(); });
    prev.addEventListener('click', () => { cursor = cursors.pop() || ''; load(); });
    drawTabs();
    await load();
  }

  async function renderObject(root, view, tenant, cls, objectId) {
    const object = await api.get(`/api/v1/tenants/${tenant.id}/objects/${encodeURIComponent(cls)}/${encodeURIComponent(objectId)}`);
    if (view !== state.view) return;
    clear(root);
    const attrs = object.attrs || {};
    const title = attrs.displayName || object.object_id;
    root.appendChild(el('div', { class: 'crumbs' }, el('a', { href: `#/tenants/${tenant.id}/directory?class=${cls}` }, `${CLASS_LABEL[cls] || cls}`), ' / ', title));
    root.appendChild(el('h2', { id: 'object-title' }, title, ' ', object.deleted_at ? pill('failed', 'deleted') : null));
    const rows = Object.keys(attrs).sort().map((key) => el('tr', null,
      el('th', { scope: 'row' }, key),
      el('td', null, typeof attrs[key] === 'object' && attrs[key] !== null
        ? el('pre', { class: 'json' }, JSON.stringify(attrs[key], null, 2)) : String(attrs[key]))));
    const left = el('section', { class: 'panel' }, el('h2', null, 'Attributes'),
      el('dl', { class: 'props' }, el('dt', null, 'Object ID'), el('dd', { class: 'mono' }, object.object_id),
        object.deleted_at ? [el('dt', null, 'Deleted'), el('dd', null, `${fmtTime(object.deleted_at)} ${object.delete_reason || ''}`)] : null),
      el('div', { class: 'table-wrap' }, el('table', { id: 'object-attrs' }, el('tbody', null, rows))));
    const right = el('div', { class: 'stack' },
      membershipPanel(tenant, 'member-of', object.object_id),
      cls === 'group' ? membershipPanel(tenant, 'members', object.object_id) : null,
      cls === 'group' ? membershipCheck(tenant, object.object_id) : null,
      object.mapped ? el('section', { class: 'panel' }, el('h2', null, 'Mapped attributes'), el('pre', { class: 'json' }, JSON.stringify(object.mapped, null, 2))) : null);
    root.appendChild(el('div', { class: 'grid-2' }, left, right));
  }

  // A group's members or an object's groups (GET …/groups/{id}/members, …/objects/{id}/member-of), direct
  // or transitive (through nested groups), a page at a time.
  function membershipPanel(tenant, kind, objectId) {
    const members = kind === 'members';
    const prefix = members ? 'object-members' : 'object-member-of';
    const path = members ? `/api/v1/tenants/${tenant.id}/groups/${encodeURIComponent(objectId)}/members`
      : `/api/v1/tenants/${tenant.id}/objects/${encodeURIComponent(objectId)}/member-of`;
    let transitive = false;
    let cursor = '';
    const cursors = [];
    const title = el('h2', { id: `${prefix}-title` }, members ? 'Members' : 'Member of');
    const toggle = el('input', { type: 'checkbox', id: `${prefix}-transitive`, role: 'switch', 'aria-checked': 'false' });
    const body = el('tbody', { id: `${prefix}-rows` });
    const note = el('p', { class: 'muted', id: `${prefix}-note`, hidden: true });
    const prev = el('button', { type: 'button', class: 'btn', id: `${prefix}-prev`, disabled: true }, '← Previous');
    const next = el('button', { type: 'button', class: 'btn', id: `${prefix}-next`, disabled: true }, 'Next →');
    const total = el('span', { class: 'grow muted', id: `${prefix}-total` });
    const panel = el('section', { class: 'panel', id: prefix },
      el('div', { class: 'panel-head' }, title,
        el('label', { class: 'check switch', for: `${prefix}-transitive`, title: 'Include memberships through nested groups' }, toggle, 'Transitive')),
      note,
      el('div', { class: 'table-wrap' }, el('table', { class: 'membership-table' },
        el('thead', null, el('tr', null, el('th', null, members ? 'Member' : 'Group'), el('th', null, 'Class'), el('th', null, 'Membership'))),
        body)),
      el('div', { class: 'table-foot' }, total, prev, next));

    async function load() {
      let page;
      try {
        page = await api.get(`${path}${query({ transitive: transitive ? 'true' : 'false', limit: 50, cursor })}`);
      } catch (error) { showError(error); return; }
      clear(body);
      for (const row of page.items || []) {
        const name = row.display_name || row.object_id;
        const link = CLASSES.includes(row.class)
          ? el('a', { href: `#/tenants/${tenant.id}/objects/${row.class}/${encodeURIComponent(row.object_id)}` }, name) : name;
        body.appendChild(el('tr', null,
          el('td', null, link, el('span', { class: 'cell-sub mono hide-narrow' }, row.object_id)),
          el('td', null, CLASS_SINGULAR[row.class] || row.class),
          el('td', null, row.direct ? pill('success', 'direct') : pill('running', 'nested'))));
      }
      if (!(page.items || []).length) {
        body.appendChild(el('tr', null, el('td', { colspan: 3, class: 'empty' },
          members ? 'No members.' : 'No group memberships.')));
      }
      note.hidden = !page.deleted_at;
      note.textContent = page.deleted_at ? 'This object is deleted: it has no members and belongs to no group until it is restored (its stored memberships are kept).' : '';
      total.textContent = `${fmtNum(page.total)} ${transitive ? 'direct and nested' : 'direct'}`;
      title.textContent = `${members ? 'Members' : 'Member of'} (${fmtNum(page.total)})`;
      prev.disabled = !cursors.length;
      next.disabled = !page.next_cursor;
      next.dataset.cursor = page.next_cursor || '';
    }
    toggle.addEventListener('change', () => {
      transitive = toggle.checked;
      toggle.setAttribute('aria-checked', String(transitive));
      cursors.length = 0; cursor = ''; load();
    });
    next.addEventListener('click', () => { cursors.push(cursor); cursor = next.dataset.cursor; load(); });
    prev.addEventListener('click', () => { cursor = cursors.pop() || ''; load(); });
    load();
    return panel;
  }

  // "Is X a member of this group": GET …/groups/{id}/members/{object_id}, with the chain of nesting.
  function membershipCheck(tenant, groupId) {
    const input = el('input', { type: 'text', id: 'membership-check-id', placeholder: 'Object ID', autocomplete: 'off', spellcheck: 'false', class: 'mono' });
    const answer = el('div', { id: 'membership-check-answer', role: 'status' });
    const button = el('button', { type: 'submit', class: 'btn', id: 'membership-check-submit' }, 'Check');
    const form = el('form', { class: 'toolbar', id: 'membership-check' },
      el('label', { for: 'membership-check-id', class: 'visually-hidden' }, 'Object ID'), input, button);
    form.addEventListener('submit', async (event) => {
      event.preventDefault();
      clear(answer);
      const id = input.value.trim();
      if (!id) return;
      try {
        const m = await api.get(`/api/v1/tenants/${tenant.id}/groups/${encodeURIComponent(groupId)}/members/${encodeURIComponent(id)}`);
        answer.appendChild(el('p', null,
          m.direct ? pill('success', 'direct member') : m.transitive ? pill('running', 'member through nesting') : pill('failed', 'not a member')));
        if (m.path && m.path.length > 2) {
          answer.appendChild(el('p', { class: 'muted' }, 'Through: ', el('span', { class: 'mono' }, m.path.slice(1, -1).join(' → '))));
        }
      } catch (error) {
        answer.appendChild(el('p', { class: 'field-error' }, error.message || String(error)));
      }
    });
    return el('section', { class: 'panel' }, el('h2', null, 'Is it a member?'), form, answer);
  }

  // ---------------------------------------------------------------- attribute mappings and scoping

  const MAPPING_TYPES = [['direct', 'Direct'], ['constant', 'Constant'], ['expression', 'Expression'], ['none', 'None']];
  const MAPPING_TYPE_LABEL = Object.fromEntries(MAPPING_TYPES);
  const APPLY_WHEN = [['always', 'Always'], ['on_create', 'Only during object creation']];
  const APPLY_LABEL = { always: 'Always', on_create: 'Only during creation' };
  // The scoping operators with the labels of Entra's provisioning portal.
  const SCOPE_OPERATORS = [
    ['equals', 'EQUALS'], ['not_equals', 'NOT EQUALS'], ['includes', 'Includes'], ['ends_with', 'ENDS_WITH'],
    ['regex_match', 'REGEX MATCH'], ['not_regex_match', 'NOT REGEX MATCH'], ['is_null', 'IS NULL'],
    ['is_not_null', 'IS NOT NULL'], ['is_true', 'IS TRUE'], ['is_false', 'IS FALSE'],
    ['greater_than', 'Greater_Than'], ['greater_than_or_equals', 'Greater_Than_OR_EQUALS'],
    ['contains_in', '&'], ['not_contains_in', '!&'],
  ];
  const UNARY_OPERATORS = ['is_null', 'is_not_null', 'is_true', 'is_false'];
  const CLASS_SINGULAR = { user: 'user', group: 'group', device: 'device' };

  function clone(value) { return JSON.parse(JSON.stringify(value)); }

  // What the API stores for a mapping set: unary clauses carry no value, empty values are absent.
  function normalizedSet(set) {
    return {
      mappings: (set.mappings || []).map((m) => {
        const out = { target: m.target, source: m.source, apply: m.apply || 'always' };
        if (m.default_if_null !== undefined && m.default_if_null !== null && m.default_if_null !== '') out.default_if_null = m.default_if_null;
        return out;
      }),
      scoping: (set.scoping || []).map((g) => ({
        clauses: (g.clauses || []).map((c) => ({
          attribute: c.attribute,
          operator: c.operator,
          value: UNARY_OPERATORS.includes(c.operator) || c.value === undefined || c.value === null || c.value === '' ? null : c.value,
        })),
      })),
    };
  }

  // The line of `text` holding the 1-based character `position`, and a caret under it (a long line is
  // cut around the caret). Characters are code points, as the parser counts them.
  function caretLines(text, position) {
    const chars = Array.from(text);
    const index = Math.max(0, Math.min((position || 1) - 1, chars.length));
    let start = index;
    while (start > 0 && chars[start - 1] !== '\n') start -= 1;
    let end = index;
    while (end < chars.length && chars[end] !== '\n') end += 1;
    const from = Math.max(start, index - 60);
    const to = Math.min(end, index + 40);
    const prefix = from > start ? '…' : '';
    const suffix = to < end ? '…' : '';
    const line = prefix + chars.slice(from, to).join('') + suffix;
    const pad = (prefix ? ' ' : '') + chars.slice(from, index).map((c) => (c === '\t' ? '\t' : ' ')).join('');
    const lineNo = chars.slice(0, start).filter((c) => c === '\n').length + 1;
    return { line, caret: `${pad}^`, lineNo, column: index - start + 1 };
  }

  function caretView(text, position, id) {
    const at = caretLines(text, position);
    return el('pre', { class: 'caret-view', id },
      el('code', { class: 'caret-line' }, at.line), '\n',
      el('span', { class: 'caret-mark', 'aria-hidden': 'true' }, at.caret));
  }

  // The JSON result of an evaluation, with its type named.
  function resultType(value) {
    if (value === null || value === undefined) return 'null';
    if (Array.isArray(value)) return `array of ${value.length}`;
    return typeof value === 'object' ? 'object' : typeof value;
  }

  function mappingSourceText(m) {
    const source = m.source || {};
    switch (source.type) {
      case 'direct': return el('code', null, source.attribute);
      case 'constant': return el('code', null, JSON.stringify(source.value));
      case 'expression': return el('code', { class: 'expr-cell', title: source.expression }, source.expression);
      default: return el('span', { class: 'muted' }, '—');
    }
  }

  async function renderMappings(root, view, tenant, requested) {
    const cls = CLASSES.includes(requested) ? requested : 'user';
    const base = `/api/v1/tenants/${tenant.id}/mappings/${cls}`;
    let stored = await api.get(base);
    if (view !== state.view) return;
    let draft = normalizedSet(stored);
    let problems = []; // the last 422's problems: {field, message, position}
    const admin = isAdmin();

    clear(root);
    root.appendChild(el('div', { class: 'toolbar' },
      el('div', { class: 'btn-row', role: 'group', 'aria-label': 'Object class' },
        CLASSES.map((c) => el('a', {
          href: `#/tenants/${tenant.id}/mappings/${c}`, id: `mappings-class-${c}`,
          class: c === cls ? 'btn btn-primary' : 'btn', 'aria-current': c === cls ? 'page' : undefined,
        }, CLASS_LABEL[c]))),
      el('span', { class: 'grow' }),
      el('span', { id: 'mappings-version', class: 'muted small' },
        stored.version ? `Version ${stored.version}, saved ${fmtTime(stored.updated_at)}` : 'Nothing saved yet: objects are stored as Entra sends them')));
    const conflict = el('div', { id: 'mappings-conflict', role: 'alert' });
    const summary = el('div', { id: 'mappings-problems', role: 'alert' });
    const mappingPanel = el('section', { class: 'panel', id: 'mappings-panel', 'aria-labelledby': 'mappings-title' });
    const scopePanel = el('section', { class: 'panel', id: 'scoping-panel', 'aria-labelledby': 'scoping-title' });
    const dirty = el('span', { id: 'mappings-dirty', class: 'pill pill-amber', hidden: true }, 'Unsaved changes');
    const save = writeButton({ id: 'mappings-save', class: 'btn btn-primary', disabled: true }, 'Save');
    const discard = el('button', { type: 'button', class: 'btn', id: 'mappings-discard', disabled: true }, 'Discard changes');
    root.appendChild(conflict);
    root.appendChild(summary);
    root.appendChild(mappingPanel);
    root.appendChild(scopePanel);
    root.appendChild(el('div', { class: 'panel save-bar' },
      el('p', { class: 'hint', id: 'mappings-save-note' },
        `Saving replaces the ${CLASS_SINGULAR[cls]} mappings and scoping filter as a whole and queues a re-map job: entrasync applies them to the stored ${CLASS_LABEL[cls].toLowerCase()} from its own copy, without calling Graph. A changed scoping filter also asks for a full scan on the next run, so objects a narrower filter kept out come in.`),
      el('div', { class: 'btn-row' }, dirty, el('span', { class: 'grow' }), discard, save)));

    const problemsFor = (prefix) => problems.filter((p) => p.field === prefix || p.field.startsWith(`${prefix}.`) || p.field.startsWith(`${prefix}[`));

    function changed() {
      const isDirty = JSON.stringify(normalizedSet(draft)) !== JSON.stringify(normalizedSet(stored));
      dirty.hidden = !isDirty;
      save.disabled = !admin || !isDirty;
      discard.disabled = !isDirty;
    }

    // Where a problem's field path points, in the page's words.
    function problemPlace(path) {
      const mapping = /^mappings\[(\d+)\]/.exec(path);
      if (mapping) {
        const m = draft.mappings[Number(mapping[1])];
        return `Mapping ${Number(mapping[1]) + 1}${m && m.target ? ` (${m.target})` : ''}`;
      }
      const clause = /^scoping\[(\d+)\](?:\.clauses\[(\d+)\])?/.exec(path);
      if (clause) return `Scoping group ${Number(clause[1]) + 1}${clause[2] !== undefined ? `, clause ${Number(clause[2]) + 1}` : ''}`;
      return 'The set';
    }

    function drawSummary() {
      clear(summary);
      if (!problems.length) return;
      summary.appendChild(el('div', { class: 'callout callout-red' },
        el('strong', null, problems.length === 1 ? 'The set was not saved: 1 problem' : `The set was not saved: ${problems.length} problems`),
        el('ul', null, problems.map((p) => el('li', null, el('strong', null, problemPlace(p.field)), ' ', el('code', { class: 'muted' }, p.field), ': ', p.message,
          p.position ? ` (character ${p.position})` : '')))));
    }

    function drawMappings() {
      clear(mappingPanel);
      const add = writeButton({ id: 'mapping-add' }, 'Add mapping');
      add.addEventListener('click', () => openMappingDialog(null));
      mappingPanel.appendChild(el('div', { class: 'panel-head' },
        el('h2', { id: 'mappings-title' }, `Attribute mappings: ${CLASS_LABEL[cls]}`), add));
      mappingPanel.appendChild(el('p', { class: 'muted small' },
        'Each mapping writes one target attribute into the mapped attributes entrasync stores with the object. The default value applies when the object is first stored and the source gives null.'));
      const body = el('tbody', { id: 'mapping-rows' });
      draft.mappings.forEach((m, i) => {
        const rowProblems = problemsFor(`mappings[${i}]`);
        const edit = el('button', { type: 'button', class: 'btn btn-small', id: `mapping-edit-${i}`, 'aria-label': `${admin ? 'Edit' : 'View'} mapping ${m.target}` }, admin ? 'Edit' : 'View');
        edit.addEventListener('click', () => openMappingDialog(i));
        const remove = writeButton({ id: `mapping-remove-${i}`, class: 'btn btn-small btn-danger', 'aria-label': `Remove mapping ${m.target}` }, 'Remove');
        remove.addEventListener('click', () => {
          draft.mappings.splice(i, 1);
          problems = [];
          redraw();
          announce(`Mapping ${m.target} removed; save to apply.`);
          const next = $('mapping-add');
          if (next) next.focus();
        });
        body.appendChild(el('tr', { id: `mapping-row-${i}`, 'data-target': m.target, class: rowProblems.length ? 'row-invalid' : undefined,
          'aria-describedby': rowProblems.length ? `mapping-problems-${i}` : undefined },
        el('td', { class: 'primary', 'data-label': 'Target' }, el('code', null, m.target)),
        el('td', { 'data-label': 'Type' }, MAPPING_TYPE_LABEL[m.source.type] || m.source.type),
        el('td', { 'data-label': 'Source', class: 'source-cell' }, mappingSourceText(m)),
        el('td', { 'data-label': 'Default if null' }, m.default_if_null !== undefined && m.default_if_null !== null ? el('code', null, JSON.stringify(m.default_if_null)) : el('span', { class: 'muted' }, '—')),
        el('td', { 'data-label': 'Apply', class: 'nowrap' }, APPLY_LABEL[m.apply] || m.apply),
        el('td', { class: 'nowrap actions' }, edit, ' ', remove)));
        if (rowProblems.length) {
          body.appendChild(el('tr', { class: 'row-problems', id: `mapping-problems-${i}` }, el('td', { colspan: 6 },
            rowProblems.map((p) => el('div', { class: 'field-error' },
              el('code', null, p.field.slice(`mappings[${i}].`.length) || 'mapping'), ': ', p.message,
              p.position && m.source.type === 'expression' ? caretView(m.source.expression, p.position) : null)))));
        }
      });
      if (!draft.mappings.length) {
        body.appendChild(el('tr', null, el('td', { colspan: 6, class: 'empty' },
          `No attribute mappings for ${CLASS_LABEL[cls].toLowerCase()}: the stored objects carry no mapped attributes.`)));
      }
      mappingPanel.appendChild(el('div', { class: 'table-wrap' }, el('table', { id: 'mapping-table', class: 'table-cards' },
        el('thead', null, el('tr', null, el('th', null, 'Target attribute'), el('th', null, 'Type'), el('th', null, 'Source attribute, constant or expression'),
          el('th', null, 'Default if null'), el('th', null, 'Apply'), el('th', null, el('span', { class: 'visually-hidden' }, 'Actions')))),
        body)));
    }

    function clauseRow(g, c) {
      const clause = draft.scoping[g].clauses[c];
      const path = `scoping[${g}].clauses[${c}]`;
      const id = `scope-${g}-${c}`;
      const where = `Group ${g + 1}, clause ${c + 1}`;
      const errorOf = (name) => problems.filter((p) => p.field === `${path}.${name}`).map((p) => p.message).join(' ');
      const input = (name, control) => {
        const message = errorOf(name);
        if (message) {
          control.setAttribute('aria-invalid', 'true');
          control.setAttribute('aria-describedby', `${id}-${name}-error`);
        }
        return [control, el('p', { class: 'field-error', id: `${id}-${name}-error`, role: 'alert' }, message)];
      };
      const attribute = el('input', { type: 'text', id: `${id}-attribute`, value: clause.attribute, placeholder: 'e.g. department', autocomplete: 'off', spellcheck: 'false', readOnly: !admin, 'aria-label': `${where}: attribute` });
      const operator = select({ id: `${id}-operator`, disabled: !admin, 'aria-label': `${where}: operator` }, SCOPE_OPERATORS, clause.operator);
      const value = el('input', { type: 'text', id: `${id}-value`, value: clause.value === null || clause.value === undefined ? '' : clause.value, autocomplete: 'off', spellcheck: 'false', readOnly: !admin, 'aria-label': `${where}: value`, hidden: UNARY_OPERATORS.includes(clause.operator) });
      const forget = (name, control) => {
        problems = problems.filter((p) => p.field !== `${path}.${name}`);
        control.removeAttribute('aria-invalid');
        const message = $(`${id}-${name}-error`);
        if (message) message.textContent = '';
      };
      attribute.addEventListener('input', () => { clause.attribute = attribute.value.trim(); forget('attribute', attribute); changed(); });
      value.addEventListener('input', () => { clause.value = value.value; forget('value', value); changed(); });
      operator.addEventListener('change', () => {
        clause.operator = operator.value;
        const unary = UNARY_OPERATORS.includes(clause.operator);
        value.hidden = unary;
        valueNone.hidden = !unary;
        forget('operator', operator);
        forget('value', value);
        changed();
      });
      const valueNone = el('span', { class: 'muted small', hidden: !UNARY_OPERATORS.includes(clause.operator) }, 'no value');
      const remove = writeButton({ id: `${id}-remove`, class: 'btn btn-small btn-ghost', 'aria-label': `Remove ${where.toLowerCase()}`, title: 'Remove this clause' }, '×');
      remove.addEventListener('click', () => {
        draft.scoping[g].clauses.splice(c, 1);
        if (!draft.scoping[g].clauses.length) draft.scoping.splice(g, 1);
        problems = [];
        redraw();
        announce('Clause removed; save to apply.');
        const focus = $(`scope-add-clause-${g}`) || $('scope-add-group');
        if (focus) focus.focus();
      });
      return el('tr', { id: `${id}` },
        el('td', { class: 'and-cell', 'data-label': '' }, c === 0 ? '' : 'AND'),
        el('td', { 'data-label': 'Attribute' }, input('attribute', attribute)),
        el('td', { 'data-label': 'Operator' }, input('operator', operator)),
        el('td', { 'data-label': 'Value' }, input('value', value), valueNone),
        el('td', { class: 'nowrap actions' }, remove));
    }

    function drawScoping() {
      clear(scopePanel);
      const addGroup = writeButton({ id: 'scope-add-group' }, draft.scoping.length ? 'Add scoping group (OR)' : 'Add scoping filter');
      addGroup.addEventListener('click', () => {
        draft.scoping.push({ clauses: [{ attribute: '', operator: 'equals', value: '' }] });
        problems = [];
        redraw();
        const g = draft.scoping.length - 1;
        const first = $(`scope-${g}-0-attribute`);
        if (first) first.focus();
      });
      scopePanel.appendChild(el('div', { class: 'panel-head title-pill' }, el('h2', { id: 'scoping-title' }, 'Scoping filter'),
        draft.scoping.length ? pill('running', `${draft.scoping.length} ${draft.scoping.length === 1 ? 'group' : 'groups'}`) : pill('none', 'every object in scope'),
        el('span', { class: 'grow' }), addGroup));
      scopePanel.appendChild(el('p', { class: 'muted small' },
        `A ${CLASS_SINGULAR[cls]} is in scope when every clause of at least one group holds (AND within a group, OR across groups). Objects out of scope count as Filtered and leave the stored set with reason “out of scope”, under the deletion guard. Comparisons are case-sensitive; REGEX MATCH is unanchored; Greater_Than compares integers; & holds when the attribute’s value occurs in the clause’s value, !& when it does not.`));
      const groupProblems = problems.filter((p) => /^scoping(\[\d+\](\.clauses)?)?$/.test(p.field));
      if (groupProblems.length) {
        scopePanel.appendChild(el('div', { class: 'callout callout-red', id: 'scoping-problems' },
          groupProblems.map((p) => el('div', null, el('code', null, p.field), ': ', p.message))));
      }
      if (!draft.scoping.length) {
        scopePanel.appendChild(el('p', { id: 'scoping-empty', class: 'empty-inline' }, `No scoping filter: every ${CLASS_SINGULAR[cls]} is in scope.`));
        return;
      }
      draft.scoping.forEach((group, g) => {
        if (g > 0) scopePanel.appendChild(el('div', { class: 'or-divider', 'aria-hidden': 'true' }, el('span', null, 'OR')));
        const addClause = writeButton({ id: `scope-add-clause-${g}`, class: 'btn btn-small' }, 'Add clause (AND)');
        addClause.addEventListener('click', () => {
          group.clauses.push({ attribute: '', operator: 'equals', value: '' });
          problems = [];
          redraw();
          const first = $(`scope-${g}-${group.clauses.length - 1}-attribute`);
          if (first) first.focus();
        });
        const removeGroup = writeButton({ id: `scope-remove-group-${g}`, class: 'btn btn-small btn-danger' }, 'Remove group');
        removeGroup.addEventListener('click', () => {
          draft.scoping.splice(g, 1);
          problems = [];
          redraw();
          announce(`Scoping group ${g + 1} removed; save to apply.`);
          $('scope-add-group').focus();
        });
        scopePanel.appendChild(el('section', { class: 'scope-group', id: `scope-group-${g}`, 'aria-label': `Scoping group ${g + 1}` },
          el('div', { class: 'scope-group-head' }, el('h3', null, `Group ${g + 1}`), el('span', { class: 'grow' }), addClause, removeGroup),
          el('div', { class: 'table-wrap' }, el('table', { class: 'scope-table table-cards' },
            el('thead', null, el('tr', null, el('th', null, el('span', { class: 'visually-hidden' }, 'And')), el('th', null, 'Attribute'), el('th', null, 'Operator'), el('th', null, 'Value'), el('th', null, el('span', { class: 'visually-hidden' }, 'Actions')))),
            el('tbody', null, group.clauses.map((_, c) => clauseRow(g, c)))))));
      });
    }

    function redraw() {
      drawSummary();
      drawMappings();
      drawScoping();
      changed();
    }

    function announce(text) { $('announcer').textContent = text; }

    // The add/edit dialog of one mapping (`index` null: a new one), with the expression editor.
    function openMappingDialog(index) {
      const existing = index === null ? null : draft.mappings[index];
      const m = existing ? clone(existing) : { target: '', source: { type: 'direct', attribute: '' }, apply: 'always' };
      const title = existing ? (admin ? `Edit mapping: ${existing.target}` : `Mapping: ${existing.target}`) : 'Add attribute mapping';
      let editor = null;
      openDialog('mapping-dialog', title, (form) => {
        const body = el('div', { class: 'dialog-body' });
        const type = select({ id: 'mapping-type', disabled: !admin }, MAPPING_TYPES, m.source.type);
        body.appendChild(field('mapping-type', 'Mapping type', type));
        const attribute = el('input', { type: 'text', id: 'mapping-attribute', value: m.source.type === 'direct' ? m.source.attribute : '', placeholder: 'e.g. mail', autocomplete: 'off', spellcheck: 'false', readOnly: !admin });
        const constant = el('input', { type: 'text', id: 'mapping-constant', value: m.source.type === 'constant' ? m.source.value : '', autocomplete: 'off', readOnly: !admin });
        const directBox = el('div', { id: 'mapping-direct-box' }, field('mapping-attribute', 'Source attribute', attribute, 'The attribute as Graph names it: givenName, department, extension_<appid>_<name>…'));
        const constantBox = el('div', { id: 'mapping-constant-box' }, field('mapping-constant', 'Constant value', constant));
        const expressionBox = el('div', { id: 'mapping-expression-box' });
        editor = expressionEditor(expressionBox, tenant, cls, m.source.type === 'expression' ? m.source.expression : '', () => apply.value);
        body.appendChild(directBox);
        body.appendChild(constantBox);
        body.appendChild(expressionBox);
        const fallback = el('input', { type: 'text', id: 'mapping-default', value: m.default_if_null || '', autocomplete: 'off', readOnly: !admin });
        body.appendChild(field('mapping-default', 'Default value if null (optional)', fallback, 'Written when the object is first stored and the source gives null. A None mapping writes only this.'));
        const target = el('input', { type: 'text', id: 'mapping-target', value: m.target, placeholder: 'e.g. alias', autocomplete: 'off', spellcheck: 'false', readOnly: !admin, maxlength: 256 });
        body.appendChild(field('mapping-target', 'Target attribute', target, 'Letters, digits, _ . : - ; starts with a letter; not id; each target once.'));
        const apply = select({ id: 'mapping-apply', disabled: !admin }, APPLY_WHEN, m.apply || 'always');
        body.appendChild(field('mapping-apply', 'Apply this mapping', apply));
        form.appendChild(body);
        const ok = el('button', { type: 'submit', class: 'btn btn-primary', id: 'mapping-ok', hidden: !admin }, existing ? 'Apply' : 'Add');
        form.appendChild(el('div', { class: 'dialog-foot' },
          admin ? el('span', { class: 'left muted small' }, 'Changes take effect when you save the set.') : null,
          el('button', { type: 'button', class: 'btn', id: 'mapping-cancel', onclick: closeDialog }, admin ? 'Cancel' : 'Close'), ok));

        function showType() {
          directBox.hidden = type.value !== 'direct';
          constantBox.hidden = type.value !== 'constant';
          expressionBox.hidden = type.value !== 'expression';
          if (type.value === 'expression') editor.activate();
        }
        type.addEventListener('change', showType);
        apply.addEventListener('change', () => editor.refreshNotes());
        showType();

        // The last save's problems of this mapping, next to their fields.
        if (index !== null) {
          const ids = { target: 'mapping-target', 'source.attribute': 'mapping-attribute', 'source.value': 'mapping-constant', 'source.expression': 'mapping-expression', default_if_null: 'mapping-default', apply: 'mapping-apply', source: 'mapping-type' };
          for (const p of problemsFor(`mappings[${index}]`)) {
            const id = ids[p.field.slice(`mappings[${index}].`.length)];
            if (!id) continue;
            const input = $(id);
            const message = $(`${id}-error`);
            if (input) { input.setAttribute('aria-invalid', 'true'); input.setAttribute('aria-describedby', `${id}-error`); }
            if (message) message.textContent = p.message;
          }
        }

        form.addEventListener('submit', (event) => {
          event.preventDefault();
          if (!admin) return;
          clearFieldErrors(form);
          const fail = (id, message) => {
            const input = $(id);
            input.setAttribute('aria-invalid', 'true');
            input.setAttribute('aria-describedby', `${id}-error`);
            $(`${id}-error`).textContent = message;
            input.focus();
          };
          const next = { target: target.value.trim(), apply: apply.value };
          switch (type.value) {
            case 'direct':
              if (!attribute.value.trim()) { fail('mapping-attribute', 'Name the source attribute.'); return; }
              next.source = { type: 'direct', attribute: attribute.value.trim() };
              break;
            case 'constant':
              next.source = { type: 'constant', value: constant.value };
              break;
            case 'expression':
              if (!editor.value().trim()) { fail('mapping-expression', 'Write the expression.'); return; }
              next.source = { type: 'expression', expression: editor.value() };
              break;
            default:
              next.source = { type: 'none' };
          }
          if (fallback.value !== '') next.default_if_null = fallback.value;
          if (type.value === 'none' && fallback.value === '') { fail('mapping-default', 'A None mapping writes only its default value: give one.'); return; }
          if (!next.target) { fail('mapping-target', 'Name the target attribute.'); return; }
          const clash = draft.mappings.findIndex((other, j) => j !== index && other.target.toLowerCase() === next.target.toLowerCase());
          if (clash >= 0) { fail('mapping-target', `${draft.mappings[clash].target} is already a target; map each target once.`); return; }
          if (index === null) draft.mappings.push(next); else draft.mappings[index] = next;
          const at = index === null ? draft.mappings.length - 1 : index;
          problems = problems.filter((p) => !p.field.startsWith(`mappings[${at}]`));
          closeDialog();
          redraw();
          announce(`Mapping ${next.target} ${index === null ? 'added' : 'changed'}; save to apply.`);
          const focus = $(`mapping-edit-${at}`);
          if (focus) focus.focus();
        });
      }, true);
      $('dialog').addEventListener('close', () => editor && editor.stop(), { once: true });
    }

    save.addEventListener('click', () => {
      clear(conflict);
      busy(save, async () => {
        try {
          const answer = await api.put(base, Object.assign({ version: stored.version }, normalizedSet(draft)));
          stored = answer;
          draft = normalizedSet(answer);
          problems = [];
          redraw();
          $('mappings-version').textContent = `Version ${answer.version}, saved ${fmtTime(answer.updated_at)}`;
          const lines = [];
          if (answer.remap_job_id) lines.push(`Re-map job ${answer.remap_job_id} queued: the stored ${CLASS_LABEL[cls].toLowerCase()} get the new mapped attributes.`);
          else lines.push('Nothing changed: no re-map was needed.');
          if (answer.full_scan_requested) lines.push('The scoping filter changed: the next run is a full scan.');
          notify('success', `${CLASS_LABEL[cls]} mappings saved (version ${answer.version})`, null, lines);
        } catch (error) {
          if (error instanceof ApiError && error.status === 422 && error.problems.length) {
            problems = error.problems.map((p) => ({ field: p.field || '', message: p.message || '', position: p.position }));
            redraw();
            $('announcer').textContent = `Not saved: ${problems.length} ${problems.length === 1 ? 'problem' : 'problems'}. ${problems[0].field}: ${problems[0].message}`;
            summary.scrollIntoView({ block: 'nearest' });
            return;
          }
          if (error instanceof ApiError && error.status === 409) {
            const reload = el('button', { type: 'button', class: 'btn btn-small', id: 'mappings-reload' }, 'Reload');
            reload.addEventListener('click', () => route());
            clear(conflict).appendChild(el('div', { class: 'callout callout-amber' },
              el('strong', null, 'Someone else saved these mappings meanwhile. '),
              'Your changes were not saved. Reload to get the current set (your unsaved changes are dropped), then make your change again. ',
              reload));
            notify('warning', 'Mappings changed meanwhile', error.detail);
            reload.focus();
            return;
          }
          throw error;
        }
      });
    });
    discard.addEventListener('click', () => {
      draft = normalizedSet(stored);
      problems = [];
      clear(conflict);
      redraw();
      announce('Changes discarded.');
    });
    redraw();
  }

  // The expression editor inside the mapping dialog: a textarea validated as one types (300 ms after the
  // last key), the error's position shown with a caret, the attributes it reads and whether it is
  // deterministic; and a preview of its result on a stored object of the tenant.
  function expressionEditor(box, tenant, cls, initial, applyValue) {
    const admin = isAdmin();
    const textarea = el('textarea', { id: 'mapping-expression', spellcheck: 'false', autocomplete: 'off', rows: 4, maxlength: 10000, readOnly: !admin,
      'aria-describedby': 'expression-status mapping-expression-hint', placeholder: 'Join(".", [givenName], [surname])' }, );
    textarea.value = initial || '';
    const status = el('div', { id: 'expression-status', class: 'expr-status', 'aria-live': 'polite' });
    const search = el('input', { type: 'search', id: 'preview-search', placeholder: `Search ${CLASS_LABEL[cls].toLowerCase()} by name or principal`, autocomplete: 'off' });
    const picker = el('select', { id: 'preview-object' });
    const result = el('div', { id: 'preview-result', class: 'preview-result', 'aria-live': 'polite' });
    box.appendChild(el('div', { class: 'field' },
      el('label', { for: 'mapping-expression' }, 'Expression'),
      textarea,
      el('p', { class: 'hint', id: 'mapping-expression-hint' }, 'The Entra expression language: [attribute], "text", functions such as Join, Switch, IIF, Replace, FormatDateTime. Checked as you type.'),
      el('p', { class: 'field-error', id: 'mapping-expression-error', role: 'alert' })));
    box.appendChild(status);
    box.appendChild(el('fieldset', { class: 'preview', id: 'preview' },
      el('legend', null, 'Preview on a stored object'),
      el('div', { class: 'preview-pick' },
        el('div', null, el('label', { for: 'preview-search' }, 'Find'), search),
        el('div', null, el('label', { for: 'preview-object' }, CLASS_LABEL[cls].replace(/s$/, '')), picker)),
      result));

    let validateTimer = null;
    let searchTimer = null;
    let validation = null; // the last answer for the current text
    let validateSeq = 0;
    let evaluateSeq = 0;
    let searchSeq = 0;
    let started = false;
    let stopped = false;

    function refreshNotes() {
      clear(status);
      const text = textarea.value;
      if (!text.trim()) {
        status.appendChild(el('span', { class: 'muted small' }, 'Write an expression to check it.'));
        return;
      }
      if (!validation) {
        status.appendChild(el('span', { class: 'muted small' }, el('span', { class: 'spinner', 'aria-hidden': 'true' }), ' Checking…'));
        return;
      }
      if (!validation.valid) {
        const error = validation.error || { position: 1, message: 'not valid' };
        const at = caretLines(text, error.position);
        const goTo = el('button', { type: 'button', class: 'btn btn-small', id: 'expression-goto' }, 'Go to the error');
        goTo.addEventListener('click', () => {
          // The textarea counts UTF-16 units; the parser counts characters.
          const before = Array.from(text).slice(0, Math.max(0, error.position - 1)).join('').length;
          textarea.focus();
          textarea.setSelectionRange(before, Math.min(text.length, before + 1));
        });
        status.appendChild(el('div', { class: 'expr-error', id: 'expression-invalid' },
          el('div', { class: 'expr-error-head' }, pill('failed', 'Not valid'),
            el('span', { id: 'expression-error', 'data-position': error.position },
              `Character ${error.position}${at.lineNo > 1 ? ` (line ${at.lineNo}, column ${at.column})` : ''}: ${error.message}`),
            el('span', { class: 'grow' }), goTo),
          caretView(text, error.position, 'expression-caret')));
        return;
      }
      const attrs = validation.attributes || [];
      const deterministic = validation.deterministic;
      status.appendChild(el('div', { class: 'expr-ok', id: 'expression-valid' },
        pill('success', 'Valid'),
        el('span', { id: 'expression-attributes' }, attrs.length ? ['Reads ', attrs.map((a, i) => [i ? ', ' : '', el('code', null, `[${a}]`)])] : 'Reads no attribute'),
        el('span', { id: 'expression-deterministic', class: deterministic ? 'muted' : '' },
          deterministic ? '· Deterministic' : pill('warning', 'Not deterministic'))));
      if (!deterministic) {
        status.appendChild(el('p', { class: `small ${applyValue() === 'always' ? 'field-error' : 'muted'}`, id: 'expression-deterministic-note' },
          'It calls Now, Guid, RandomString or SelectUniqueValue and gives a new value every time: apply it “Only during object creation”.'));
      }
    }

    async function validate() {
      const text = textarea.value;
      const seq = ++validateSeq;
      if (!text.trim()) { validation = null; refreshNotes(); showResult(null); return; }
      let answer;
      try {
        answer = await api.post('/api/v1/expressions/validate', { expression: text });
      } catch (error) {
        if (seq === validateSeq && !stopped) showError(error);
        return;
      }
      if (seq !== validateSeq || stopped) return;
      validation = answer;
      if (answer.valid) textarea.removeAttribute('aria-invalid'); else textarea.setAttribute('aria-invalid', 'true');
      $('mapping-expression-error').textContent = '';
      refreshNotes();
      evaluate();
    }

    function showResult(content) {
      clear(result);
      if (content) append(result, [content]);
    }

    async function evaluate() {
      const seq = ++evaluateSeq;
      const text = textarea.value;
      if (!picker.value) { showResult(el('p', { class: 'muted small', id: 'preview-none' }, `No stored ${CLASS_LABEL[cls].toLowerCase()} to try it on${search.value ? ' match the search' : ' yet'}.`)); return; }
      if (!validation || !validation.valid || !text.trim()) { showResult(el('p', { class: 'muted small' }, 'The preview shows once the expression is valid.')); return; }
      showResult(el('p', { class: 'muted small' }, el('span', { class: 'spinner', 'aria-hidden': 'true' }), ' Evaluating…'));
      try {
        const answer = await api.post('/api/v1/expressions/evaluate', { expression: text, tenant_id: tenant.id, class: cls, object_id: picker.value });
        if (seq !== evaluateSeq || stopped) return;
        const value = answer.result;
        showResult([
          el('div', { class: 'preview-head' }, el('span', null, 'Result'), el('span', { class: 'pill pill-grey', id: 'preview-type' }, resultType(value))),
          el('pre', { class: 'json preview-value', id: 'preview-value' }, JSON.stringify(value === undefined ? null : value, null, 2)),
          value === null ? el('p', { class: 'muted small' }, 'null: the mapping writes nothing for this object (its default value applies when the object is first stored).') : null,
        ]);
      } catch (error) {
        if (seq !== evaluateSeq || stopped) return;
        if (error instanceof ApiError && (error.status === 422 || error.status === 404)) {
          showResult(el('div', { class: 'callout callout-red', id: 'preview-error' }, error.detail || error.title));
          return;
        }
        showError(error);
      }
    }

    async function loadObjects() {
      const seq = ++searchSeq;
      let page;
      try {
        page = await api.get(`/api/v1/tenants/${tenant.id}/objects${query({ class: cls, q: search.value.trim(), limit: 50 })}`);
      } catch (error) {
        if (!stopped) showError(error);
        return;
      }
      if (seq !== searchSeq || stopped) return;
      const previous = picker.value;
      const items = page.items || [];
      clear(picker);
      for (const item of items) {
        const label = [item.display_name || '(no name)', item.principal].filter(Boolean).join(' — ');
        picker.appendChild(option(item.object_id, label, item.object_id === previous));
      }
      if (!items.length) picker.appendChild(option('', search.value.trim() ? 'No object matches' : 'No objects stored yet', true));
      picker.disabled = !items.length;
      evaluate();
    }

    textarea.addEventListener('input', () => {
      validation = null;
      clearTimeout(validateTimer);
      validateTimer = setTimeout(validate, 300);
      refreshNotes();
    });
    search.addEventListener('input', () => {
      clearTimeout(searchTimer);
      searchTimer = setTimeout(loadObjects, 300);
    });
    picker.addEventListener('change', evaluate);

    return {
      value: () => textarea.value,
      refreshNotes,
      // The first time the Expression type shows: check the text and load the objects.
      activate() {
        if (started) return;
        started = true;
        refreshNotes();
        validate();
        loadObjects();
      },
      stop() { stopped = true; clearTimeout(validateTimer); clearTimeout(searchTimer); },
    };
  }

  // ---------------------------------------------------------------- tag mappings, tags and asset groups

  const TAG_SOURCES = ['department', 'companyName', 'officeLocation', 'city', 'country', 'jobTitle', 'employeeType']
    .concat(Array.from({ length: 15 }, (_, i) => `extensionAttribute${i + 1}`));
  const ORIGIN_LABEL = { manual: 'Manual', synced: 'Synced', manual_and_synced: 'Manual and synced' };
  // The limit of live tag mappings (setting tags.max_mappings), as the last list or refusal said.
  let tagMappingLimit = 5;

  function sourceLabel(source) {
    return source === 'group_membership' ? 'Group membership' : source;
  }

  function targetLabel(m) {
    return m.target === 'asset_group' ? 'Asset group' : el('span', null, 'Custom tag ', el('code', null, m.key));
  }

  function originPill(origin) {
    const tone = origin === 'manual' ? 'running' : origin === 'synced' ? 'success' : 'warning';
    return pill(tone, ORIGIN_LABEL[origin] || origin);
  }

  async function renderTags(root, view, tenant) {
    const base = `/api/v1/tenants/${tenant.id}`;
    const [mappingList, tags, groups] = await Promise.all([
      api.get(`${base}/tag-mappings`),
      api.get(`${base}/tags${query({ kind: 'custom', limit: 100 })}`),
      api.get(`${base}/asset-groups${query({ limit: 100 })}`),
    ]);
    if (view !== state.view) return;
    tagMappingLimit = mappingList.limit;
    clear(root);
    root.appendChild(tagMappingsPanel(tenant, mappingList.items));
    root.appendChild(tagValuesPanel(tenant, tags));
    root.appendChild(assetGroupsPanel(tenant, groups));
  }

  function tagMappingsPanel(tenant, mappings) {
    const live = mappings.filter((m) => !m.pending_deletion).length;
    const panel = el('section', { class: 'panel', id: 'tag-mappings-panel', 'aria-labelledby': 'tag-mappings-title' });
    const add = writeButton({ id: 'tag-mapping-add', class: 'btn btn-primary' }, 'Add tag mapping');
    add.addEventListener('click', () => openTagMappingDialog(tenant, live));
    const sync = writeButton({ id: 'tag-sync-now' }, 'Sync tags now');
    sync.addEventListener('click', () => busy(sync, async () => {
      const answer = await api.post(`/api/v1/tenants/${tenant.id}/tag-sync`);
      notify('success', 'Tag sync queued', `Job ${answer.job_id}: its run appears in the sync history (type tag_sync).`);
    }));
    panel.appendChild(el('div', { class: 'panel-head title-pill' },
      el('h2', { id: 'tag-mappings-title' }, 'External tag mappings'),
      el('span', { id: 'tag-mapping-count', class: `pill ${live >= tagMappingLimit ? 'pill-amber' : 'pill-grey'}`, title: 'Live mappings and the limit (setting tags.max_mappings); mappings pending deletion do not count' },
        `${live} of ${tagMappingLimit}`),
      el('span', { class: 'grow' }), sync, add));
    panel.appendChild(el('p', { class: 'muted small' },
      'Each mapping turns a directory property into platform tags: its values become tag values (a custom tag key) or asset groups, assigned to the objects that have them. A daily tag sync brings new values in; Sync tags now runs one at once.'));
    const body = el('tbody', { id: 'tag-mapping-rows' });
    for (const m of mappings) {
      const remove = writeButton({ id: `tag-mapping-delete-${m.id}`, class: 'btn btn-small btn-danger', 'aria-label': `Delete tag mapping ${m.source}` }, 'Delete');
      if (m.pending_deletion) remove.disabled = true;
      remove.addEventListener('click', () => deleteTagMapping(tenant, m, remove));
      const stateCell = m.pending_deletion
        ? [pill('warning', 'Pending deletion'), el('span', { class: 'cell-sub' }, `since ${fmtTime(m.pending_deletion_at)}; its values go at the next tag sync`),
          m.deletion_error ? el('span', { class: 'cell-sub field-error' }, `${m.deletion_attempts} failed ${m.deletion_attempts === 1 ? 'attempt' : 'attempts'}: ${m.deletion_error}`) : null]
        : pill('success', 'Active');
      body.appendChild(el('tr', { id: `tag-mapping-row-${m.id}`, 'data-source': m.source },
        el('td', { class: 'primary', 'data-label': 'Source property' }, sourceLabel(m.source)),
        el('td', { 'data-label': 'Platform property' }, targetLabel(m)),
        el('td', { class: 'num', 'data-label': 'Values' }, fmtNum(m.values)),
        el('td', { 'data-label': 'Last synced', class: 'nowrap' }, m.last_synced_at ? fmtTime(m.last_synced_at) : el('span', { class: 'muted' }, 'Never')),
        el('td', { 'data-label': 'State' }, stateCell),
        el('td', { 'data-label': 'Created', class: 'hide-narrow' }, fmtTime(m.created_at), el('span', { class: 'cell-sub' }, m.created_by)),
        el('td', { class: 'nowrap actions' }, remove)));
    }
    if (!mappings.length) body.appendChild(el('tr', null, el('td', { colspan: 7, class: 'empty' }, 'No tag mappings yet.')));
    panel.appendChild(el('div', { class: 'table-wrap' }, el('table', { id: 'tag-mapping-table', class: 'table-cards' },
      el('thead', null, el('tr', null, el('th', null, 'Third-party tag property'), el('th', null, 'Platform tag property'), el('th', { class: 'num' }, 'Values'),
        el('th', null, 'Last synced'), el('th', null, 'State'), el('th', { class: 'hide-narrow' }, 'Created'), el('th', null, el('span', { class: 'visually-hidden' }, 'Actions')))),
      body)));
    return panel;
  }

  function openTagMappingDialog(tenant, live) {
    const fields = { source: 'tag-mapping-source', key: 'tag-mapping-key', target: 'tag-mapping-target' };
    openDialog('tag-mapping-dialog', 'Add tag mapping', (form) => {
      const sourceOptions = TAG_SOURCES.map((s) => [s, s]).concat([['group_membership', 'Group membership'], ['other', 'Other attribute (extension_<appid>_<name>)…']]);
      const source = select({ id: 'tag-mapping-source' }, sourceOptions, 'department');
      const other = el('input', { type: 'text', id: 'tag-mapping-other', placeholder: 'extension_<appid>_<name>', autocomplete: 'off', spellcheck: 'false' });
      const otherBox = el('div', { hidden: true }, field('tag-mapping-other', 'Attribute name', other));
      const target = select({ id: 'tag-mapping-target' }, [['custom', 'Custom tag key'], ['asset_group', 'Asset group']], 'custom');
      const key = el('input', { type: 'text', id: 'tag-mapping-key', maxlength: 100, autocomplete: 'off', placeholder: 'e.g. Department' });
      const keyBox = field('tag-mapping-key', 'Custom tag key', key);
      form.appendChild(el('div', { class: 'dialog-body' },
        el('p', { class: 'muted', id: 'tag-mapping-limit' }, `${live} of ${tagMappingLimit} mappings in use. A mapping may share its source or its platform property with another, not both.`),
        field('tag-mapping-source', 'Third-party tag property', source),
        otherBox,
        field('tag-mapping-target', 'Platform tag property', target, 'Asset group: each value becomes an asset group; a value naming an existing group joins it.'),
        keyBox));
      const submit = el('button', { type: 'submit', class: 'btn btn-primary', id: 'tag-mapping-submit' }, 'Create');
      form.appendChild(el('div', { class: 'dialog-foot' },
        el('button', { type: 'button', class: 'btn', id: 'tag-mapping-cancel', onclick: closeDialog }, 'Cancel'), submit));
      source.addEventListener('change', () => { otherBox.hidden = source.value !== 'other'; if (!otherBox.hidden) other.focus(); });
      target.addEventListener('change', () => { keyBox.hidden = target.value !== 'custom'; });
      form.addEventListener('submit', (event) => {
        event.preventDefault();
        clearFieldErrors(form);
        const body = { source: source.value === 'other' ? other.value.trim() : source.value, target: target.value };
        if (target.value === 'custom') body.key = key.value.trim();
        if (source.value === 'other' && !body.source) {
          showError(new ApiError(422, { title: 'Name the attribute', detail: 'Give the extension attribute’s name.', field: 'other' }), { other: 'tag-mapping-other' }, form);
          return;
        }
        if (target.value === 'custom' && !body.key) {
          showError(new ApiError(422, { title: 'The key is required', detail: 'A custom tag needs its key.', field: 'key' }), fields, form);
          return;
        }
        busy(submit, async () => {
          try {
            const created = await api.post(`/api/v1/tenants/${tenant.id}/tag-mappings`, body);
            closeDialog();
            notify('success', 'Tag mapping created', `${sourceLabel(created.source)} → ${created.target === 'asset_group' ? 'Asset group' : created.key}. The next tag sync brings its values in.`);
            route();
          } catch (error) {
            // The limit's refusal names it: keep the console's count right.
            const limit = error instanceof ApiError && /\(setting tags\.max_mappings[^)]*is (\d+)\)/.exec(error.detail || '');
            if (limit) {
              tagMappingLimit = Number(limit[1]);
              const has = /has (\d+) tag mappings/.exec(error.detail);
              const count = $('tag-mapping-count');
              if (has && count) count.textContent = `${has[1]} of ${tagMappingLimit}`;
            }
            if (error instanceof ApiError && error.field === 'source' && source.value === 'other') error.field = 'other';
            throw error;
          }
        }, Object.assign({ other: 'tag-mapping-other' }, fields), form);
      });
    });
  }

  async function deleteTagMapping(tenant, m, button) {
    const what = `${sourceLabel(m.source)} → ${m.target === 'asset_group' ? 'Asset group' : `custom tag “${m.key}”`}`;
    const message = m.last_synced_at
      ? `This mapping has synced (${fmtNum(m.values)} values). It becomes pending deletion, and at the next tag sync the tag values only it synced are removed with their assignments. Values added manually, or also synced by another mapping, stay. Meanwhile you can create other mappings.`
      : 'This mapping never synced, so it is deleted at once; no tag value is touched.';
    if (!(await confirmDialog(`Delete tag mapping ${what}?`, message, 'Delete mapping', true))) return;
    busy(button, async () => {
      const answer = await api.del(`/api/v1/tenants/${tenant.id}/tag-mappings/${m.id}`);
      if (answer && answer.pending_deletion) notify('success', 'Tag mapping pending deletion', 'Its values are removed at the next tag sync (Sync tags now runs one).');
      else notify('success', 'Tag mapping deleted');
      route();
    });
  }

  function tagValuesPanel(tenant, page) {
    const items = page.items || [];
    const panel = el('section', { class: 'panel', id: 'tag-values-panel', 'aria-labelledby': 'tag-values-title' });
    const add = writeButton({ id: 'tag-add' }, 'Add manual tag');
    add.addEventListener('click', () => openNameDialog({
      id: 'tag-dialog', title: 'Add a manual tag value', submit: 'Add tag',
      fields: [['key', 'Key', 100], ['value', 'Value', 256]],
      note: 'A manual value stays whatever the mappings do. Assign it to objects through the API.',
      post: (body) => api.post(`/api/v1/tenants/${tenant.id}/tags`, body),
      done: (tag) => `${tag.key}: ${tag.value}${tag.origin === 'manual_and_synced' ? ' (a synced value, now manual too)' : ''}`,
    }));
    panel.appendChild(el('div', { class: 'panel-head' }, el('h2', { id: 'tag-values-title' }, 'Tag values'), el('span', { class: 'grow' }), add));
    const body = el('tbody', { id: 'tag-rows' });
    for (const tag of items) {
      const remove = writeButton({ id: `tag-delete-${tag.id}`, class: 'btn btn-small btn-danger', 'aria-label': `Delete tag ${tag.key}: ${tag.value}` }, 'Delete');
      remove.addEventListener('click', async () => {
        if (!(await confirmDialog(`Delete tag “${tag.key}: ${tag.value}”?`, `The value and its ${fmtNum(tag.objects)} assignments are deleted. A value a live mapping syncs cannot be deleted (it would come back): delete the mapping instead.`, 'Delete tag', true))) return;
        busy(remove, async () => {
          await api.del(`/api/v1/tenants/${tenant.id}/tags/${tag.id}`);
          notify('success', 'Tag deleted', `${tag.key}: ${tag.value}`);
          route();
        });
      });
      body.appendChild(el('tr', { id: `tag-row-${tag.id}` },
        el('td', { class: 'primary', 'data-label': 'Key' }, tag.key),
        el('td', { 'data-label': 'Value' }, tag.value),
        el('td', { 'data-label': 'Origin' }, originPill(tag.origin)),
        el('td', { 'data-label': 'Mappings', class: 'hide-narrow' }, tag.mappings.length ? tag.mappings.map((id) => `#${id}`).join(', ') : '—'),
        el('td', { class: 'num', 'data-label': 'Objects' }, fmtNum(tag.objects)),
        el('td', { class: 'nowrap actions' }, remove)));
    }
    if (!items.length) body.appendChild(el('tr', null, el('td', { colspan: 6, class: 'empty' }, 'No tag values yet. A tag sync brings in the values of the mappings; manual values are added here.')));
    panel.appendChild(el('div', { class: 'table-wrap' }, el('table', { id: 'tag-table', class: 'table-cards' },
      el('thead', null, el('tr', null, el('th', null, 'Key'), el('th', null, 'Value'), el('th', null, 'Origin'), el('th', { class: 'hide-narrow' }, 'Synced by'),
        el('th', { class: 'num' }, 'Objects'), el('th', null, el('span', { class: 'visually-hidden' }, 'Actions')))),
      body)));
    if (page.next_after) panel.appendChild(el('p', { class: 'hint' }, `The first ${items.length} values are shown.`));
    return panel;
  }

  function assetGroupsPanel(tenant, page) {
    const items = page.items || [];
    const panel = el('section', { class: 'panel', id: 'asset-groups-panel', 'aria-labelledby': 'asset-groups-title' });
    const add = writeButton({ id: 'asset-group-add' }, 'Create asset group');
    add.addEventListener('click', () => openNameDialog({
      id: 'asset-group-dialog', title: 'Create an asset group', submit: 'Create',
      fields: [['name', 'Name', 256]],
      note: 'Names compare case-insensitively; a synced value with this name joins this group.',
      post: (body) => api.post(`/api/v1/tenants/${tenant.id}/asset-groups`, body),
      done: (group) => group.name,
    }));
    panel.appendChild(el('div', { class: 'panel-head' }, el('h2', { id: 'asset-groups-title' }, 'Asset groups'), el('span', { class: 'grow' }), add));
    const body = el('tbody', { id: 'asset-group-rows' });
    for (const group of items) {
      const remove = writeButton({ id: `asset-group-delete-${group.id}`, class: 'btn btn-small btn-danger', 'aria-label': `Delete asset group ${group.name}` }, 'Delete');
      remove.addEventListener('click', async () => {
        if (!(await confirmDialog(`Delete asset group “${group.name}”?`, `The group and its ${fmtNum(group.members)} memberships are deleted. A group a live mapping syncs cannot be deleted: delete the mapping instead.`, 'Delete group', true))) return;
        busy(remove, async () => {
          await api.del(`/api/v1/tenants/${tenant.id}/asset-groups/${group.id}`);
          notify('success', 'Asset group deleted', group.name);
          route();
        });
      });
      body.appendChild(el('tr', { id: `asset-group-row-${group.id}` },
        el('td', { class: 'primary', 'data-label': 'Name' }, group.name),
        el('td', { 'data-label': 'Origin' }, originPill(group.origin)),
        el('td', { 'data-label': 'Mappings', class: 'hide-narrow' }, group.mappings.length ? group.mappings.map((id) => `#${id}`).join(', ') : '—'),
        el('td', { class: 'num', 'data-label': 'Members' }, fmtNum(group.members)),
        el('td', { 'data-label': 'Created', class: 'hide-narrow' }, fmtTime(group.created_at)),
        el('td', { class: 'nowrap actions' }, remove)));
    }
    if (!items.length) body.appendChild(el('tr', null, el('td', { colspan: 6, class: 'empty' }, 'No asset groups yet.')));
    panel.appendChild(el('div', { class: 'table-wrap' }, el('table', { id: 'asset-group-table', class: 'table-cards' },
      el('thead', null, el('tr', null, el('th', null, 'Name'), el('th', null, 'Origin'), el('th', { class: 'hide-narrow' }, 'Synced by'),
        el('th', { class: 'num' }, 'Members'), el('th', { class: 'hide-narrow' }, 'Created'), el('th', null, el('span', { class: 'visually-hidden' }, 'Actions')))),
      body)));
    if (page.next_after) panel.appendChild(el('p', { class: 'hint' }, `The first ${items.length} groups are shown.`));
    return panel;
  }

  // A small create dialog: `fields` are [api name, label, max length].
  function openNameDialog(spec) {
    const ids = Object.fromEntries(spec.fields.map(([name]) => [name, `${spec.id}-${name}`]));
    openDialog(spec.id, spec.title, (form) => {
      form.appendChild(el('div', { class: 'dialog-body' },
        el('p', { class: 'muted' }, spec.note),
        spec.fields.map(([name, label, max]) => field(ids[name], label, el('input', { type: 'text', id: ids[name], maxlength: max, autocomplete: 'off' })))));
      const submit = el('button', { type: 'submit', class: 'btn btn-primary', id: `${spec.id}-submit` }, spec.submit);
      form.appendChild(el('div', { class: 'dialog-foot' },
        el('button', { type: 'button', class: 'btn', id: `${spec.id}-cancel`, onclick: closeDialog }, 'Cancel'), submit));
      form.addEventListener('submit', (event) => {
        event.preventDefault();
        clearFieldErrors(form);
        const body = Object.fromEntries(spec.fields.map(([name]) => [name, $(ids[name]).value.trim()]));
        busy(submit, async () => {
          const created = await spec.post(body);
          closeDialog();
          notify('success', `${spec.title.replace(/^(Add|Create) an? /, '').replace(/^./, (c) => c.toUpperCase())} saved`, spec.done(created));
          route();
        }, ids, form);
      });
    });
  }

  // ---------------------------------------------------------------- start

  async function start() {
    initDialog();
    initSignIn();
    initNav();
    window.addEventListener('hashchange', route);
    // A link to the page already shown (a tab, a tenant in the pane) loads it again.
    document.addEventListener('click', (event) => {
      const link = event.target.closest && event.target.closest('a[href^="#/"]');
      if (link && link.getAttribute('href') === location.hash && !event.defaultPrevented) {
        event.preventDefault();
        route();
      }
    });
    const token = sessionStorage.getItem(TOKEN_KEY);
    if (!token) {
      showSignIn();
      return;
    }
    try {
      await signIn(token);
    } catch (error) {
      signOut(error instanceof ApiError && error.status === 401 ? 'Your token is no longer accepted. Sign in again.' : `${error.title || 'Sign-in failed'}${error.detail ? ': ' + error.detail : ''}`);
      return;
    }
    showShell();
    await refreshTenants();
    route();
  }

  document.addEventListener('DOMContentLoaded', start);
}());
