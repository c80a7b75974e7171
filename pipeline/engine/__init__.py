"""The analytics engine: batched multi-camera inference, gating, zones, tracking, events, alerts and the spool.

Entry points: :class:`pipeline.engine.engine.Engine` (``process_batch``) and
:func:`pipeline.engine.process.run_engine` (the engine process started by the service supervisor).
"""
