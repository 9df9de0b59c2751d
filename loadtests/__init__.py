"""Locustfiles: one generic, spec-driven (``http_profile.py``); per-system ones where needed."""
