"""Files the product needs: finding, downloading (sha256-checked) and converting the ICT model, and
the shipped tables and weights (``*.npz``, ``regressor.safetensors``). Imports no other layer.

- :mod:`.registry`: ``resolve_ict_model`` (``--assets``, ``$FACECAST_ASSETS``, the cache, a download);
- :mod:`.download`: verified downloads with a progress bar; :mod:`.convert`: original OBJs -> one npz.
"""
