"""The domain core: contacts, calls, users, audit, campaigns and reports."""
