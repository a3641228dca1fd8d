// The operator console: reads /api/status and /api/indicators?month= (the admin endpoint's own
// JSON) and draws the month's plots as SVG. No library, nothing fetched from elsewhere.
"use strict";

const SVG = "http://www.w3.org/2000/svg";
const COLOURS = {
  sent: "var(--sent)", received: "var(--received)", xdm: "var(--xdm)", ins: "var(--ins)",
  certificate: "var(--certificate)", psc: "var(--psc)", mismatch: "var(--mismatch)",
  delivered: "var(--delivered)", failed: "var(--failed)", displayed: "var(--displayed)", ko: "var(--ko)",
  deliveredLate: "var(--delivered-late)", displayedLate: "var(--displayed-late)",
};

function element(name, attributes, text) {
  const node = name.startsWith("svg:") ? document.createElementNS(SVG, name.slice(4))
                                       : document.createElement(name);
  for (const [key, value] of Object.entries(attributes || {})) node.setAttribute(key, value);
  if (text !== undefined) node.textContent = text;
  return node;
}

function number(value) {
  return new Intl.NumberFormat("fr-FR").format(value);
}

function percent(part, whole) {
  return whole > 0 ? Math.round((1000 * part) / whole) / 10 : null;
}

// Every day of the month, "YYYY-MM-DD", so that days without messages show as empty.
function daysOf(month) {
  const [year, monthNumber] = month.split("-").map(Number);
  const count = new Date(Date.UTC(year, monthNumber, 0)).getUTCDate();
  const days = [];
  for (let d = 1; d <= count; ++d) days.push(month + "-" + String(d).padStart(2, "0"));
  return days;
}

function legend(container, series) {
  const list = element("ul", { class: "legend" });
  for (const s of series) {
    const item = element("li");
    const swatch = element("span");
    swatch.style.background = s.colour;  // through the CSSOM: the page's policy allows no inline style
    item.append(swatch, s.label);
    list.append(item);
  }
  container.append(list);
}

function niceMaximum(value) {
  if (value <= 5) return 5;
  const power = Math.pow(10, Math.floor(Math.log10(value)));
  for (const step of [1, 2, 2.5, 5, 10]) if (value <= step * power) return step * power;
  return 10 * power;
}

// Bars per category (grouped side by side, or stacked), with the value of each bar in its
// data-value attribute and its tooltip.
function barChart(container, categories, series, options) {
  const width = 720, height = 240, left = 44, right = 8, top = 10, bottom = 34;
  const stacked = options && options.stacked;
  const totals = categories.map((_, i) =>
    stacked ? series.reduce((sum, s) => sum + s.values[i], 0)
            : Math.max(0, ...series.map((s) => s.values[i])));
  const maximum = options && options.maximum ? options.maximum : niceMaximum(Math.max(1, ...totals));
  const svg = element("svg:svg", { viewBox: `0 0 ${width} ${height}`, role: "img",
                                    "aria-label": options && options.label ? options.label : "" });
  const plotHeight = height - top - bottom;
  const y = (v) => top + plotHeight - (plotHeight * v) / maximum;
  for (let t = 0; t <= 4; ++t) {
    const value = (maximum * t) / 4;
    svg.append(element("svg:line", { class: "grid", x1: left, x2: width - right, y1: y(value), y2: y(value) }));
    svg.append(element("svg:text", { x: left - 6, y: y(value) + 4, "text-anchor": "end" },
                       options && options.unit === "%" ? value + " %" : number(value)));
  }
  const band = (width - left - right) / categories.length;
  const barWidth = stacked ? band * 0.7 : (band * 0.8) / series.length;
  categories.forEach((category, i) => {
    let base = 0;
    series.forEach((s, k) => {
      const value = s.values[i];
      const x = left + i * band + (stacked ? band * 0.15 : band * 0.1 + k * barWidth);
      const from = stacked ? base : 0;
      const rect = element("svg:rect", {
        x: x.toFixed(1), y: y(from + value).toFixed(1), width: Math.max(1, barWidth - 1).toFixed(1),
        height: Math.max(0, y(from) - y(from + value)).toFixed(1), fill: s.colour,
        "data-series": s.key, "data-category": category, "data-value": value,
      });
      rect.append(element("svg:title", {}, `${category} — ${s.label} : ${number(value)}`));
      svg.append(rect);
      if (stacked) base += value;
    });
    if (options && options.labelEvery && i % options.labelEvery !== 0) return;
    const label = options && options.shortLabel ? options.shortLabel(category) : category;
    svg.append(element("svg:text", { x: left + i * band + band / 2, y: height - bottom + 14,
                                     "text-anchor": "middle" }, label));
  });
  svg.append(element("svg:line", { class: "axis", x1: left, x2: width - right, y1: y(0), y2: y(0) }));
  container.replaceChildren(svg);
  legend(container, series);
}

