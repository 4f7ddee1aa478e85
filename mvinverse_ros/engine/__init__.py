"""Frames -> windows -> maps.

- `windowing`: WindowPolicy, which keyframes form a window (pure Python/numpy, no torch).
- `preprocess`: the one resize/convert path between images, network tensors and MaterialMaps.
- `streaming`: StreamingEngine (per-frame cache across windows), full_recompute, engine_from_params.
- `cli`: `mvinverse-ros infer`.

Nothing is imported here, so `windowing` stays usable without loading torch.
"""
