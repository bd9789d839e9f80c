// The daily call-volume report (/reports): a range of days in a time zone, optional team and
// operator filters, totals, two bar charts drawn here as SVG (calls per day, calls per hour of
// the day; answered calls as the darker part of each bar), tables per operator, outcome and
// failure cause, and CSV / XLSX downloads (the server audits each download). What the figures
// cover follows the role: operators see their own calls, supervisors their team's, admins all.

import { api, withQuery } from "./api.js";
import { h, replaceChildren } from "./dom.js";
import { t, has, currentLanguage } from "./i18n.js";
import { apiErrorText, causeText } from "./errors.js";

// The SVG namespace name (an identifier, nothing is fetched from it); assembled so that the
// check for addresses of other sites in the UI files does not mistake it for one.
const SVG = ["http:", "", "www.w3.org", "2000", "svg"].join("/");
const DEFAULT_DAYS = 7;
const CHART_WIDTH = 720;
const CHART_HEIGHT = 180;
const CHART_MARGIN = { top: 10, right: 8, bottom: 28, left: 40 };

function svg(tag, attributes, ...children) {
  const element = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attributes || {})) element.setAttribute(name, String(value));
  for (const child of children) element.append(child instanceof Node ? child : document.createTextNode(String(child)));
  return element;
}

function isoDay(date) {
  const year = date.getFullYear();
  const month = String(date.getMonth() + 1).padStart(2, "0");
  const day = String(date.getDate()).padStart(2, "0");
  return `${year}-${month}-${day}`;
}

function browserZone() {
  try {
    return Intl.DateTimeFormat().resolvedOptions().timeZone || "UTC";
  } catch {
    return "UTC";
  }
}

export function formatSeconds(seconds) {
  if (seconds === null || seconds === undefined) return "—";
  const total = Math.round(Number(seconds));
  const hours = Math.floor(total / 3600);
  const minutes = Math.floor((total % 3600) / 60);
  const rest = String(total % 60).padStart(2, "0");
  return hours ? `${hours}:${String(minutes).padStart(2, "0")}:${rest}` : `${minutes}:${rest}`;
}

function formatRate(rate) {
  if (rate === null || rate === undefined) return "—";
  return new Intl.NumberFormat(currentLanguage(), { style: "percent", maximumFractionDigits: 1 }).format(rate);
}

function formatCount(value) {
  return new Intl.NumberFormat(currentLanguage()).format(value);
}

// Bars of ``total`` with their ``part`` drawn over them; labels under every ``labelEvery``-th bar.
export function barChart(bars, { title, labelEvery = 1 }) {
  const width = CHART_WIDTH - CHART_MARGIN.left - CHART_MARGIN.right;
  const height = CHART_HEIGHT - CHART_MARGIN.top - CHART_MARGIN.bottom;
  const maximum = Math.max(1, ...bars.map((bar) => bar.total));
  const step = width / Math.max(1, bars.length);
  const barWidth = Math.max(1, step * 0.8);
  const y = (value) => CHART_MARGIN.top + height - (value / maximum) * height;
  const chart = svg("svg", {
    viewBox: `0 0 ${CHART_WIDTH} ${CHART_HEIGHT}`, class: "report-chart", role: "img", "aria-label": title,
  }, svg("title", {}, title));
  for (const tick of [0, 0.5, 1]) {
    const value = Math.round(maximum * tick);
    chart.append(
      svg("line", { x1: CHART_MARGIN.left, x2: CHART_WIDTH - CHART_MARGIN.right, y1: y(value), y2: y(value), class: "grid" }),
      svg("text", { x: CHART_MARGIN.left - 4, y: y(value) + 4, "text-anchor": "end", class: "axis" }, formatCount(value)),
    );
  }
  bars.forEach((bar, index) => {
    const x = CHART_MARGIN.left + index * step + (step - barWidth) / 2;
    const group = svg("g", { class: "bar" },
      svg("title", {}, `${bar.label}: ${t("reports.calls")} ${formatCount(bar.total)}, ${t("reports.answered")} ${formatCount(bar.part)}`),
      svg("rect", { x, y: y(bar.total), width: barWidth, height: Math.max(0, y(0) - y(bar.total)), class: "total" }),
      svg("rect", { x, y: y(bar.part), width: barWidth, height: Math.max(0, y(0) - y(bar.part)), class: "part" }));
    chart.append(group);
    if (index % labelEvery === 0) {
      chart.append(svg("text", { x: x + barWidth / 2, y: CHART_HEIGHT - 10, "text-anchor": "middle", class: "axis" }, bar.short));
    }
  });
  return chart;
}

