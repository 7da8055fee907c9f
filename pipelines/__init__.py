"""What users run: the command line, the Python API, the batch layer and the file formats.

- :mod:`.cli`: the ``facecast`` command line (every command's options and help, in one file);
- :mod:`.api`: ``facecast.reconstruct`` / ``track`` / ``transfer`` for Python callers;
- :mod:`.commands`: what each command does (``reconstruct``, ``track``, ``transfer``, ``train``,
  ``label``), one module each;
- :mod:`.batch`: resumable batches over many files (manifest, engines, jobs, report);
- :mod:`.export`: the avatar mesh and its formats (GLB, OBJ/MTL, PLY, PC2, Live Link CSV, coefficients);
- :mod:`.media` (reading photos and videos), :mod:`.overlay` (previews), :mod:`.progress` (progress
  bars), :mod:`.errors` (user errors).

Layers inside, top to bottom: cli > api > batch > commands > export > media, overlay, progress, errors.
"""
