"""Secret scanning: the built-in rule set (``rules``) and the streaming scanner that applies it."""
