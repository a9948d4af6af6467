/* Renders the control room's rollout card in Node for tests/unit/test_wording.py: app.js and charts.js
   run unchanged in a context with just enough of a DOM (elements that keep their attributes, children
   and text). Reads [{record, past}] as JSON on stdin; prints, for each, the card's words:
   {why, plan: [{label, class}], analyses, history, past, text}. With {reviewOutcomes: [[who, decision,
   answer]]} instead, prints what each review's answer tells the person. */
"use strict";
const fs = require("fs");
const path = require("path");
const vm = require("vm");

class Node_ {
  constructor(tag) { this.tag = tag; this.children = []; this.attributes = {}; this.className = ""; this.listeners = {}; }
  append(...children) { this.children.push(...children); }
  replaceChildren(...children) { this.children = children; }
  setAttribute(name, value) { this.attributes[name] = value; }
  getAttribute(name) { return this.attributes[name]; }
  addEventListener(name, handler) { this.listeners[name] = handler; }
  get textContent() { return this.text !== undefined ? this.text : this.children.map((c) => c.textContent).join(""); }
  set textContent(value) { this.text = String(value); }
  find(predicate) {
    if (predicate(this)) return this;
    for (const child of this.children) { const found = child.find && child.find(predicate); if (found) return found; }
    return null;
  }
  findAll(predicate, into = []) {
    if (predicate(this)) into.push(this);
    this.children.forEach((child) => child.findAll && child.findAll(predicate, into));
    return into;
  }
}
class Text_ extends Node_ { constructor(text) { super("#text"); this.text = String(text); } }

const document = {
  createElement: (tag) => new Node_(tag), createElementNS: (_, tag) => new Node_(tag),
  createTextNode: (text) => new Text_(text), addEventListener() {}, getElementById: () => new Node_("div"),
  querySelector: () => new Node_("div"), body: {dataset: {}},
};
const context = {
  window: {location: {href: "http://127.0.0.1:7071/api/ops/controlroom", origin: "http://127.0.0.1:7071"},
           addEventListener() {}},
  document, Node: Node_, sessionStorage: {getItem: () => null, setItem() {}, removeItem() {}},
  console, URL, setTimeout, clearTimeout, Date, Intl,
};
vm.createContext(context);
const folder = path.resolve(__dirname, "../../shared/ops/controlroom");
for (const name of ["charts.js", "app.js"]) {
  vm.runInContext(fs.readFileSync(path.join(folder, name), "utf8"), context, {filename: name});
}

const cases = JSON.parse(fs.readFileSync(0, "utf8"));
if (!Array.isArray(cases)) {  // {reviewOutcomes: [[who, decision, answer]]}: what each review's answer says
  process.stdout.write(JSON.stringify(cases.reviewOutcomes.map((args) => context.reviewOutcome(...args))));
  process.exit(0);
}
const out = cases.map(({record, past}) => {
  const card = context.rolloutCard(record, past ? {ok: true, value: past} : null);
  const field = (name) => card.find((n) => n.attributes["data-field"] === name);
  const plan = card.find((n) => n.attributes["aria-label"] === "step plan");
  const analyses = card.find((n) => n.className === "analyses");
  const summaries = card.findAll((n) => n.tag === "summary").map((n) => n.textContent);
  return {
    why: field("why").textContent,
    plan: plan.children.map((li) => ({label: li.textContent, class: li.className})),
    analyses: analyses ? analyses.textContent : "",
    summaries,
    text: card.textContent,
  };
});
process.stdout.write(JSON.stringify(out));
