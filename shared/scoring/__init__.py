"""Batch scoring with ONNX Runtime: streamed, bounded in memory, fanned out over ranges.

`jobs` is the entry point (submit, run_range, status); `request` validates what is
asked; `plan` splits the input; `pipeline` scores one range; `formats` parses and
writes; `blobio` streams blobs; `session` loads models; `manifest` commits outputs.
Importing the package applies `allocators` first, before anything loads pyarrow.
"""

from shared.scoring import allocators

allocators.tune()
