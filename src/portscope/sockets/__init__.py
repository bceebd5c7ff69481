"""This machine's socket table and the processes behind it (placeholder until issue 2 lands)."""
