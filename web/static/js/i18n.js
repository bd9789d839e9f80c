// Russian and English. The language is the user's choice kept in localStorage, else the
// browser's (navigator.languages), else English. Messages live in /static/i18n/{lang}.json.

export const LANGUAGES = ["ru", "en"];
const STORAGE_KEY = "dialer.language";

let language = "en";
let messages = {};
let fallback = {};

export function chooseLanguage() {
  const stored = localStorage.getItem(STORAGE_KEY);
  if (LANGUAGES.includes(stored)) return stored;
  const preferred = navigator.languages && navigator.languages.length
    ? navigator.languages : [navigator.language || "en"];
  for (const tag of preferred) {
    const base = String(tag).toLowerCase().split("-")[0];
    if (LANGUAGES.includes(base)) return base;
  }
  return "en";
}

async function fetchMessages(code) {
  const response = await fetch(`/static/i18n/${code}.json`, { credentials: "same-origin" });
  if (!response.ok) throw new Error(`cannot load language ${code}`);
  return response.json();
}

export async function loadLanguage(code) {
  language = LANGUAGES.includes(code) ? code : "en";
  const [chosen, english] = await Promise.all([
    fetchMessages(language), language === "en" ? null : fetchMessages("en"),
  ]);
  messages = chosen;
  fallback = english || chosen;
  document.documentElement.lang = language;
}

export function rememberLanguage(code) {
  localStorage.setItem(STORAGE_KEY, code);
}

export function currentLanguage() {
  return language;
}

export function has(key) {
  return key in messages || key in fallback;
}

export function t(key, values = {}) {
  const template = messages[key] ?? fallback[key] ?? key;
  return template.replace(/\{(\w+)\}/g, (whole, name) =>
    (name in values ? String(values[name]) : whole));
}

export function translateTree(root) {
  for (const element of root.querySelectorAll("[data-i18n]")) {
    element.textContent = t(element.dataset.i18n);
  }
}

export function formatDateTime(iso) {
  if (!iso) return "";
  const moment = new Date(iso);
  if (Number.isNaN(moment.getTime())) return "";
  return new Intl.DateTimeFormat(language, { dateStyle: "short", timeStyle: "short" }).format(moment);
}

export function formatTime(iso) {
  if (!iso) return "";
  const moment = new Date(iso);
  if (Number.isNaN(moment.getTime())) return "";
  return new Intl.DateTimeFormat(language, { timeStyle: "short" }).format(moment);
}

export function formatDuration(seconds) {
  const total = Math.max(0, Math.round(Number(seconds) || 0));
  const minutes = Math.floor(total / 60);
  const rest = String(total % 60).padStart(2, "0");
  return `${minutes}:${rest}`;
}