// Lines of percentages per day; a day without a denominator has no point.
function lineChart(container, days, series) {
  const width = 720, height = 220, left = 44, right = 8, top = 10, bottom = 34;
  const svg = element("svg:svg", { viewBox: `0 0 ${width} ${height}`, role: "img" });
  const plotHeight = height - top - bottom;
  const y = (v) => top + plotHeight - (plotHeight * v) / 100;
  const step = (width - left - right) / days.length;
  const x = (i) => left + step * i + step / 2;
  for (const value of [0, 25, 50, 75, 100]) {
    svg.append(element("svg:line", { class: "grid", x1: left, x2: width - right, y1: y(value), y2: y(value) }));
    svg.append(element("svg:text", { x: left - 6, y: y(value) + 4, "text-anchor": "end" }, value + " %"));
  }
  days.forEach((day, i) => {
    if (i % 5 === 0) {
      svg.append(element("svg:text", { x: x(i), y: height - bottom + 14, "text-anchor": "middle" },
                         day.slice(8)));
    }
  });
  for (const s of series) {
    let path = "";
    s.values.forEach((value, i) => {
      if (value === null) return;
      path += (path ? " L " : "M ") + x(i).toFixed(1) + " " + y(value).toFixed(1);
      const point = element("svg:circle", { cx: x(i).toFixed(1), cy: y(value).toFixed(1), r: 3,
                                            fill: s.colour, "data-series": s.key,
                                            "data-category": days[i], "data-value": value });
      point.append(element("svg:title", {}, `${days[i]} — ${s.label} : ${value} %`));
      svg.append(point);
    });
    if (path) svg.append(element("svg:path", { d: path, fill: "none", stroke: s.colour, "stroke-width": 2 }));
  }
  container.replaceChildren(svg);
  legend(container, series);
}

function byDay(rows, days) {
  const map = new Map(rows.map((row) => [row.day, row]));
  return days.map((day) => map.get(day) || { day });
}

function fill(rows, key) {
  return rows.map((row) => Number(row[key] || 0));
}

function showTotals(data) {
  const t = data.totals;
  const lines = [
    ["Messages envoyés", t.sent], ["Messages reçus", t.received],
    ["Envoyés avec un IHE_XDM", t.sent_with_xdm], ["Envoyés avec un document CDA", t.sent_with_cda],
    ["Envoyés avec un INS qualifié", t.sent_qualified_ins],
    ["Envoyés avec un INS mal formé", t.sent_malformed_ins],
    ["Envoyés avec une incohérence", t.sent_with_mismatch],
    ["Fins d'échange avec un patient", t.sent_mes_fin],
    ["Connexions par certificat", t.certificate_sign_ins], ["Connexions Pro Santé Connect", t.psc_sign_ins],
    ["Connexions refusées", t.failed_sign_ins],
    ["Remises confirmées (DSN)", t.acknowledgement_delivered],
    ["Relais confirmés (DSN)", t.acknowledgement_relayed],
    ["Échecs de remise (DSN)", t.acknowledgement_failed],
    ["Lectures confirmées (MDN)", t.acknowledgement_displayed],
    ["Erreurs d'intégration ([KO)", t.acknowledgement_integration_errors],
  ];
  const body = document.querySelector("#totals tbody");
  body.replaceChildren(...lines.map(([label, value]) => {
    const row = element("tr");
    row.append(element("th", { scope: "row" }, label),
               element("td", { class: "number", "data-total": label }, number(value || 0)));
    return row;
  }));
}

function showLps(data) {
  const rows = data.lps;
  const name = (row) => (row.nil || "(sans X-MSS-NIL)") + (row.azp ? " · " + row.azp : "");
  if (rows.length === 0) {
    document.getElementById("chart-lps").replaceChildren(element("p", { class: "message" },
                                                                 "Aucun message envoyé ce mois-ci."));
    return;
  }
  barChart(document.getElementById("chart-lps"), rows.map(name), [
    { key: "sent", label: "envoyés", colour: COLOURS.sent, values: fill(rows, "sent") },
    { key: "sent_with_mismatch", label: "avec une incohérence", colour: COLOURS.mismatch,
      values: fill(rows, "sent_with_mismatch") },
  ], { label: "incohérences par LPS" });
  // The mismatch words met this month, one column each.
  const words = Object.keys(rows[0]).filter((k) => k.startsWith("mismatch_") &&
                                                   rows.some((row) => Number(row[k]) > 0));
  if (words.length === 0) {
    document.querySelector("#lps-table thead").replaceChildren();
    const row = element("tr");
    row.append(element("td", { class: "message" }, "Aucune incohérence ce mois-ci."));
    document.querySelector("#lps-table tbody").replaceChildren(row);
    return;
  }
  const head = element("tr");
  head.append(element("th", {}, "LPS"), ...words.map((w) => element("th", {}, w.slice(9).replaceAll("_", " "))));
  document.querySelector("#lps-table thead").replaceChildren(head);
  document.querySelector("#lps-table tbody").replaceChildren(...rows.map((row) => {
    const line = element("tr");
    line.append(element("th", { scope: "row" }, name(row)),
                ...words.map((w) => element("td", { class: "number" }, number(row[w]))));
    return line;
  }));
}

