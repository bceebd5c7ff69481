"""who / why / audit / free: answers with evidence (placeholder until issue 5 lands)."""
