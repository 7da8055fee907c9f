"""Expression retargeting: driver coefficients -> a target rig's weights and head motion.

- :mod:`.rigs`: the target rigs (``IctRig``, glTF morph targets via :mod:`.gltf_rig`, VRM via
  :mod:`.vrm`); :mod:`.rig_loader` picks the rig of a file (``load_rig``);
- :mod:`.retarget`: calibrated, smoothed mapping from ICT's 53 channels onto a rig (``retarget``);
- :mod:`.filters`: zero-phase and One Euro smoothing; :mod:`.timing`: frame times and resampling;
- :mod:`.glb`: the GLB container (chunks split and joined); :mod:`.json_files`: reading the JSON files users
  hand in (targets, mappings, identities, profiles) with one-line errors.

The package is callable: ``facecast.transfer(driver, target, output, ...)`` runs the whole
transfer job (track the driver video, retarget, write files), i.e. :func:`facecast.pipelines.api.transfer`.
That one upward call is the only place this layer reaches the pipelines layer (it is listed as
the single allowed exception in the import-linter contract).
"""

import sys
import types


class _CallablePackage(types.ModuleType):
    def __call__(self, *args, **kwargs):
        from facecast.pipelines.api import transfer

        return transfer(*args, **kwargs)


sys.modules[__name__].__class__ = _CallablePackage