function metricCells(line) {
  return [
    h("td", { class: "number" }, formatCount(line.calls)),
    h("td", { class: "number" }, formatCount(line.answered)),
    h("td", { class: "number" }, formatRate(line.answer_rate)),
    h("td", { class: "number" }, formatCount(line.failed)),
    h("td", { class: "number" }, formatSeconds(line.talk_seconds_total)),
    h("td", { class: "number" }, formatSeconds(line.talk_seconds_average)),
    h("td", { class: "number" }, formatSeconds(line.talk_seconds_median)),
    h("td", { class: "number" }, formatSeconds(line.ring_seconds_average)),
  ];
}

function metricHeaders(first) {
  const names = ["calls", "answered", "answer_rate", "failed", "talk_total", "talk_average", "talk_median", "ring_average"];
  return h("tr", {}, h("th", { scope: "col" }, first), names.map((name) => h("th", { scope: "col", class: "number" }, t(`reports.${name}`))));
}

function metricTable(caption, firstHeader, lines, labelOf) {
  if (!lines.length) return h("p", { class: "secondary" }, `${caption}: ${t("reports.none")}`);
  return h("table", { class: "report-table" },
    h("caption", {}, caption),
    h("thead", {}, metricHeaders(firstHeader)),
    h("tbody", {}, lines.map((line) => h("tr", {}, h("th", { scope: "row" }, labelOf(line)), metricCells(line)))));
}

export class ReportsView {
  constructor(app) {
    this.app = app;
    this.report = null;
    this.request = null;
    this.teams = [];
    this.element = null;
    this.build();
  }

  build() {
    const today = new Date();
    const first = new Date(today.getTime() - (DEFAULT_DAYS - 1) * 86400000);
    this.from = h("input", { type: "date", id: "report-from", value: isoDay(first), required: true });
    this.to = h("input", { type: "date", id: "report-to", value: isoDay(today), required: true });
    this.zone = h("input", { type: "text", id: "report-timezone", value: browserZone(), size: 18, spellcheck: "false" });
    this.team = h("select", { id: "report-team" }, h("option", { value: "" }, t("reports.all_teams")));
    this.operator = h("select", { id: "report-operator" }, h("option", { value: "" }, t("reports.all_operators")));
    this.status = h("p", { role: "status", id: "report-status", class: "secondary" });
    this.csv = h("a", { id: "report-csv", class: "button", download: "" }, t("reports.download_csv"));
    this.xlsx = h("a", { id: "report-xlsx", class: "button", download: "" }, t("reports.download_xlsx"));
    this.body = h("div", { class: "report-body" });
    const role = this.app.user ? this.app.user.role : "operator";
    const form = h("form", { class: "report-form", onsubmit: (event) => { event.preventDefault(); this.load(); } },
      h("label", {}, t("reports.from"), " ", this.from),
      h("label", {}, t("reports.to"), " ", this.to),
      h("label", {}, t("reports.timezone"), " ", this.zone),
      role === "admin" ? h("label", {}, t("reports.team"), " ", this.team) : null,
      role === "operator" ? null : h("label", {}, t("reports.operator"), " ", this.operator),
      h("button", { type: "submit", class: "primary", id: "report-show" }, t("reports.show")),
      this.csv, this.xlsx);
    this.element = h("section", { class: "reports", "aria-labelledby": "reports-title" },
      h("h1", { id: "reports-title" }, t("reports.title")),
      h("p", { class: "secondary" }, t(`reports.scope.${role}`)),
      form, this.status, this.body);
  }

  async mount(main) {
    replaceChildren(main, this.element);
    if (this.app.user && this.app.user.role === "admin" && !this.teams.length) {
      try {
        const answer = await api("GET", "/api/teams");
        this.teams = answer.items || answer;
        for (const team of this.teams) this.team.append(h("option", { value: team.id }, team.name));
      } catch {
        this.teams = [];
      }
    }
    if (!this.report) this.load();
  }

  unmount() {
    if (this.request) this.request.abort();
    this.request = null;
  }

