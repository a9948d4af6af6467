"""Batch scoring with ONNX Runtime: streamed, bounded in memory, fanned out over ranges.

`jobs` is the entry point (submit, run_range, status); `request` validates what is
asked; `plan` splits the input; `pipeline` scores one range; `formats` parses and
writes; `blobio` streams blobs; `session` loads models; `manifest` commits outputs.
Building the scoring ports (`jobs.Scoring`) applies `allocators` to the process, before
anything loads pyarrow; importing the package (as `shared.settings` does for its config)
changes nothing, so processes that never score keep their allocators' defaults.
"""