function showIndicators(data) {
  const days = daysOf(data.month);
  const rows = byDay(data.days, days);
  const signIns = byDay(data.sign_ins, days);
  const dayLabel = (day) => day.slice(8);
  showTotals(data);
  barChart(document.getElementById("chart-messages"), days, [
    { key: "sent", label: "envoyés", colour: COLOURS.sent, values: fill(rows, "sent") },
    { key: "received", label: "reçus", colour: COLOURS.received, values: fill(rows, "received") },
  ], { shortLabel: dayLabel, labelEvery: 5, label: "messages par jour" });
  lineChart(document.getElementById("chart-shares"), days, [
    { key: "xdm_share", label: "envoyés avec un IHE_XDM", colour: COLOURS.xdm,
      values: rows.map((r) => percent(Number(r.sent_with_xdm || 0), Number(r.sent || 0))) },
    { key: "qualified_ins_share", label: "envoyés avec un CDA dont l'INS est qualifié", colour: COLOURS.ins,
      values: rows.map((r) => percent(Number(r.sent_qualified_ins || 0), Number(r.sent_with_cda || 0))) },
  ]);
  showLps(data);
  barChart(document.getElementById("chart-signins"), days, [
    { key: "certificate", label: "certificat", colour: COLOURS.certificate, values: fill(signIns, "certificate") },
    { key: "psc", label: "Pro Santé Connect", colour: COLOURS.psc, values: fill(signIns, "psc") },
    { key: "failed", label: "refusées", colour: COLOURS.mismatch, values: fill(signIns, "failed") },
  ], { stacked: true, shortLabel: dayLabel, labelEvery: 5, label: "connexions par jour" });
  showAcknowledgements(data, days, dayLabel);
}

// What came back for each day's messages, and how long it took. A delay is null on a day
// without that kind of acknowledgement.
function showAcknowledgements(data, days, dayLabel) {
  const rows = byDay(data.acknowledgements || [], days);
  barChart(document.getElementById("chart-acks"), days, [
    { key: "delivered", label: "remis (DSN)", colour: COLOURS.delivered, values: fill(rows, "delivered") },
    { key: "relayed", label: "relayés (DSN)", colour: COLOURS.deliveredLate, values: fill(rows, "relayed") },
    { key: "failed", label: "en échec (DSN)", colour: COLOURS.failed, values: fill(rows, "failed") },
    { key: "displayed", label: "lus (MDN)", colour: COLOURS.displayed, values: fill(rows, "displayed") },
    { key: "integration_errors", label: "erreurs d'intégration ([KO)", colour: COLOURS.ko,
      values: fill(rows, "integration_errors") },
  ], { stacked: true, shortLabel: dayLabel, labelEvery: 5, label: "accusés par jour d'envoi" });
  barChart(document.getElementById("chart-delays"), days, [
    { key: "delivered_p50_s", label: "remise, médiane", colour: COLOURS.delivered, values: fill(rows, "delivered_p50_s") },
    { key: "relayed_p50_s", label: "relais, médiane", colour: COLOURS.deliveredLate, values: fill(rows, "relayed_p50_s") },
    { key: "displayed_p50_s", label: "lecture, médiane", colour: COLOURS.displayed, values: fill(rows, "displayed_p50_s") },
    { key: "displayed_p90_s", label: "lecture, 90ᵉ centile", colour: COLOURS.displayedLate, values: fill(rows, "displayed_p90_s") },
  ], { shortLabel: dayLabel, labelEvery: 5, label: "délais des accusés en secondes" });
}

function showStatus(status) {
  document.getElementById("instance").textContent =
    (status.instance ? status.instance + " · " : "") + status.version;
  const summary = document.getElementById("status-summary");
  summary.replaceChildren(
    element("strong", { class: status.ready ? "ok" : "not-ok" }, status.ready ? "prêt" : "pas prêt"),
    ` — ${number(status.sessions.open)} sessions ouvertes, ${number(status.sessions.client_connections)} ` +
      `connexions clientes, ${number(status.sessions.lmtp_connections)} livraisons LMTP, ` +
      `${number(status.sessions.transactions)} transactions en cours`);
  document.getElementById("status-checks").replaceChildren(...status.checks.map((check) => {
    const item = element("li", { "data-check": check.name });
    item.append(element("span", { class: check.ok ? "ok" : "not-ok" }, check.ok ? "✔ " : "✘ "),
                check.name + (check.detail ? " — " + check.detail : ""));
    return item;
  }));
}

async function load() {
  const month = document.body.dataset.month;
  try {
    const status = await fetch("/api/status").then((r) => r.json());
    showStatus(status);
  } catch (error) {
    document.getElementById("status-summary").textContent = "état indisponible : " + error;
  }
  const message = document.getElementById("indicators-message");
  try {
    const answer = await fetch("/api/indicators?month=" + encodeURIComponent(month));
    const data = await answer.json();
    if (!answer.ok) throw new Error(data.error || answer.statusText);
    showIndicators(data);
    document.body.dataset.loaded = "yes";
  } catch (error) {
    message.textContent = "Indicateurs indisponibles : " + error.message;
    message.hidden = false;
    document.body.dataset.loaded = "failed";
  }
}

document.addEventListener("DOMContentLoaded", load);
