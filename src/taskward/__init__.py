"""taskward."""
