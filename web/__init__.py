"""The Starlette application, its websockets and the browser UI."""
