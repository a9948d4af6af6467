/* The control room: signs its user in with Microsoft Entra ID through MSAL.js (authorization code
   with PKCE, redirect flow, where GET ops/signin says), calls the admin API with their access token
   (Authorization: Bearer, never in a URL), shows only the actions their app roles allow (the API
   decides and refuses the others), redraws every few seconds, and asks before it acts. */
"use strict";

const PAGE = new URL(window.location.href);
const API = PAGE.pathname.replace(/ops\/controlroom\/?$/, "");
const EVERY_MS = Math.max(500, 1000 * (Number(PAGE.searchParams.get("every")) || 2));
const SET_ASIDE = ["rejected", "ignored", "deadletter", "invalid"];
const STAGES = ["testing", "passed", "awaiting_review", "promoted", "rolling_out", "live"];
const ENDINGS = ["failed", "rejected", "expired", "rolled_back", "superseded", "retired"];
// Which rollout states each action fits (shared/reactor/rollout.py's _require): the others are disabled.
const ACTIVE = ["progressing", "paused", "awaiting_approval", "rolling_back"];
const ACTIONS = {
  pause: ["progressing", "awaiting_approval"], resume: ["paused"], approve: ["awaiting_approval"],
  promote: ["progressing", "paused", "awaiting_approval"], abort: ["progressing", "paused", "awaiting_approval"],
  undo: ["succeeded"],
};

// Who may do what (shared/domain/people.py): a role includes the ones listed; an admin is no approver.
const READER = "MLOps.Reader", OPERATOR = "MLOps.Operator", APPROVER = "MLOps.Approver", ADMIN = "MLOps.Admin";
const INCLUDES = {[READER]: [], [OPERATOR]: [READER], [APPROVER]: [READER], [ADMIN]: [OPERATOR, READER]};

// Sign-in ----------------------------------------------------------------------------

// Microsoft Entra's login hosts, whose metadata MSAL.js has built in; any other authority (the local
// Entra ID stand-in on loopback) is listed in knownAuthorities, which is how MSAL.js trusts a host it
// does not know without asking Microsoft's instance discovery.
const ENTRA_HOSTS = ["login.microsoftonline.com", "login.microsoftonline.us", "login.chinacloudapi.cn",
                     "login.partner.microsoftonline.cn"];
const SIGNED_OUT = "controlroom.signed-out";  // sessionStorage: the person signed out here; do not sign in again
const RESIGNED = "controlroom.signed-in-again";  // sessionStorage: when a 401 last sent them to sign in again
const RESIGN_AFTER_MS = 5 * 60 * 1000;  // a second 401 sooner than this asks the person instead of looping
const GRANTED = "controlroom.scopes";  // sessionStorage: the scopes the authority's last token was granted for

/** Thrown while the browser leaves for the sign-in page: nothing more is drawn or asked. */
class SigningIn extends Error {}

/* `scopes`: what the page asks tokens for. First the app's `<client id>/.default`; then the scopes the
   authority answered with (Entra names the API's delegated scopes, e.g. `<client id>/user_impersonation`),
   which is what MSAL keys its cached access token by: asking for `.default` again would miss that cache
   and redeem the refresh token on every call. */
const auth = {app: null, account: null, clientId: "", authority: "", scope: "", scopes: [], roles: [],
              leaving: false};

function granted(result) {
  if (result && Array.isArray(result.scopes) && result.scopes.length) {
    auth.scopes = result.scopes;
    sessionStorage.setItem(GRANTED, JSON.stringify({client: auth.clientId, scopes: result.scopes}));
  }
}

function grantedBefore(clientId) {
  try {
    const saved = JSON.parse(sessionStorage.getItem(GRANTED) || "null");
    return saved && saved.client === clientId && Array.isArray(saved.scopes) && saved.scopes.length
      && saved.scopes.every((scope) => typeof scope === "string") ? saved.scopes : null;
  } catch {
    return null;
  }
}

/** Where to sign in, as the app says (GET ops/signin, public), checked before anyone is sent there. */
async function signInSettings() {
  let response;
  try {
    response = await fetch(API + "ops/signin", {headers: {accept: "application/json"}, cache: "no-store",
                                               credentials: "same-origin", referrerPolicy: "no-referrer"});
  } catch (error) {
    throw new Error(`the app cannot be reached (${error.message})`);
  }
  const text = await response.text();
  let answer = null;
  try { answer = text ? JSON.parse(text) : null; } catch { answer = null; }
  if (!response.ok) {
    const said = (answer && typeof answer.error === "string" && answer.error) || text.slice(0, 300) || "no message";
    throw new Error(`GET ops/signin answered ${response.status}: ${said}`);
  }
  const fields = ["authority", "tenant_id", "client_id", "scope"];
  if (!answer || fields.some((name) => typeof answer[name] !== "string" || !answer[name])) {
    throw new Error(`GET ops/signin did not name ${fields.join(", ")}`);
  }
  let authority;
  try { authority = new URL(answer.authority); } catch { authority = null; }
  const path = authority ? authority.pathname.replace(/\/+$/, "") : "";
  if (!authority || authority.protocol !== "https:" || path !== `/${answer.tenant_id}`) {
    throw new Error(`the app's authority ${answer.authority} is not https://<login host>/<tenant>`);
  }
  if (answer.scope !== `${answer.client_id}/.default`) {
    throw new Error(`the app asks for tokens for ${answer.scope}, not for itself (${answer.client_id}/.default)`);
  }
  return {...answer, host: authority.host, hostname: authority.hostname};
}

/** The page's own URL without query or fragment: the redirect URI registered for the control room. */
function redirectUri() {
  return `${window.location.origin}${API}ops/controlroom`;
}

function msalConfiguration(settings) {
  return {
    auth: {
      clientId: settings.client_id,
      authority: settings.authority,
      knownAuthorities: ENTRA_HOSTS.includes(settings.hostname.toLowerCase()) ? [] : [settings.host],
      redirectUri: redirectUri(),
      postLogoutRedirectUri: redirectUri(),
    },
    // The tokens live as long as the tab, not on disk.
    cache: {cacheLocation: "sessionStorage"},
    // The default protocol mode (AAD): discovery at {authority}/v2.0/.well-known/openid-configuration,
    // the code in the redirect's fragment, client_info for the account; see the README.
    system: {protocolMode: msal.ProtocolMode.AAD},
  };
}

/** Sign the person in, or finish signing them in after the redirect back; true once signed in. */
async function signIn() {
  let settings;
  try {
    settings = await signInSettings();
  } catch (error) {
    showSignIn("Signing in is not possible right now", sentence(error.message), "Try again",
               () => window.location.reload());
    return false;
  }
  const app = new msal.PublicClientApplication(msalConfiguration(settings));
  await app.initialize();
  auth.app = app;
  auth.scope = settings.scope;
  auth.clientId = settings.client_id;
  auth.authority = settings.authority;
  auth.scopes = grantedBefore(settings.client_id) || [settings.scope];
  let result = null;
  try {
    result = await app.handleRedirectPromise();  // reads the code from the fragment and removes it from the URL
  } catch (error) {
    showSignIn("Signing in failed", sentence(authError(error)), "Sign in again", () => leaveToSignIn("select_account"));
    return false;
  }
  const account = (result && result.account) || app.getActiveAccount() || app.getAllAccounts()[0] || null;
  if (!account) {
    if (sessionStorage.getItem(SIGNED_OUT)) {
      showSignIn("You signed out", "You signed out of the control room. Nothing is shown until you sign in again.",
                 "Sign in", () => leaveToSignIn("select_account"));
      return false;
    }
    await leaveToSignIn();
    return false;
  }
  sessionStorage.removeItem(SIGNED_OUT);
  granted(result);
  app.setActiveAccount(account);
  auth.account = account;
  try {
    await accessToken();  // reads the roles the page shows actions for
  } catch (error) {
    if (error instanceof SigningIn) return false;
    showSignIn("Signing in failed", sentence(error.message), "Sign in again", () => leaveToSignIn("select_account"));
    return false;
  }
  showWho();
  return true;
}

