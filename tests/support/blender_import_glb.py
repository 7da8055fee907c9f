"""Run inside Blender: import a GLB and print what Blender made of it as one JSON line.

Usage: ``blender -b --factory-startup --python blender_import_glb.py -- FILE.glb``.
The line starts with ``FACECAST_RESULT `` so the test can find it in Blender's log.
"""

import json
import sys

import bpy

path = sys.argv[sys.argv.index("--") + 1]
bpy.ops.wm.read_factory_settings(use_empty=True)
bpy.ops.import_scene.gltf(filepath=path)
meshes = [obj for obj in bpy.context.scene.objects if obj.type == "MESH"]
result = {"objects": [], "version": bpy.app.version_string}
for obj in meshes:
    keys = obj.data.shape_keys.key_blocks if obj.data.shape_keys else []
    basis = [v.co.copy() for v in obj.data.vertices]
    moved = {}
    for key in keys[1:]:
        moved[key.name] = max(((p.co - b).length for p, b in zip(key.data, basis, strict=True)), default=0.0)
    result["objects"].append({
        "name": obj.name, "vertices": len(obj.data.vertices), "polygons": len(obj.data.polygons),
        "materials": [m.name for m in obj.data.materials if m is not None],
        "shape_keys": [k.name for k in keys], "max_offset": moved,
        "z_extent": max(v.co.z for v in obj.data.vertices) - min(v.co.z for v in obj.data.vertices),
    })
print("FACECAST_RESULT " + json.dumps(result))
sys.stdout.flush()
