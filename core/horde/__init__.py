"""The one place that knows the AI Horde v2 wire protocol: models, client, embedded horde.

core.horde imports nothing else from core, so ``worker_node`` depends on a small, closed package.
"""
