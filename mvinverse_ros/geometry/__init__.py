"""Pure numpy/scipy geometry: depth unprojection, rigid transforms and an offline TF buffer, normals, fusion."""
