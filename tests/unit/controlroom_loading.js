/* Runs the control room's Rollouts loading (app.js's loadRollouts, unchanged) in Node against a scripted API, for
   tests/unit/test_controlroom_loading.py. Reads {refreshes: [{now, answers: {path: [answer, ...]}}]} as JSON on
   stdin: at each refresh the clock reads `now` (ms) and each request of `path` gets its next answer (the last one
   again when they run out). Prints, for each refresh, its requests and answers in order (`> path` when asked,
   `< path` when answered) and what each card shows: [{events, cards: [{key, last, problem}]}], `last` being the
   reason of the record's last history entry. With {drawn: [[key, shows, same]]} instead, it draws cards through
   app.js's Drawn and prints which draw each call showed. */
"use strict";
const fs = require("fs");
const path = require("path");
const vm = require("vm");

const input = JSON.parse(fs.readFileSync(0, "utf8"));
let clock = 0;
let answers = {};
let events = [];
class FakeDate extends Date {
  constructor(...args) { if (args.length) super(...args); else super(clock); }
  static now() { return clock; }
}
async function fetch(url) {
  const where = url.replace(/^\/api\//, "");
  events.push(`> ${where}`);
  const queue = answers[where] || [{status: 404, body: {error: "not found"}}];
  const answer = queue.length > 1 ? queue.shift() : queue[0];
  const status = answer.status || 200;
  await new Promise((resolve) => setTimeout(resolve, 1));
  events.push(`< ${where}`);
  return {ok: status < 400, status, statusText: "", text: async () => JSON.stringify(answer.body || answer)};
}
const node = () => ({append() {}, replaceChildren() {}, setAttribute() {}, addEventListener() {}, dataset: {}});
const context = {
  window: {location: {href: "http://127.0.0.1:7071/api/ops/controlroom", origin: "http://127.0.0.1:7071"},
           addEventListener() {}},
  document: {createElement: node, createElementNS: node, createTextNode: node, addEventListener() {},
             getElementById: node, querySelector: node, body: {dataset: {}}},
  Node: Object, sessionStorage: {getItem: () => null, setItem() {}, removeItem() {}}, msal: {CacheLookupPolicy: {}},
  fetch, console, URL, setTimeout, clearTimeout, Date: FakeDate, Intl, atob, TextDecoder,
};
vm.createContext(context);
const folder = path.resolve(__dirname, "../../shared/ops/controlroom");
for (const name of ["charts.js", "app.js"]) {
  vm.runInContext(fs.readFileSync(path.join(folder, name), "utf8"), context, {filename: name});
}
vm.runInContext("auth.app = {acquireTokenSilent: async () => ({accessToken: 'x.e30.y', scopes: []})};", context);

(async () => {
  if (input.drawn) {  // [[key, shows, same]]: which draw of a Drawn each card is, `same`: the shows of the call before
    const drawn = new (vm.runInContext("Drawn", context))();
    let draws = 0;
    const shown = input.drawn.map(([key, shows, same], index) => {
      const card = drawn.card(key, same ? input.drawn[index - 1][1] : shows, () => ({draw: ++draws}));
      drawn.done();
      return card.draw;
    });
    process.stdout.write(JSON.stringify(shown));
    return;
  }
  const out = [];
  for (const refresh of input.refreshes) {
    clock = refresh.now;
    answers = JSON.parse(JSON.stringify(refresh.answers));
    events = [];
    const loaded = await context.loadRollouts();
    out.push({events, cards: (loaded.items || []).map(({record, problem}) => ({
      key: record.key, last: (record.history || []).at(-1).reason, problem: problem ? problem.describe() : null}))});
  }
  process.stdout.write(JSON.stringify(out));
})().catch((error) => { console.error(error); process.exit(1); });
