"""Alembic revision files (loaded by path; this file only makes the directory package data)."""