/** Off to the sign-in page; `prompt` as Entra takes it (select_account after a sign-out). */
async function leaveToSignIn(prompt) {
  sessionStorage.removeItem(SIGNED_OUT);
  await leave(() => auth.app.loginRedirect({scopes: auth.scopes, ...(prompt ? {prompt} : {})})).catch(() => null);
}

/** Run one of MSAL's redirects. Before it leaves, MSAL reads the authority's metadata: when that fails
    (the authority unreachable, or its certificate not trusted by this browser), say so and stay. */
async function leave(redirect) {
  auth.leaving = true;
  document.body.dataset.auth = "signing-in";
  try {
    await redirect();
  } catch (error) {
    auth.leaving = false;
    showSignIn("Signing in is not possible right now",
               sentence(`The sign-in authority ${auth.authority} could not be used (${authError(error)})`),
               "Try again", () => window.location.reload());
    throw new SigningIn("stopped");
  }
}

/* The requests a refresh starts together share one look-up of the token: each would otherwise ask MSAL's cache in
   turn (a few ms of the main thread each), and the last would start that much later. */
let tokenAsked = null;
const accessToken = () => (tokenAsked ||= lookUpToken().finally(() => { tokenAsked = null; }));

/** The person's access token for the app, from MSAL's cache (renewed with the refresh token when it is
    near its end); sign-in again when only the person can renew it. */
async function lookUpToken() {
  if (auth.leaving) throw new SigningIn("signing in");
  const request = {scopes: auth.scopes, account: auth.account,
                   // From the cache and the refresh token only: MSAL would otherwise try a hidden iframe,
                   // which the page's CSP (and third-party cookie blocking) forbids.
                   cacheLookupPolicy: msal.CacheLookupPolicy.AccessTokenAndRefreshToken};
  let result;
  try {
    result = await auth.app.acquireTokenSilent(request);
  } catch (error) {
    if (error instanceof msal.InteractionRequiredAuthError) {
      await leave(() => auth.app.acquireTokenRedirect({scopes: auth.scopes, account: auth.account}));
      throw new SigningIn("signing in");
    }
    throw new ApiProblem(0, `Your sign-in could not be renewed (${authError(error)})`);
  }
  granted(result);
  auth.roles = rolesOf(result.accessToken);
  return result.accessToken;
}

/** A 401 from the API: its token was refused, so sign in again; a second 401 soon after asks first. */
async function signInAgain(problem) {
  const last = Number(sessionStorage.getItem(RESIGNED)) || 0;
  if (Date.now() - last < RESIGN_AFTER_MS) return false;
  sessionStorage.setItem(RESIGNED, String(Date.now()));
  await leave(() => auth.app.acquireTokenRedirect({scopes: auth.scopes, account: auth.account, prompt: "login"}));
  return true;
}

async function signOut() {
  sessionStorage.setItem(SIGNED_OUT, "1");
  sessionStorage.removeItem(GRANTED);
  await leave(() => auth.app.logoutRedirect({account: auth.account, postLogoutRedirectUri: redirectUri()}))
    .catch(() => null);
}

/** The `roles` claim of an access token, read for display only: the API verifies the token itself. */
function rolesOf(token) {
  try {
    const part = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    const bytes = Uint8Array.from(atob(part.padEnd(part.length + (4 - part.length % 4) % 4, "=")),
                                  (c) => c.charCodeAt(0));
    const roles = JSON.parse(new TextDecoder().decode(bytes)).roles;
    return Array.isArray(roles) ? roles.filter((role) => typeof role === "string") : [];
  } catch {
    return [];
  }
}

/** Whether the signed-in person's roles include `role` (as the API decides: people.py's Person.holds). */
function holds(role) {
  return auth.roles.includes(role) || auth.roles.some((held) => (INCLUDES[held] || []).includes(role));
}

/** A message as a sentence: one full stop at its end. */
function sentence(text) {
  const said = String(text).trim();
  return /[.!?]$/.test(said) ? said : `${said}.`;
}

function authError(error) {
  const code = error && (error.errorCode || error.name);
  const message = error && (error.errorMessage || error.message);
  return [code, message].filter(Boolean).join(": ") || String(error);
}

/** What the signed-in person may do here, in words, from their roles. */
function mayDo() {
  const may = [];
  if (holds(READER)) may.push("read everything here");
  if (holds(OPERATOR)) {
    may.push(holds(ADMIN) ? "act on rollouts (promoting fully too)" : "act on rollouts (promoting one step at a time)");
    may.push("replay events set aside");
  }
  if (holds(APPROVER)) may.push("approve or reject versions waiting for review");
  if (!may.length) {
    return "Your account holds no app role on this app, so the API refuses everything: ask an admin to " +
           `assign you one (${READER}, ${OPERATOR}, ${APPROVER} or ${ADMIN}).`;
  }
  const last = may.pop();
  return `You may ${may.length ? `${may.join(", ")} and ${last}` : last}.`;
}

function showWho() {
  const account = auth.account;
  document.getElementById("who-name").textContent = account.name || account.username;
  document.getElementById("who-username").textContent = account.username || "";
  document.getElementById("who-roles").textContent = auth.roles.length ? auth.roles.join(", ") : "no app role";
  document.getElementById("who-may").textContent = mayDo();
  document.getElementById("who-may").hidden = false;
  document.getElementById("who").hidden = false;
  document.getElementById("signin").hidden = true;
  document.querySelector("main").hidden = false;
  document.querySelector("header nav").hidden = false;
  document.body.dataset.auth = "signed-in";
  document.body.dataset.roles = auth.roles.join(" ");
}

/** Nothing but why the person is not signed in, and a button to sign in. */
function showSignIn(title, text, label, onclick) {
  document.querySelector("main").hidden = true;
  document.querySelector("header nav").hidden = true;
  document.getElementById("who").hidden = true;
  document.getElementById("who-may").hidden = true;
  document.getElementById("signin-title").textContent = title;
  document.getElementById("signin-text").textContent = text;
  const button = document.getElementById("sign-in");
  button.textContent = label;
  button.onclick = onclick;
  document.getElementById("signin").hidden = false;
  document.getElementById("status").textContent = "Not signed in.";
  document.body.dataset.auth = "signed-out";
}

// The API ------------------------------------------------------------------------------

/** An answer other than 2xx, with what the API said. Status 0: the app could not be reached. */
class ApiProblem extends Error {
  constructor(status, message, field) {
    super(message);
    this.status = status;
    this.field = field || null;
  }
  get notAvailable() { return [404, 405, 501].includes(this.status); }
  describe() {
    const where = this.field ? ` (field ${this.field})` : "";
    return this.status ? `${this.status}: ${this.message}${where}` : this.message;
  }
}

async function api(method, path, body) {
  const headers = {"authorization": `Bearer ${await accessToken()}`, "accept": "application/json"};
  if (body !== undefined) headers["content-type"] = "application/json";
  let response;
  try {
    response = await fetch(API + path, {method, headers, cache: "no-store", credentials: "same-origin",
                                        referrerPolicy: "no-referrer",
                                        body: body === undefined ? undefined : JSON.stringify(body)});
  } catch (error) {
    throw new ApiProblem(0, `The app cannot be reached (${error.message})`);
  }
  const text = await response.text();
  let payload = null;
  try { payload = text ? JSON.parse(text) : null; } catch { payload = null; }
  if (!response.ok) {
    const message = (payload && typeof payload.error === "string" && payload.error) || text.slice(0, 300)
      || response.statusText || "no message";
    const problem = new ApiProblem(response.status, message, payload && payload.field);
    if (response.status === 401 && await signInAgain(problem)) throw new SigningIn("signing in");
    throw problem;
  }
  return payload;
}

