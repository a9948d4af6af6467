/* Charts drawn as inline SVG: traffic bars and metric series against their gates.
   Only DOM calls and presentation attributes: the page's CSP allows no inline style or script. */
"use strict";

const Charts = (() => {
  const SVG = "http://www.w3.org/2000/svg";

  function svg(tag, attributes = {}, text) {
    const node = document.createElementNS(SVG, tag);
    for (const [name, value] of Object.entries(attributes)) {
      if (value !== undefined && value !== null) node.setAttribute(name, String(value));
    }
    if (text !== undefined) node.textContent = text;
    return node;
  }

  /** One horizontal bar split by deployment ({name: percent}); colour(name) picks each part's colour class. */
  function trafficBar(label, split, kind, colour = () => 0) {
    const entries = Object.entries(split || {}).filter(([, percent]) => percent > 0);
    const box = svg("svg", {viewBox: "0 0 100 8", preserveAspectRatio: "none", class: `bar bar-${kind}`,
                            role: "img", "aria-label": `${label}: ` + (entries.map(([n, p]) => `${n} ${p}%`)
                            .join(", ") || "none")});
    box.append(svg("rect", {x: 0, y: 0, width: 100, height: 8, class: "bar-empty"}));
    let x = 0;
    entries.forEach(([name, percent]) => {
      const rect = svg("rect", {x, y: 0, width: percent, height: 8, class: `bar-part part-${colour(name)}`,
                                "data-deployment": name, "data-percent": percent});
      rect.append(svg("title", {}, `${name}: ${percent}%`));
      box.append(rect);
      x += percent;
    });
    return box;
  }

  /** A metric over successive analyses, with its gate as a dashed line and each point coloured by verdict.
      points: [{value, result, label}], gate: number | null. */
  function series(title, points, gate, format) {
    const width = 320, height = 120, left = 44, right = 8, top = 18, bottom = 20;
    const values = points.map((p) => p.value).filter((v) => typeof v === "number" && isFinite(v));
    const top_value = Math.max(gate || 0, ...values, 0) * 1.15 || 1;
    const x = (i) => left + (points.length < 2 ? (width - left - right) / 2
                                                 : i * (width - left - right) / (points.length - 1));
    const y = (v) => top + (height - top - bottom) * (1 - v / top_value);
    const chart = svg("svg", {viewBox: `0 0 ${width} ${height}`, class: "series", role: "img",
                              "aria-label": `${title}: ${values.length} analyses`});
    chart.append(svg("text", {x: left, y: 12, class: "series-title"}, title));
    chart.append(svg("line", {x1: left, y1: y(0), x2: width - right, y2: y(0), class: "axis"}));
    chart.append(svg("text", {x: left - 4, y: y(0) + 3, class: "tick", "text-anchor": "end"}, format(0)));
    chart.append(svg("text", {x: left - 4, y: y(top_value / 1.15) + 3, class: "tick", "text-anchor": "end"},
                     format(top_value / 1.15)));
    if (typeof gate === "number") {
      chart.append(svg("line", {x1: left, y1: y(gate), x2: width - right, y2: y(gate), class: "gate",
                                "data-gate": gate}));
      chart.append(svg("text", {x: width - right, y: y(gate) - 3, class: "gate-label", "text-anchor": "end"},
                       `gate ${format(gate)}`));
    }
    const drawn = points.map((p, i) => ({...p, i})).filter((p) => typeof p.value === "number" && isFinite(p.value));
    if (drawn.length > 1) {
      chart.append(svg("polyline", {points: drawn.map((p) => `${x(p.i)},${y(p.value)}`).join(" "), class: "line"}));
    }
    for (const p of drawn) {
      const dot = svg("circle", {cx: x(p.i), cy: y(p.value), r: 4, class: `point result-${p.result}`,
                                 "data-value": p.value, "data-result": p.result});
      dot.append(svg("title", {}, `${p.label}: ${format(p.value)} (${p.result})`));
      chart.append(dot);
    }
    if (!drawn.length) {
      chart.append(svg("text", {x: width / 2, y: height / 2, class: "tick", "text-anchor": "middle"},
                       "no analysis yet"));
    }
    return chart;
  }

  /** The canary's and the champion's values minute by minute, side by side (the comparison's evidence).
      canary, champion: [number | null], one per minute; classification colours the canary's line. */
  function pair(title, canary, champion, classification, format) {
    const width = 320, height = 120, left = 44, right = 8, top = 18, bottom = 20;
    const values = canary.concat(champion).filter((v) => typeof v === "number" && isFinite(v));
    const top_value = Math.max(...values, 0) * 1.15 || 1;
    const count = Math.max(canary.length, champion.length);
    const x = (i) => left + (count < 2 ? (width - left - right) / 2 : i * (width - left - right) / (count - 1));
    const y = (v) => top + (height - top - bottom) * (1 - v / top_value);
    const chart = svg("svg", {viewBox: `0 0 ${width} ${height}`, class: "series pair", role: "img",
                              "aria-label": `${title}: canary against champion over ${count} minutes, ${classification}`,
                              "data-classification": classification});
    chart.append(svg("text", {x: left, y: 12, class: "series-title"}, `${title}: ${classification}`));
    chart.append(svg("line", {x1: left, y1: y(0), x2: width - right, y2: y(0), class: "axis"}));
    chart.append(svg("text", {x: left - 4, y: y(0) + 3, class: "tick", "text-anchor": "end"}, format(0)));
    chart.append(svg("text", {x: left - 4, y: y(top_value / 1.15) + 3, class: "tick", "text-anchor": "end"},
                     format(top_value / 1.15)));
    [["champion", champion], ["canary", canary]].forEach(([who, points]) => {
      const drawn = points.map((v, i) => ({v, i})).filter((p) => typeof p.v === "number" && isFinite(p.v));
      const line = svg("polyline", {points: drawn.map((p) => `${x(p.i)},${y(p.v)}`).join(" "),
                                    class: `line line-${who} class-${who === "canary" ? classification : "champion"}`,
                                    "data-deployment": who});
      line.append(svg("title", {}, `${who}: ${drawn.map((p) => format(p.v)).join(", ")}`));
      chart.append(line);
    });
    if (!values.length) {
      chart.append(svg("text", {x: width / 2, y: height / 2, class: "tick", "text-anchor": "middle"},
                       "no minute measured on both yet"));
    }
    return chart;
  }

  return {trafficBar, series, pair};
})();
