"""What other hosts answer: probes and scans (placeholder until issue 4 lands)."""