/** An answer, or the problem it raised: one failing route never blanks the others. */
async function attempt(method, path) {
  try { return {ok: true, value: await api(method, path)}; } catch (problem) {
    if (problem instanceof ApiProblem) return {ok: false, problem};
    throw problem;
  }
}

// Small DOM helpers ------------------------------------------------------------------

// Listings come a page at a time (the API's `next`): how many pages each list shows, one more per "more"
// (a list not named here, such as an endpoint's past rollouts `past:<key>`, shows one until then).
const shown = {rollouts: 1, models: 1, audit: 1, rejected: 1, ignored: 1, deadletter: 1, invalid: 1};
const pagesShown = (name) => shown[name] || 1;

/** The first `pagesShown(name)` pages of a listing, as one answer with the `next` of the last; `older`: each page
    holds the entries before the previous one's (the audit trail), so it goes first. */
async function pages(name, path, older = false) {
  const join = path.includes("?") ? "&" : "?";
  let answer = await attempt("GET", path);
  for (let page = 1; answer.ok && answer.value.next && page < pagesShown(name); page++) {
    const following = await attempt("GET", `${path}${join}next=${encodeURIComponent(answer.value.next)}`);
    if (!following.ok) return following;
    const items = older ? following.value.items.concat(answer.value.items)
                        : answer.value.items.concat(following.value.items);
    answer = {ok: true, value: {...following.value, items}};
  }
  return answer;
}

/** The "more" control under a list that has another page: it shows one page more, at once and at each refresh. */
function more(name, answer) {
  if (!answer || !answer.ok || !answer.value.next) return null;
  moreButtons[name] ||= h("button", {type: "button", class: "more", "data-more": name,
                                     onclick: () => { shown[name] = pagesShown(name) + 1; refreshSoon(); }}, "more");
  return moreButtons[name];  // one node, so that a list whose cards did not change is left in place
}
const moreButtons = {};

function h(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === undefined || value === null || value === false) continue;
    if (name === "class") node.className = value;
    else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else node.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

/** Show `children` in the element `id`; the same nodes in the same order are left in place (no layout). */
function replace(id, ...children) {
  const element = document.getElementById(id);
  const nodes = children.flat(Infinity).filter(Boolean);
  const current = element.childNodes || [];
  if (current.length === nodes.length && nodes.every((node, index) => current[index] === node)) return;
  element.replaceChildren(...nodes);
}

/* Formatting a date with toLocaleString builds a formatter each call, which was most of a refresh's drawing
   (a card shows hundreds of times): these are toLocaleTimeString's and toLocaleString's own defaults, built once. */
const CLOCK = {hour: "numeric", minute: "numeric", second: "numeric", hour12: false};
const TIME_OF_DAY = new Intl.DateTimeFormat([], CLOCK);
const DATE_AND_TIME = new Intl.DateTimeFormat([], {year: "numeric", month: "numeric", day: "numeric", ...CLOCK});

function time(value) {
  if (!value) return "";
  const date = new Date(value);
  if (isNaN(date)) return String(value);
  const today = new Date().toDateString() === date.toDateString();
  return (today ? TIME_OF_DAY : DATE_AND_TIME).format(date);
}

/** The cards of one list as last drawn, by key, with what each showed: a refresh draws again only the cards
    whose records changed and keeps the others as they are (their open tables too), so refreshing a quiet
    fleet costs reading it, not drawing it. What a card shows depends on its record, the day (times of today
    show no date) and the person's roles, which do not change while the page is open. */
class Drawn {
  constructor() { this.cards = new Map(); this.drawing = new Map(); }

  card(key, shows, draw) {
    const day = new Date().toDateString();
    const found = this.cards.get(key);
    // The very records last shown (as kept, not read again) show the same: no need to serialise them to know.
    const same = found && found.day === day && (shows === found.shows || (Array.isArray(shows)
      && Array.isArray(found.shows) && shows.length === found.shows.length
      && shows.every((part, index) => part === found.shows[index])));
    const signature = same ? found.signature : JSON.stringify([day, shows]);
    const card = found && found.signature === signature ? found.card : draw();
    this.drawing.set(key, {signature, card, shows, day});
    return card;
  }

  /** The list is drawn: forget the cards it no longer shows. */
  done() { this.cards = this.drawing; this.drawing = new Map(); }
}

const percent = (value) => (typeof value === "number" ? `${(100 * value).toFixed(1)}%` : "-");
const ms = (value) => (typeof value === "number" ? `${Math.round(value)} ms` : "-");
const words = (value) => String(value || "").replace(/_/g, " ");
const unavailable = (what) => h("p", {class: "unavailable"}, `${what}: not available on this version of the app.`);
const failed = (what, problem) => h("p", {class: "failed"}, `${what} could not be loaded: ${problem.describe()}`);
const openDetails = new Set();

function details(key, summary, ...content) {
  const node = h("details", {"data-key": key, open: openDetails.has(key)}, h("summary", {}, summary), ...content);
  node.addEventListener("toggle", () => (node.open ? openDetails.add(key) : openDetails.delete(key)));
  return node;
}

function table(header, rows, rowAttributes = () => ({})) {
  return h("table", {}, h("thead", {}, h("tr", {}, header.map((name) => h("th", {}, name)))),
           h("tbody", {}, rows.map((row, i) => h("tr", rowAttributes(i), row.map((cell) => h("td", {}, cell))))));
}

// Confirmation -----------------------------------------------------------------------

/** Ask before acting: says what will happen; resolves to the reason typed, or null when cancelled. */
function confirmAction(title, text, label, needsReason) {
  const dialog = document.getElementById("confirm");
  document.getElementById("confirm-title").textContent = title;
  document.getElementById("confirm-text").textContent = text;
  const reason = document.getElementById("confirm-reason");
  const ok = document.getElementById("confirm-ok");
  const cancel = document.getElementById("confirm-cancel");
  reason.value = "";
  reason.required = needsReason;
  reason.placeholder = needsReason ? "needed" : "optional";
  ok.textContent = label;
  ok.disabled = needsReason;
  const typed = () => { ok.disabled = needsReason && !reason.value.trim(); };
  reason.addEventListener("input", typed);
  return new Promise((resolve) => {
    const finish = (value) => {
      reason.removeEventListener("input", typed);
      ok.removeEventListener("click", onOk);
      cancel.removeEventListener("click", onCancel);
      dialog.removeEventListener("cancel", onCancel);
      dialog.close();
      resolve(value);
    };
    const onOk = () => finish(reason.value.trim());
    const onCancel = (event) => { event.preventDefault(); finish(null); };
    ok.addEventListener("click", onOk);
    cancel.addEventListener("click", onCancel);
    dialog.addEventListener("cancel", onCancel);
    dialog.showModal();
    reason.focus();
  });
}

/** Confirm, then call the API; the answer (or the refusal and why) is shown at the top of the page. */
async function act({title, text, label, path, body = {}, needsReason = false, outcome = () => "done"}) {
  const reason = await confirmAction(title, text, label, needsReason);
  if (reason === null) return;
  try {
    const answer = await api("POST", path, {...body, ...(reason ? {reason} : {})});
    notice(`${title}: ${outcome(answer)}.`);
  } catch (problem) {
    if (problem instanceof SigningIn) return;
    if (!(problem instanceof ApiProblem)) throw problem;
    notice(problem.notAvailable ? `${title}: not available on this version of the app.`
                                : `${title} was refused: ${problem.describe()}`, true);
  }
  refreshSoon();
}

