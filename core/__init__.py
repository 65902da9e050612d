"""Everything platform-neutral: grammar, styles, models, payloads, horde protocol, service.

core never imports a platform library, torch, ``bots`` or ``worker_node``.
"""
