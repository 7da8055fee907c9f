"""Resumable batches: many photos and videos through one job, locally or on Ray.

- :mod:`.runner`: ``run`` and the ``facecast batch`` command; :mod:`.inputs` expands the inputs;
- :mod:`.manifest`: the SQLite manifest that makes a batch resumable;
- :mod:`.engines`: local processes or Ray; :mod:`.jobs`: the ``Job`` interface; :mod:`.registry`: jobs by name;
- :mod:`.facecast_jobs` (``track``, ``reconstruct``) and :mod:`.probe`: the jobs;
- :mod:`.outputs`: where each input's files go; :mod:`.report`: progress and the summary.
"""