let noticeTimer = null;

function notice(message, bad = false) {
  const box = document.getElementById("problem");
  box.hidden = false;
  box.className = bad ? "problem" : "notice";
  box.dataset.kind = bad ? "refused" : "done";
  box.textContent = message;
  clearTimeout(noticeTimer);
  if (!bad) noticeTimer = setTimeout(() => { if (box.dataset.kind === "done") box.hidden = true; }, 8000);
}

// Rollouts ---------------------------------------------------------------------------

function nameOf(deployment, record) {
  return deployment === record.deployment ? `${deployment} (new)` : deployment;
}

function liveSplit(record) {
  if (record.live) return {traffic: record.live.traffic, mirror: record.live.mirror_traffic, source: "now"};
  if (record.target) return {traffic: record.target.traffic, mirror: record.target.mirror, source: "target"};
  return {traffic: record.baseline.traffic, mirror: record.baseline.mirror, source: "before the rollout"};
}

/** One colour per deployment in both bars: the new one always the same, the others in name order. */
function colours(record, split) {
  const others = [...new Set([...Object.keys(record.baseline.traffic || {}), ...Object.keys(split.traffic || {}),
                              ...Object.keys(split.mirror || {})])].filter((n) => n !== record.deployment).sort();
  const colour = {[record.deployment]: 1};
  others.forEach((name, i) => { colour[name] = [0, 2, 3, 4, 5][i % 5]; });
  return (name) => colour[name] ?? 0;
}

function bars(record) {
  const split = liveSplit(record);
  const colour = colours(record, split);
  const legend = (entries) => h("ul", {class: "legend"}, Object.entries(entries || {}).filter(([, p]) => p > 0)
    .map(([name, share]) => h("li", {class: `part-${colour(name)}`, "data-deployment": name},
                              `${nameOf(name, record)} ${share}%`)));
  return h("div", {class: "traffic"},
    h("div", {class: "bar-row"}, h("span", {class: "bar-label"}, "Live traffic"),
      Charts.trafficBar("live traffic", split.traffic, "live", colour), legend(split.traffic)),
    h("div", {class: "bar-row"}, h("span", {class: "bar-label"}, "Mirror"),
      Charts.trafficBar("mirror traffic", split.mirror, "mirror", colour),
      Object.values(split.mirror || {}).some((p) => p > 0) ? legend(split.mirror) : h("span", {class: "muted"}, "none")),
    split.source === "now" ? null : h("p", {class: "muted"}, `(the endpoint cannot be read: traffic ${split.source})`));
}

function stepPlan(record) {
  const plan = record.plan || {};
  const steps = [];
  if (plan.mirror) steps.push({label: `mirror ${plan.mirror.percent}%`, phase: "mirror", index: -1});
  (plan.steps || []).forEach((share, index) => steps.push({label: `${share}%`, phase: "step", index, share}));
  const gates = new Set(plan.manual_gates || []);
  const history = record.history || [];
  // A chip is done only when its traffic was set (a first deployment and a full promotion skip some).
  const reached = (s) => (s.phase === "mirror" ? history.some((e) => e.action === "mirror")
    : history.some((e) => (e.traffic || {})[record.deployment] === s.share && e.action !== "rolled_back"));
  const current = (s) => (s.phase === "mirror" ? record.phase === "mirror"
                                               : record.phase === "step" && record.step === s.index);
  const position = (s) => (s.phase === "mirror" ? -1 : s.index);
  const at = record.phase === "mirror" ? -1 : record.phase === "step" ? record.step : -2;
  const stopped = ["rolled_back", "rolling_back", "failed"].includes(record.state);
  const live = record.state === "succeeded";
  const done = (s) => reached(s) && (live || !current(s));
  const skipped = (s) => !reached(s) && (position(s) < at || live);
  return h("ol", {class: "plan", "aria-label": "step plan"}, steps.map((s) => h("li", {
    class: [current(s) && !live ? (stopped ? "current stopped" : "current") : "",
            done(s) ? "done" : "", skipped(s) ? "skipped" : "", gates.has(s.share) ? "gated" : ""].join(" ").trim(),
    "data-step": s.label, title: skipped(s) ? "skipped" : gates.has(s.share) ? "waits for approval" : ""},
  s.label, gates.has(s.share) ? " (approval)" : "", skipped(s) ? " (skipped)" : "",
  current(s) && stopped ? " (stopped here)" : "")));
}

/** The entry that says how the rollout ended: not the later housekeeping of deleting what it replaced. */
function ending(record) {
  return [...(record.history || [])].reverse().find((e) => e.action !== "retired") || {};
}

/** Why a rollout takes 100 % without analysis: a first deployment has nothing to compare with, or who promoted it. */
function skippedBecause(record) {
  if (!Object.values(record.baseline.traffic || {}).some((share) => share > 0)) {
    return "a first deployment on an empty endpoint has nothing to compare with or roll back to";
  }
  const entry = [...(record.history || [])].reverse().find((e) => ["promote", "promote-full"].includes(e.action)) || {};
  return `promoted${entry.action === "promote-full" ? " fully" : ""} by ${entry.actor || "?"}: ${entry.reason || ""}`;
}

const plural = (count, one, many = `${one}s`) => `${count} ${count === 1 ? one : many}`;

function why(record) {
  const last = (record.history || []).at(-1) || {};
  const by = last.actor ? ` (${last.actor})` : "";
  switch (record.state) {
    case "rolled_back": return `Rolled back: ${record.rollback_reason || last.reason || "no reason recorded"}`;
    case "rolling_back": return `Rolling back: ${record.rollback_reason || last.reason}`;
    case "failed": return `Failed: ${last.reason}`;
    case "paused": {
      const pause = [...record.history].reverse().find((e) => e.action === "pause") || last;
      return `Paused${pause.actor ? ` by ${pause.actor}` : ""}: ${pause.reason}. Nothing moves until it is resumed.`;
    }
    case "awaiting_approval": return `Waiting for approval: ${last.reason}`;
    case "succeeded": {
      const end = ending(record);
      const retired = record.retired ? `; ${(last.action === "retired" && last.reason) || "previous deployments deleted"}` : "";
      return `Live: ${end.reason}${end.actor ? ` (${end.actor})` : ""}${retired}`;
    }
    default: {
      const plan = record.plan || {};
      if (record.phase === "provisioning") return `Provisioning deployment ${record.deployment}.`;
      if (record.skip_analysis) {
        return `Taking 100% without analysis: ${skippedBecause(record)}. The next rollout tick finishes it.`;
      }
      const mirror = record.phase === "mirror";
      const where = mirror ? "the mirror phase" : `step ${plan.steps ? plan.steps[record.step] : "?"}%`;
      const bake = mirror && plan.mirror ? plan.mirror.bake_seconds : plan.bake_seconds;
      const since = record.step_started ? ` from ${time(record.step_started)}` : "";
      return `Baking ${where} (bake ${bake} s${since}); the first rollout tick after the bake judges it. ` +
             `Last: ${words(last.action).replace(":", " ")} — ${last.reason}${by}`;
    }
  }
}

