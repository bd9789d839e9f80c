// Errors in words: API errors, microphone problems and why a call ended.

import { t, has } from "./i18n.js";

export const CALL_CAUSES = [
  "busy", "no_answer", "declined", "invalid_number", "congestion", "unavailable", "auth_failed",
  "timeout", "network_error", "media_timeout", "cancelled", "local_hangup", "remote_hangup",
  "interrupted", "browser_disconnected",
];

// Causes that mean the call simply ended, not that something went wrong.
const NORMAL_ENDINGS = new Set(["local_hangup", "remote_hangup", "cancelled"]);

export function causeText(cause, sipCode = null) {
  if (!cause) return "";
  const key = `cause.${cause}`;
  const words = has(key) ? t(key) : t("cause.unknown", { cause });
  return sipCode && !NORMAL_ENDINGS.has(cause) ? `${words} (SIP ${sipCode})` : words;
}

export function isFailure(cause) {
  return Boolean(cause) && !NORMAL_ENDINGS.has(cause);
}

export function microphoneText(code) {
  return t(code === "microphone_denied" ? "error.microphone_denied" : "error.microphone_unavailable");
}

// The API's answer to POST /api/calls (and the call controls) in words.
export function callErrorText(error) {
  const code = error.code || "";
  if (error.status === 0) return t("error.network");
  if (code === "do_not_call") return t("error.do_not_call");
  if (code === "outside_calling_window") return callingWindowText(error);
  if (code === "trunk_down") return t("error.trunk_down");
  if (code === "call_service_unavailable") return t("error.calling_not_available");
  if (error.status === 503) return t("error.trunk_down");
  if (code === "invalid_number" || (error.status === 422 && /number|phone/.test(error.field || ""))) {
    return t("error.invalid_number");
  }
  if (error.status === 409) return t("error.call_conflict");
  if (error.status === 404 && code === "not_found" && /no such path/.test(error.message)) {
    return t("error.calling_not_available");
  }
  if (CALL_CAUSES.includes(code)) return t("error.call_failed", { cause: causeText(code) });
  return apiErrorText(error);
}

export function apiErrorText(error) {
  if (!error) return "";
  if (error.status === 0) return t("error.network");
  if (error.status === 401) return t("error.session_expired");
  if (error.status === 403) return t("error.forbidden");
  if (error.status === 404) return t("error.not_found");
  if (error.status === 422) {
    const label = error.field && has(`field.${error.field}`) ? t(`field.${error.field}`) : error.field;
    const field = label ? `${label}: ` : "";
    return `${field}${error.message}`;
  }
  return t("error.generic", { message: error.message || error.code });
}

// "Outside calling hours: it is Sat 22:30 there (Europe/Moscow); hours that day: 09:00-20:00",
// worded in the page's language from the refusal's details (the server's English otherwise).
function callingWindowText(error) {
  const details = error.details;
  if (!details || typeof details.weekday !== "number") {
    return t("error.outside_calling_window", { detail: error.message || "" });
  }
  return t("error.outside_calling_window_at", {
    day: t(`weekday.${details.weekday}`),
    time: details.local_time,
    timezone: details.timezone,
    hours: details.hours || t("error.no_calling_hours"),
  });
}
