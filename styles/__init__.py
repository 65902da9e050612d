"""The style library in the AI-Horde-Styles format: loading, caching and expansion.

styles imports nothing from ``core``, ``bots`` or ``worker_node``.
"""
