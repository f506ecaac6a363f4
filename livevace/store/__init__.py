"""The weights on disk: every downloadable file, whoever reads it (the generator's models and
the annotators'), with the catalogue, downloads, checks and memory estimates.

It sits below `models/` and `annotators/`: the networks take tensors and paths, and only the
pipelines and commands ask the store where a file is.
"""
