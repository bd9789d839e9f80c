"""Route modules of the JSON API; each exposes ``ENDPOINTS`` (see ``web.app.API_MODULES``)."""
