"""End-to-end workflows that wire the stages together (used by the CLI)."""