function analyses(record) {
  const entries = (record.history || []).filter((e) => e.action.startsWith("analysis:") && e.metrics);
  const gates = (record.plan && record.plan.gates) || {};
  // Each point is judged against its own gate; an analysis without enough requests is inconclusive throughout.
  const point = (name, gate) => entries.map((e) => {
    const value = e.metrics[name];
    const verdict = typeof gate === "number" && value > gate ? "fail"
      : e.action === "analysis:inconclusive" ? "inconclusive" : "pass";
    return {value, result: verdict, label: time(e.time)};
  });
  const charts = [Charts.series("error rate", point("error_rate", gates.max_error_rate), gates.max_error_rate, percent)];
  if (gates.max_latency_p95_ms || entries.some((e) => typeof e.metrics.latency_p95_ms === "number")) {
    charts.push(Charts.series("latency p95", point("latency_p95_ms", gates.max_latency_p95_ms),
                              gates.max_latency_p95_ms || null, ms));
  }
  if (gates.max_latency_p99_ms) {
    charts.push(Charts.series("latency p99", point("latency_p99_ms", gates.max_latency_p99_ms),
                              gates.max_latency_p99_ms, ms));
  }
  const rows = entries.slice(-12).reverse().map((e) => [
    time(e.time), h("span", {class: `result result-${e.action.slice(9)}`}, e.action.slice(9)),
    String(e.metrics.requests ?? "-"), String(e.metrics.errors ?? "-"), percent(e.metrics.error_rate),
    ms(e.metrics.latency_p95_ms), e.reason]);
  const limits = [`error rate ≤ ${percent(gates.max_error_rate)}`, `at least ${gates.min_requests} requests`,
                  gates.max_latency_p95_ms ? `p95 ≤ ${gates.max_latency_p95_ms} ms` : null,
                  gates.max_latency_p99_ms ? `p99 ≤ ${gates.max_latency_p99_ms} ms` : null].filter(Boolean);
  return h("div", {class: "analyses"},
    h("h4", {}, `Analyses (${entries.length}) against the gates: ${limits.join(", ")}`),
    h("div", {class: "charts"}, charts),
    entries.length ? table(["time", "result", "requests", "errors", "error rate", "p95", "why"], rows,
                           (i) => ({class: "analysis"}))
                   : h("p", {class: "muted"}, noAnalysis(record)));
}

function noAnalysis(record) {
  if (record.skip_analysis) return `No analysis: ${skippedBecause(record)}.`;
  if (record.phase === "provisioning") return "No analysis yet: the deployment is still provisioning.";
  if (["rolled_back", "rolling_back", "failed"].includes(record.state)) return "No analysis was made.";
  return "No analysis yet: each step is judged at the first rollout tick after its bake time.";
}

/* The latest analysis against the champion (shared/domain/judge.py): each metric's classification with
   both deployments' minutes, the weighted score, and how close the step is to rolling back. */
function comparison(record) {
  const analysis = record.analysis;
  const judged = analysis && analysis.comparison;
  const close = analysis && analysis.closeness;
  if (!judged) return close ? h("p", {class: "closeness", "data-field": "closeness"}, `Rollback: ${close.text}`) : null;
  const rule = (record.plan && record.plan.compare) || {};
  const format = (line) => (line.metric.startsWith("RequestLatency") ? ms
    : line.label.startsWith("errors") ? percent : (v) => (typeof v === "number" ? v.toFixed(1) : "-"));
  const ratio = (v) => (typeof v === "number" ? `${v.toFixed(2)}x` : "-");
  const rows = judged.metrics.map((line) => [
    line.label, h("span", {class: `result class-${line.classification}`}, line.classification),
    format(line)(line.canary), format(line)(line.champion), ratio(line.ratio),
    line.ratio_low == null ? "-" : `${ratio(line.ratio_low)} – ${ratio(line.ratio_high)}`,
    `${line.direction === "increase" ? "+" : "−"}${Math.round(line.tolerance * 100)}%`, String(line.weight),
    line.needs_minutes ? `about ${line.needs_minutes} min` : ""]);
  const score = judged.score == null ? "no score yet" : `score ${Math.round(judged.score)}`;
  return h("div", {class: "comparison", "data-verdict": judged.verdict},
    h("h4", {}, `Against ${judged.champion}: ${judged.verdict}, ${score} (pass at ${rule.pass_score ?? 95}, ` +
                `marginal at ${rule.marginal_score ?? 75}), over ${judged.minutes} minutes; false-rollback rate ` +
                `${(judged.alpha * 100).toFixed(2)}% this phase`),
    close ? h("p", {class: "closeness", "data-field": "closeness"}, `Rollback: ${close.text}`) : null,
    h("div", {class: "charts"}, judged.metrics.map((line) => Charts.pair(
      line.label, line.canary_series || [], line.champion_series || [], line.classification, format(line)))),
    table(["metric", "class", "canary", "champion", "ratio", "bounds", "tolerance", "weight", "decides in"], rows,
          () => ({class: "comparison-metric"})));
}

function actionText(action, record) {
  const who = `${record.model} v${record.version} on ${record.workspace}/${record.endpoint}`;
  const before = Object.entries(record.baseline.traffic || {}).map(([n, p]) => `${n} ${p}%`).join(", ") || "no traffic";
  const shares = (split) => Object.entries(split || {}).filter(([, p]) => p > 0).map(([n, p]) => `${n} ${p}%`);
  const mirrored = shares(liveSplit(record).mirror);
  const now = (shares(liveSplit(record).traffic).join(", ") || "no traffic")
    + (mirrored.length ? `, mirror ${mirrored.join(", ")}` : "");
  const next = (record.plan.steps || [])[record.step + 1];
  return {
    pause: `The rollout of ${who} stops where it is: traffic stays as it is now (${now}) and no step advances ` +
           "until someone resumes it.",
    resume: `The rollout of ${who} goes on: the current step bakes again, then the next analysis decides.`,
    approve: `The rollout of ${who} may go on to its next step: ${record.deployment} takes ${next}% of the traffic.`,
    promote: next === undefined
      ? `${record.deployment} keeps 100% of ${record.endpoint} and the rollout finishes without another analysis.`
      : `${record.deployment} takes the next step's share of ${record.endpoint} now (${next}%), without waiting ` +
        "for the current step's analysis; the new step is still analysed and can still roll back.",
    abort: `The rollout of ${who} is rolled back: the traffic from before it is restored (${before}); ` +
           `${record.deployment} is kept for diagnosis.`,
    undo: `The finished rollout of ${who} is undone: the traffic from before it is restored (${before}).`,
  }[action];
}

/* The rollout's actions for an operator (an admin also promotes fully); none for the others, whom the
   API would refuse (403). */
function actionButtons(record) {
  if (!holds(OPERATOR)) return null;
  const path = `ops/rollouts/${record.workspace}/${record.endpoint}`;
  const buttons = Object.entries(ACTIONS).map(([action, states]) => {
    const fits = states.includes(record.state) && !(action === "undo" && record.retired)
      && !(action === "promote" && record.phase === "provisioning");
    return h("button", {
      type: "button", "data-action": action, disabled: !fits,
      class: ["abort", "undo", "promote"].includes(action) ? "danger" : "",
      title: fits ? "" : `not while the rollout is ${words(record.state)}`,
      onclick: () => act({title: `${action[0].toUpperCase()}${action.slice(1)} the rollout`,
                          text: actionText(action, record), label: action[0].toUpperCase() + action.slice(1),
                          path: `${path}/${action}`,
                          outcome: (answer) => `done; the rollout is ${words(answer.state)}`}),
    }, action);
  });
  if (holds(ADMIN)) {
    const fits = ACTIONS.promote.includes(record.state) && record.phase !== "provisioning";
    const last = (record.plan.steps || []).at(-1);
    buttons.push(h("button", {
      type: "button", "data-action": "promote-full", disabled: !fits, class: "danger",
      title: fits ? `${ADMIN} only` : `not while the rollout is ${words(record.state)}`,
      onclick: () => act({title: "Promote the rollout fully", label: "Promote fully", path: `${path}/promote`,
                          body: {full: true}, needsReason: true,
                          text: `${record.deployment} takes ${last}% of ${record.endpoint} now and the rollout ` +
                                "finishes without another analysis: every step, analysis and approval left is " +
                                "skipped.",
                          outcome: (answer) => `done; the rollout is ${words(answer.state)}`}),
    }, "promote fully"));
  }
  return h("div", {class: "actions"}, buttons);
}

