"""Small helpers with no heavy dependencies."""
