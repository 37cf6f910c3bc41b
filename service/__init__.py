"""The use cases: whole user actions that join the model (``core``) and the store (``db``).

One module per feature; each public function takes the store's engine, runs one
transaction per user action and returns plain dataclasses. Pages and command
lines call this layer only. See ``docs/architecture.md``.
"""