function historyTable(record) {
  const rows = [...(record.history || [])].reverse().map((e) => [time(e.time), e.action, e.actor, e.reason]);
  return details(`history:${record.key}`, `Full history (${plural(rows.length, "entry", "entries")})`,
                 table(["time", "action", "by", "why"], rows, () => ({class: "history-entry"})));
}

function pastRollouts(record, past) {
  if (!past) return null;
  if (!past.ok) {
    return past.problem.notAvailable ? unavailable("Past rollouts") : failed("Past rollouts", past.problem);
  }
  const items = (past.value.items || []).filter((r) => r.deployment !== record.deployment || r.started !== record.started);
  const count = `${items.length}${past.value.next ? "+" : ""}`;
  return details(`past:${record.key}`, `Past rollouts (${count})`, items.length
    ? table(["started", "model", "state", "finished", "why"], items.map((r) => [
        time(r.started), `${r.model} v${r.version}`, h("span", {class: `state state-${r.state}`}, words(r.state)),
        time(r.finished), r.rollback_reason || ending(r).reason || ""]))
    : h("p", {class: "muted"}, "None before this one."), more(`past:${record.key}`, past));
}

function rolloutCard(record, past) {
  return h("article", {class: "card rollout", "data-rollout": record.key, "data-state": record.state,
                       "data-deployment": record.deployment, "data-phase": record.phase},
    h("header", {},
      h("h3", {}, `${record.workspace}/${record.endpoint}`),
      h("span", {class: `state state-${record.state}`, "data-field": "state"}, words(record.state)),
      h("span", {class: "muted"}, `${record.model} v${record.version} as ${record.deployment}, started ${time(record.started)}`)),
    h("p", {class: `why why-${record.state}`, "data-field": "why"}, why(record)),
    bars(record), stepPlan(record), actionButtons(record), comparison(record), analyses(record), historyTable(record),
    pastRollouts(record, past));
}

/* Each endpoint's full record (with its live traffic) and past rollouts, as last read. The list, read on
   every refresh, says what changed: an endpoint is read again when its rollout moved (a new history entry,
   state, step), while it is active or has just ended (its traffic settles), and at least every REREAD_MS
   (someone may change an ended rollout's traffic by hand). Its past rollouts change only when a rollout
   starts or ends, which the list shows (its id and state). So a refresh of 20 quiet endpoints is one request,
   not 41. The quiet endpoints due again are re-read REREADS_PER_REFRESH at a time, the longest unread first:
   all read at the page's first load, they would otherwise all fall due on the same refresh (100 requests for
   a page of 100 endpoints); with a page of 100 at the default 2 s, each is re-read about every 40 s.

   The endpoints the last list said to read are read together with the list, not after it: a refresh then
   takes one round of requests, not two. One that the new list shows moved since (its signature differs from
   the record read) is read again after the list, as is one that only the new list says to read. */
const REREAD_MS = 30000;
const REREADS_PER_REFRESH = 5;
const PAST_PAGE = 20;  // past rollouts a page: the newest, then 20 more per "more"
const rolloutCache = new Map();
let lastRollouts = [];  // the summaries the last list gave

function moved(summary) {
  const last = (summary.history || []).at(-1) || {};
  return [summary.id, summary.state, summary.phase, summary.step, summary.finished, last.time, last.action].join("|");
}

function settled(summary, now) {
  const finished = summary.finished ? Date.parse(summary.finished) : NaN;
  return !ACTIVE.includes(summary.state) && !(now - finished < REREAD_MS);
}

const endpointPath = (summary) => `ops/rollouts/${summary.workspace}/${summary.endpoint}`;

/** The endpoints of `summaries` to read: those never read or that moved since, those active or just ended,
    and the REREADS_PER_REFRESH quiet ones due again, the longest unread first. */
function toRead(summaries, now) {
  const stale = (summary) => {
    const cached = rolloutCache.get(summary.key);
    return !cached || cached.moved !== moved(summary) || !settled(summary, now);
  };
  const lastRead = (summary) => rolloutCache.get(summary.key).at;
  const due = summaries.filter((summary) => !stale(summary) && now - lastRead(summary) >= REREAD_MS)
    .sort((a, b) => lastRead(a) - lastRead(b)).slice(0, REREADS_PER_REFRESH);
  return summaries.filter(stale).concat(due);
}

/** The endpoint's card data: its full record read `early` (with the list), read now when `read` or when the
    early one moved since the list, or else as last read; its past rollouts read when a rollout started or ended. */
async function loadRollout(summary, now, early, read) {
  const path = endpointPath(summary);
  const cached = rolloutCache.get(summary.key);
  // The past rollouts change when a rollout starts or ends; "more" under them reads them again, a page longer.
  const pastOf = `${summary.id}|${summary.state}|${pagesShown(`past:${summary.key}`)}`;
  const reusePast = cached && cached.past.ok && cached.pastOf === pastOf;
  const pastRead = reusePast ? cached.past : pages(`past:${summary.key}`, `${path}/history?limit=${PAST_PAGE}`);
  let full = early ? await early : null;
  if (full && full.ok && moved(full.value) !== moved(summary)) full = null;  // it moved since: read it again
  const fresh = Boolean(early) || read || !cached;
  if (!full) full = fresh ? await attempt("GET", path) : cached.full;
  const past = await pastRead;
  if (full.ok) {
    rolloutCache.set(summary.key, {moved: fresh ? moved(full.value) : cached.moved, full, at: fresh ? now : cached.at,
                                   past, pastOf});
  }
  return {record: full.ok ? full.value : summary, past, problem: full.ok ? null : full.problem};
}

async function loadRollouts() {
  const now = Date.now();
  const listed = pages("rollouts", "ops/rollouts");
  const early = new Map(toRead(lastRollouts, now).map((summary) => {
    const read = attempt("GET", endpointPath(summary));
    read.catch(() => {});  // awaited below, unless the list fails first
    return [summary.key, read];
  }));
  const list = await listed;
  if (!list.ok) return {problem: list.problem};
  const summaries = list.value.items;
  lastRollouts = summaries;
  const keys = new Set(summaries.map((summary) => summary.key));
  for (const key of rolloutCache.keys()) if (!keys.has(key)) rolloutCache.delete(key);
  const later = new Set(toRead(summaries, now).map((summary) => summary.key).filter((key) => !early.has(key)));
  return {items: await Promise.all(summaries.map((summary) => loadRollout(summary, now, early.get(summary.key),
                                                                          later.has(summary.key)))), list};
}

const rolloutCards = new Drawn();

function drawRollouts(loaded) {
  if (loaded.problem) return replace("rollouts", failed("Rollouts", loaded.problem));
  if (!loaded.items.length) return replace("rollouts", h("p", {class: "empty"}, "No rollout yet."));
  replace("rollouts", loaded.items.map(({record, past, problem}) => [
    problem ? failed(`The rollout of ${record.endpoint}`, problem) : null,
    rolloutCards.card(record.key, [record, past && (past.ok ? past.value : past.problem.describe())],
                      () => rolloutCard(record, past))]),
    more("rollouts", loaded.list));
  rolloutCards.done();
}

// Models -----------------------------------------------------------------------------

function stagePath(record) {
  const reached = new Set((record.history || []).map((e) => e.stage).concat(record.stage));
  const ending = ENDINGS.includes(record.stage) ? record.stage : null;
  const path = STAGES.filter((stage) => stage !== "awaiting_review" || reached.has("awaiting_review"));
  const shown = ending ? path.filter((stage) => reached.has(stage)).concat(ending) : path;
  return h("ol", {class: "stages"}, shown.map((stage) => h("li", {
    class: [stage === record.stage ? "current" : "", reached.has(stage) ? "reached" : "",
            ENDINGS.includes(stage) ? "ending" : ""].join(" ").trim(), "data-stage": stage}, words(stage))));
}

