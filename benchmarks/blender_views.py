"""Run inside Blender: render GLB avatars with EEVEE, front and three-quarter, one PNG per view.

Usage: ``blender -b --factory-startup --python benchmarks/blender_views.py -- SIDE IN.glb OUT_PREFIX [IN OUT ...]``
writes ``OUT_PREFIX_front.png`` and ``OUT_PREFIX_threequarter.png`` for every pair (a sun light
from the upper left, a grey world, the camera 0.7 m in front of the head at eye height).
"""

import math
import sys

import bpy

args = sys.argv[sys.argv.index("--") + 1:]
side, pairs = int(args[0]), list(zip(args[1::2], args[2::2]))
for glb, prefix in pairs:
    bpy.ops.wm.read_factory_settings(use_empty=True)
    bpy.ops.import_scene.gltf(filepath=glb)
    scene = bpy.context.scene
    roots = [o for o in scene.objects if o.parent is None]
    meshes = [o for o in scene.objects if o.type == "MESH"]
    top = max(v.co.z for o in meshes for v in o.data.vertices)  # the crown, in Blender's Z-up metres
    camera = bpy.data.objects.new("camera", bpy.data.cameras.new("camera"))
    camera.data.lens = 85.0
    scene.collection.objects.link(camera)
    sun = bpy.data.objects.new("sun", bpy.data.lights.new("sun", "SUN"))
    sun.data.energy = 3.0
    sun.rotation_euler = (math.radians(55), 0.0, math.radians(-25))
    scene.collection.objects.link(sun)
    scene.world = bpy.data.worlds.new("world")
    scene.world.color = (0.35, 0.35, 0.35)
    scene.camera, scene.render.engine = camera, "BLENDER_EEVEE"
    scene.render.resolution_x = scene.render.resolution_y = side
    scene.render.film_transparent = False
    scene.eevee.taa_render_samples = 16  # soft enough at this size, 4x faster than the default 64
    camera.location, camera.rotation_euler = (0.0, -0.7, top - 0.11), (math.radians(90), 0.0, 0.0)
    for name, yaw in (("front", 0.0), ("threequarter", 35.0)):
        for root in roots:
            root.rotation_mode = "XYZ"
            root.rotation_euler = (root.rotation_euler[0], root.rotation_euler[1], math.radians(yaw))
        scene.render.filepath = f"{prefix}_{name}.png"
        bpy.ops.render.render(write_still=True)
    print(f"FACECAST_RENDERED {prefix}")
sys.stdout.flush()
