"""Numbered SQL migrations, applied in order when a store opens (see memeatlas.store.migrate)."""