function jobLink(record) {
  const url = record.test_job_url || record.studio_url;
  if (!record.test_job) return "-";
  return url && /^https?:\/\//.test(url) ? h("a", {href: url, target: "_blank", rel: "noopener noreferrer"},
                                              record.test_job) : h("code", {}, record.test_job);
}

function gateTable(record) {
  const gates = record.gates;
  if (!gates || !Array.isArray(gates.header)) return h("span", {class: "muted"}, "no gate table");
  return table(gates.header, gates.rows, (i) => ({class: String(gates.rows[i].at(-1)).startsWith("pass")
                                                   ? "gate-pass" : "gate-fail"}));
}

function versionRow(record) {
  const last = (record.history || []).at(-1) || {};
  const key = `${record.model}:${record.version}`;
  return h("article", {class: "card version", "data-version": key, "data-stage": record.stage},
    h("header", {}, h("h4", {}, `${record.model} v${record.version}`),
      h("span", {class: `stage stage-${record.stage}`}, words(record.stage)),
      h("span", {class: "muted"}, `${record.workspace}, ${time(last.time)}`)),
    stagePath(record),
    h("p", {class: "why"}, last.reason || ""),
    h("dl", {}, h("dt", {}, "Test job"), h("dd", {}, jobLink(record)),
      record.promoted_to ? [h("dt", {}, "Promoted to"), h("dd", {}, Object.keys(record.promoted_to).join(", ") || "-")] : null,
      record.rollout ? [h("dt", {}, "Rollout"), h("dd", {}, h("a", {href: "#rollouts"}, record.rollout))] : null),
    record.test_job_log ? h("div", {class: "job-log"}, h("h5", {}, "The end of the test job's log"),
                            h("pre", {"data-field": "test-job-log"}, record.test_job_log)) : null,
    details(`gates:${key}`, "Gate table", gateTable(record)),
    details(`stages:${key}`, `Stage history (${(record.history || []).length})`,
      table(["time", "stage", "why", "cause"], [...(record.history || [])].reverse()
        .map((e) => [time(e.time), words(e.stage), e.reason, e.cause]))));
}

/** The app role that decides on a version's review: the rule's `approvers`, as the app wrote it when the
    version began to wait ("waits for review by a holder of the app role ..."), MLOps.Approver by default. */
function approversOf(record) {
  const waiting = [...(record.history || [])].reverse().find((e) => e.stage === "awaiting_review") || {};
  const named = /by a holder of the app role ([A-Za-z0-9_.:-]+)/.exec(waiting.reason || "");
  return named ? named[1] : APPROVER;
}

function reviewCard(record) {
  const who = `${record.model} v${record.version}`;
  const path = `ops/lifecycles/${encodeURIComponent(record.model)}/${encodeURIComponent(record.version)}/review`;
  const last = (record.history || []).at(-1) || {};
  const approvers = approversOf(record);
  return h("article", {class: "card review", "data-review": `${record.model}:${record.version}`},
    h("header", {}, h("h4", {}, who), h("span", {class: "stage stage-review"}, words(record.stage))),
    h("p", {class: "why"}, last.reason || ""),
    record.registered_by ? h("p", {class: "muted"}, `Registered by ${record.registered_by}.`) : null,
    details(`review-gates:${who}`, "Gate table", gateTable(record)),
    !holds(approvers) ? h("p", {class: "muted", "data-field": "may-not-review"},
                          `Approving or rejecting it needs the app role ${approvers}.`) :
    h("div", {class: "actions"},
      h("button", {type: "button", "data-review-action": "approve", onclick: () => act({
        title: `Approve ${who}`, label: "Approve", path, body: {decision: "approve"}, needsReason: true,
        text: `${who} passed its gates; approved, it is promoted along its rule's path, then rolled out if its ` +
              "rule has a rollout.",
        outcome: (answer) => reviewOutcome(who, "approve", answer)})}, "approve"),
      h("button", {type: "button", class: "danger", "data-review-action": "reject", onclick: () => act({
        title: `Reject ${who}`, label: "Reject", path, body: {decision: "reject"}, needsReason: true,
        text: `${who} is rejected: it is tagged so, ops are told, and it is never deployed.`,
        outcome: (answer) => reviewOutcome(who, "reject", answer)})}, "reject")));
}

/** What a review's answer tells the person: the stage the decision moved the version to; or, when another
    reconcile held the version past the app's wait, that the decision is recorded and goes on from there. */
function reviewOutcome(who, decision, answer) {
  if (answer.stage !== "awaiting_review") return `${who} is ${words(answer.stage)}`;
  return `${who}: your ${decision === "approve" ? "approval" : "rejection"} is recorded; the app was busy with ` +
         "this version and carries the decision on within moments (the page shows it)";
}

const versionCards = new Drawn(), reviewCards = new Drawn(), ruleSections = new Drawn();

function drawModels(loaded) {
  if (!loaded.ok) {
    replace("reviews", failed("Versions waiting for review", loaded.problem));
    return replace("models", failed("Model lifecycles", loaded.problem));
  }
  const items = loaded.value.items;
  const waiting = loaded.value.waiting || items.filter((r) => r.stage === "awaiting_review");
  replace("reviews", waiting.length ? waiting.map((record) => reviewCards.card(
    `${record.model}:${record.version}`, record, () => reviewCard(record))) : h("p", {class: "empty"}, "None waiting."));
  reviewCards.done();
  if (!items.length) return replace("models", h("p", {class: "empty"}, "No model version yet."));
  const byRule = new Map();
  for (const record of items) {
    if (!byRule.has(record.rule)) byRule.set(record.rule, []);
    byRule.get(record.rule).push(record);
  }
  const order = (r) => r.version.split(".").map(Number);
  const newest = (a, b) => { const x = order(a), y = order(b);
    for (let i = 0; i < Math.max(x.length, y.length); i++) if ((y[i] || 0) !== (x[i] || 0)) return (y[i] || 0) - (x[i] || 0);
    return b.version.localeCompare(a.version); };
  replace("models", [...byRule.entries()].sort().map(([rule, records]) => {
    const cards = records.sort(newest).map((record) => versionCards.card(
      `${record.model}:${record.version}`, record, () => versionRow(record)));
    return ruleSections.card(rule, records, () => h("section", {class: "rule", "data-rule": rule},
                                                    h("h3", {}, `Rule ${rule}`), cards));
  }), more("models", loaded));
  versionCards.done();
  ruleSections.done();
}

/** A page of the lifecycles (more with "more"), and every version waiting for review (one filtered query). */
async function loadModels() {
  const [listed, waiting] = await Promise.all([
    pages("models", "ops/lifecycles"), attempt("GET", "ops/lifecycles?stage=awaiting_review&limit=1000")]);
  if (!listed.ok) return listed;
  if (!waiting.ok) return waiting;
  return {ok: true, value: {...listed.value, waiting: waiting.value.items}};
}

// Audit ------------------------------------------------------------------------------

function auditQuery() {
  const form = new FormData(document.getElementById("audit-filter"));
  const query = new URLSearchParams({limit: "300"});
  for (const name of ["action", "correlation_id"]) if (form.get(name)) query.set(name, String(form.get(name)).trim());
  return query;
}

