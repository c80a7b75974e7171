"""Model backends of the analytics engine.

Every detector sits behind one small interface, ``detect_batch(frames) -> list[Detections]``
(:class:`pipeline.models.base.BatchDetector`). Backends: :mod:`pipeline.models.yolo` (vehicles and people),
:mod:`pipeline.models.plate_detector` (plates on vehicle crops), :mod:`pipeline.models.faces` (SCRFD + embedder).
:func:`pipeline.models.registry.load_model_set` loads the set the engine uses; :mod:`pipeline.models.derive`
produces the batch-capable ONNX files from the upstream batch-1 exports.
"""
