"""Fleet-scale offline processing: many recorded bags through `bag process` on a Ray cluster.

One bag is one unit of work. Workers are Ray Core actors: each loads the model once and then runs
the very BagProcessor of `mvinverse-ros bag process` over bag after bag, so a fleet output is
byte-identical to a serial one with the same parameters.

Why actors and not Ray Data: a window needs its bag's frames in log order, one after the other,
with the pose tree and the voxel map built from everything before them. Ray Data splits a dataset
into blocks of rows that it maps, reorders and spreads over workers independently; keeping a bag's
frames in order would mean one block per bag and giving up the parts of Ray Data that make it worth
having, while still paying for its block store. A bag is also not a table: it is read and written
by rosbags as a whole recording. Actors give exactly what is needed: a long-lived process holding
the loaded model (the expensive part to set up), a queue of bags fed by the driver, and a fresh
worker when a worker process dies, after which the driver hands the bag to whichever worker is free.

Modules: `jobs` finds the inputs, names and commits the outputs (temporary name, then rename) and
decides which are already complete; `runner` owns the Ray actors, the scheduling, the retries and
the report.
"""