function drawAudit(loaded) {
  if (!loaded.ok) return replace("audit", failed("The audit trail", loaded.problem));
  const form = new FormData(document.getElementById("audit-filter"));
  const model = String(form.get("model") || "").trim().toLowerCase();
  const endpoint = String(form.get("endpoint") || "").trim().toLowerCase();
  const select = document.querySelector("#audit-filter select[name=action]");
  const known = new Set([...select.options].map((o) => o.value));
  for (const action of [...new Set(loaded.value.items.map((e) => e.action))].sort()) {
    if (!known.has(action)) select.append(h("option", {value: action}, action));
  }
  const subject = (e) => String(e.subject).toLowerCase();
  const items = loaded.value.items.filter((e) => (!model || subject(e).includes(model))
    && (!endpoint || subject(e).includes(endpoint))).reverse();
  replace("audit", auditTable.card("audit", items, () => [
    h("p", {class: "muted"}, `${items.length} entries, newest first`), table(
      ["time", "action", "outcome", "subject", "why", "correlation id"],
      items.map((e) => [time(e.time), e.action, e.outcome, e.subject, e.reason,
        h("a", {href: "#audit", class: "correlation", title: "show only this correlation id",
                onclick: () => { document.querySelector("#audit-filter [name=correlation_id]").value = e.correlation_id;
                                 refreshSoon(); }}, e.correlation_id)]),
      (i) => ({class: "audit-entry", "data-action": items[i].action}))]), more("audit", loaded));
  auditTable.done();
}
const auditTable = new Drawn();

// Set aside --------------------------------------------------------------------------

const setAsideSections = new Drawn();

function drawSetAside(loaded) {
  replace("setaside", SET_ASIDE.map((kind) => setAsideSections.card(kind, loaded[kind].ok ? loaded[kind].value
                                                                    : loaded[kind].problem.describe(), () => {
    const answer = loaded[kind];
    const title = {rejected: "Rejected (malformed)", ignored: "Ignored (not a type the app handles)",
                   deadletter: "Dead-lettered (failed 5 times)",
                   invalid: "Invalid records (left out of listings; fix or delete the record)"}[kind];
    if (!answer.ok) {
      return h("section", {class: "setaside", "data-kind": kind}, h("h3", {}, title),
               answer.problem.notAvailable ? unavailable("Listing events set aside")
                                           : failed(title, answer.problem));
    }
    const items = answer.value.items || [];
    return h("section", {class: "setaside", "data-kind": kind}, h("h3", {}, `${title}: ${items.length}`),
      items.length ? table(["time", "event", "subject", "why", "key", ""], items.map((item) => [
        time(item.time), item.event_type || "-", item.subject || "-", item.reason, h("code", {}, item.key),
        !holds(OPERATOR) || kind === "invalid" ? "" : h("button", {type: "button", "data-replay": item.key, onclick: () => act({
          title: `Replay ${kind} item ${item.key}`, label: "Replay", path: "ops/events/replay", body: {kind, key: item.key},
          text: kind === "deadletter"
            ? "The work item is put back on the work queue and runs again; it leaves the dead letters once queued."
            : "The event goes through intake again as if Event Grid delivered it now; it leaves this list if it " +
              "is accepted, and is set aside anew if it is refused again.",
          outcome: (answer) => `outcome ${answer.outcome}`})}, "replay")]),
      (i) => ({class: "setaside-item"})) : h("p", {class: "empty"}, "None."), more(kind, answer));
  })));
  setAsideSections.done();
}

// The loop ---------------------------------------------------------------------------

let refreshes = 0;
let timer = null;
let running = false;
let lastGood = null;

function currentView() {
  return (window.location.hash || "#rollouts").slice(1);
}

function showView() {
  const view = currentView();
  for (const section of document.querySelectorAll("main .view")) section.hidden = section.dataset.view !== view;
  for (const link of document.querySelectorAll("header nav a")) {
    link.classList.toggle("active", link.dataset.view === view);
  }
}

/** A problem that stops every view (a refused token or role, the app unreachable or failing). */
function blocking(results) {
  const problems = results.filter((r) => r && !r.ok && !r.problem.notAvailable).map((r) => r.problem);
  return problems.find((p) => [0, 401, 403].includes(p.status) || p.status >= 500) || null;
}

function explain(problem) {
  if (problem.status === 401) {
    return `The app refused your sign-in again (401: ${problem.message}). Sign out and sign in again; if ` +
           "this goes on, the app's sign-in settings (MLOPS_AUTH_*) do not match the registration it signs " +
           "you in with.";
  }
  if (problem.status === 403) return `Access refused (403): ${problem.message}`;
  if (problem.status === 0) return `${problem.message}. Retrying every ${EVERY_MS / 1000} s.`;
  return `The API answered ${problem.describe()}. Retrying every ${EVERY_MS / 1000} s.`;
}

/* What each view reads and how it draws it: a refresh reads only the view on screen (switching views
   refreshes at once), so the rollouts view does not pay for 200 lifecycles and 1,000 audit entries. */
const VIEWS = {
  rollouts: {load: loadRollouts, results: (r) => [r.problem ? {ok: false, problem: r.problem} : null],
             draw: drawRollouts},
  models: {load: loadModels, results: (r) => [r], draw: drawModels},
  audit: {load: () => pages("audit", `ops/audit?${auditQuery()}`, true), results: (r) => [r], draw: drawAudit},
  setaside: {
    load: async () => Object.fromEntries(await Promise.all(SET_ASIDE.map(
      async (kind) => [kind, await pages(kind, `ops/events/setaside?kind=${kind}&limit=100`)]))),
    results: (r) => Object.values(r), draw: drawSetAside,
  },
};

let again = false;

async function refresh() {
  if (running) {
    again = true;  // asked for while one runs (a view switch, an action): another follows at once
    return;
  }
  running = true;
  again = false;
  clearTimeout(timer);
  let leaving = false;
  try {
    const view = VIEWS[currentView()] || VIEWS.rollouts;
    let loaded;
    try {
      loaded = await view.load();
    } catch (error) {
      if (!(error instanceof SigningIn)) throw error;
      leaving = true;
      document.getElementById("status").textContent = "Signing in\u2026";
      return;
    }
    const stop = blocking(view.results(loaded));
    const status = document.getElementById("status");
    const box = document.getElementById("problem");
    if (stop) {
      box.hidden = false;
      box.className = "problem";
      box.dataset.kind = "api";
      box.textContent = explain(stop);
      status.textContent = lastGood ? `Showing data from ${time(lastGood)}; the last update failed.` : "No data.";
      document.body.dataset.health = "error";
    } else {
      if (box.dataset.kind === "api") box.hidden = true;
      view.draw(loaded);
      lastGood = new Date();
      status.textContent = `Updated ${time(lastGood)}, every ${EVERY_MS / 1000} s`;
      document.body.dataset.health = "ok";
    }
  } finally {
    refreshes += 1;
    document.body.dataset.refreshes = String(refreshes);
    running = false;
    clearTimeout(timer);
    if (!leaving) timer = setTimeout(refresh, again ? 50 : EVERY_MS);
  }
}

/** Refresh in `delay` ms, or right after the refresh that runs now (it may have read the old state). */
function refreshSoon(delay = 50) {
  if (running) {
    again = true;
    return;
  }
  clearTimeout(timer);
  timer = setTimeout(refresh, delay);
}

document.addEventListener("DOMContentLoaded", async () => {
  document.getElementById("sign-out").addEventListener("click", () => signOut());
  // Before anything reads the URL's fragment (the views' names): it may hold the sign-in's answer.
  if (!await signIn()) return;
  const filter = document.getElementById("audit-filter");
  filter.addEventListener("submit", (event) => { event.preventDefault(); refreshSoon(); });
  filter.addEventListener("change", () => refreshSoon());
  filter.addEventListener("reset", () => setTimeout(() => refreshSoon(), 0));
  filter.addEventListener("input", () => refreshSoon(400));
  window.addEventListener("hashchange", () => { showView(); refreshSoon(); });
  showView();
  refresh();
});
