"""Members: organisations, contact people, memberships and fees."""
