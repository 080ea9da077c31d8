"""Reference transition systems."""