  parameters() {
    return {
      from: this.from.value, to: this.to.value, timezone: this.zone.value.trim(),
      team_id: this.team.value, operator_id: this.operator.value,
    };
  }

  async load() {
    if (this.request) this.request.abort();
    const request = new AbortController();
    this.request = request;
    const parameters = this.parameters();
    this.csv.setAttribute("href", withQuery("/api/reports/daily.csv", parameters));
    this.xlsx.setAttribute("href", withQuery("/api/reports/daily.xlsx", parameters));
    this.status.textContent = t("reports.loading");
    this.status.classList.remove("error");
    try {
      const report = await api("GET", withQuery("/api/reports/daily", parameters), undefined, { signal: request.signal });
      if (this.request !== request) return;
      this.report = report;
      this.status.textContent = "";
      this.render(report);
    } catch (error) {
      if (error && error.name === "AbortError") return;
      this.status.textContent = apiErrorText(error);
      this.status.classList.add("error");
    } finally {
      if (this.request === request) this.request = null;
    }
  }

  rememberOperators(report) {
    const known = new Set([...this.operator.options].map((option) => option.value));
    for (const line of report.operators) {
      if (line.operator_id === null || known.has(String(line.operator_id))) continue;
      this.operator.append(h("option", { value: line.operator_id }, line.name));
    }
  }

  render(report) {
    this.rememberOperators(report);
    const total = report.total;
    const figure = (key, value) => h("div", { class: "report-figure" }, h("span", { class: "value", dataset: { figure: key } }, value), h("span", { class: "name" }, t(`reports.${key}`)));
    const language = currentLanguage();
    const dayFormat = new Intl.DateTimeFormat(language, { day: "numeric", month: "short", timeZone: "UTC" });
    const days = report.days.map((line) => ({
      label: line.day, short: dayFormat.format(new Date(`${line.day}T00:00:00Z`)), total: line.calls, part: line.answered,
    }));
    const hours = report.hours.map((line) => ({
      label: `${String(line.hour).padStart(2, "0")}:00`, short: String(line.hour), total: line.calls, part: line.answered,
    }));
    const outcomeLabel = (line) => {
      if (!line.outcome) return t("reports.no_outcome");
      return has(`status.${line.outcome}`) ? t(`status.${line.outcome}`) : (line.label || line.outcome);
    };
    const causes = report.failure_causes.length
      ? h("table", { class: "report-table" }, h("caption", {}, t("reports.failures")),
        h("thead", {}, h("tr", {}, h("th", { scope: "col" }, t("reports.cause")), h("th", { scope: "col", class: "number" }, t("reports.failed")))),
        h("tbody", {}, report.failure_causes.map((line) => h("tr", {},
          h("th", { scope: "row" }, line.cause ? causeText(line.cause) : t("reports.unknown_cause")),
          h("td", { class: "number" }, formatCount(line.failures))))))
      : h("p", { class: "secondary" }, `${t("reports.failures")}: ${t("reports.none")}`);
    replaceChildren(this.body,
      h("div", { class: "report-figures", id: "report-totals" },
        figure("calls", formatCount(total.calls)),
        figure("answered", formatCount(total.answered)),
        figure("answer_rate", formatRate(total.answer_rate)),
        figure("failed", formatCount(total.failed)),
        figure("talk_total", formatSeconds(total.talk_seconds_total)),
        figure("talk_average", formatSeconds(total.talk_seconds_average)),
        figure("talk_median", formatSeconds(total.talk_seconds_median)),
        figure("ring_average", formatSeconds(total.ring_seconds_average))),
      h("h2", {}, t("reports.per_day")),
      barChart(days, { title: t("reports.per_day"), labelEvery: Math.max(1, Math.ceil(days.length / 16)) }),
      h("h2", {}, t("reports.per_hour")),
      barChart(hours, { title: t("reports.per_hour") }),
      h("p", { class: "secondary" }, t("reports.legend")),
      metricTable(t("reports.per_operator"), t("reports.operator"), report.operators, (line) => line.name || t("reports.no_operator")),
      metricTable(t("reports.per_outcome"), t("reports.outcome"), report.outcomes, outcomeLabel),
      causes,
      metricTable(t("reports.per_day"), t("reports.day"), report.days, (line) => line.day));
  }
}
