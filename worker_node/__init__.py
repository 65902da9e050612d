"""A community GPU worker: pops jobs from any horde, runs torch + diffusers, submits results.

worker_node imports only ``core.horde.wire`` and ``core.horde.client`` from the project.
"""
