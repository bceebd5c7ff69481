"""Port <-> service knowledge (placeholder until issue 3 lands)."""
