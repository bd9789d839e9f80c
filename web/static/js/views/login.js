// The login page: wrong credentials (one generic message), the account lockout (423, with the
// time it opens again), throttling of this address (429), refused networks (403), and the
// one-time code when the account has two-factor login.

import { api, setCsrfToken } from "../api.js";
import { h, replaceChildren } from "../dom.js";
import { t, formatDateTime } from "../i18n.js";

function untilFrom(message) {
  const match = /(\d{4}-\d{2}-\d{2}T[0-9:.+\-Z]+)/.exec(message || "");
  return match ? formatDateTime(match[1]) : "";
}

export function loginErrorText(error) {
  if (error.status === 423) {
    const until = untilFrom(error.message);
    return until ? t("login.locked_until", { until }) : t("login.locked");
  }
  if (error.status === 429) {
    const until = untilFrom(error.message);
    return until ? t("login.throttled_until", { until }) : t("login.throttled");
  }
  if (error.status === 403) return t("login.network_refused");
  if (error.status === 0) return t("error.network");
  if (error.code === "one_time_code_required") return t("login.code_required");
  if (error.status === 401) return t("login.wrong_credentials");
  return t("error.generic", { message: error.message });
}

export function renderLogin(main, { onLoggedIn }) {
  const login = h("input", { id: "login-name", name: "username", autocomplete: "username", required: true, maxlength: "100" });
  const password = h("input", { id: "login-password", name: "password", type: "password", autocomplete: "current-password", required: true });
  const code = h("input", { id: "login-code", name: "one-time-code", inputmode: "numeric", autocomplete: "one-time-code", maxlength: "12" });
  const codeRow = h("label", { hidden: true }, t("login.one_time_code"), code);
  const message = h("p", { class: "error", role: "alert", id: "login-error" });
  const submit = h("button", { type: "submit", class: "primary", id: "login-submit" }, t("login.submit"));
  const form = h("form", {
    class: "login", id: "login-form",
    onsubmit: async (event) => {
      event.preventDefault();
      submit.disabled = true;
      message.textContent = "";
      const body = { login: login.value.trim(), password: password.value };
      if (!codeRow.hidden && code.value.trim()) body.one_time_code = code.value.trim();
      try {
        const answer = await api("POST", "/api/session", body);
        setCsrfToken(answer.csrf_token);
        password.value = "";
        onLoggedIn(answer.user);
      } catch (error) {
        message.textContent = loginErrorText(error);
        if (error.code === "one_time_code_required") {
          codeRow.hidden = false;
          code.focus();
        } else {
          password.select();
          password.focus();
        }
      } finally {
        submit.disabled = false;
      }
    },
  },
  h("h1", {}, t("login.title")),
  h("label", {}, t("login.name"), login),
  h("label", {}, t("login.password"), password),
  codeRow, message, submit);
  replaceChildren(main, form);
  login.focus();
}
