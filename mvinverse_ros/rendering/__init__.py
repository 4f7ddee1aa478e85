"""Relighting and view-consistent material editing on the network's maps and the fused material cloud.

Pure numpy, ROS-free: brdf (Lambert + GGX Cook-Torrance, metallic workflow), lights (point, spot,
directional), relight (frames and the splatted cloud), edit (albedo edits placed in the fixed frame).
"""
