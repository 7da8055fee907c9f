"""The parts of a glTF 2.0 document facecast reads, checked before anything is interpreted: top-level arrays of
objects, and every index it follows (nodes to meshes and children, primitives to accessors, accessors to buffer
views, buffer views to buffers, scenes to nodes) an integer inside its array. A file that fails gets one line
naming the member, what it holds and what it should hold, instead of a Python error from deep inside.

Extensions and extras are not looked at here (their readers check what they use)."""

from __future__ import annotations

ARRAYS = ("accessors", "animations", "buffers", "bufferViews", "cameras", "images", "materials", "meshes", "nodes",
          "samplers", "scenes", "skins", "textures")


def check_gltf(document: dict, source: str) -> dict:
    """``document`` when its arrays and indices are well formed; ``ValueError`` starting with ``source`` else."""
    problem = _problem(document)
    if problem:
        raise ValueError(f"{source}: malformed glTF: {problem}")
    return document


def _problem(document: dict) -> str | None:
    for name in ARRAYS:
        value = document.get(name, [])
        if not isinstance(value, list):
            return f"'{name}' must be an array, got {_shown(value)}"
        for k, item in enumerate(value):
            if not isinstance(item, dict):
                return f"{name}[{k}] must be an object, got {_shown(item)}"
    sizes = {name: len(document.get(name, [])) for name in ARRAYS}
    checks = [_index(document, "scene", "scenes", sizes)]
    for k, scene in enumerate(document.get("scenes", [])):
        checks.append(_indices(scene, "nodes", "nodes", sizes, f"scenes[{k}]"))
    for k, node in enumerate(document.get("nodes", [])):
        where = f"nodes[{k}]"
        checks += [_index(node, "mesh", "meshes", sizes, where), _index(node, "skin", "skins", sizes, where),
                   _index(node, "camera", "cameras", sizes, where), _indices(node, "children", "nodes", sizes, where)]
    for k, mesh in enumerate(document.get("meshes", [])):
        checks.append(_primitives(mesh, sizes, f"meshes[{k}]"))
    for k, accessor in enumerate(document.get("accessors", [])):
        checks.append(_index(accessor, "bufferView", "bufferViews", sizes, f"accessors[{k}]"))
    for k, view in enumerate(document.get("bufferViews", [])):
        checks.append(_index(view, "buffer", "buffers", sizes, f"bufferViews[{k}]", required=True))
    return next((c for c in checks if c), None)


def _primitives(mesh: dict, sizes: dict, where: str) -> str | None:
    primitives = mesh.get("primitives")
    if not isinstance(primitives, list) or not primitives:
        return f"{where}.primitives must be a non-empty array, got {_shown(primitives)}"
    for p, primitive in enumerate(primitives):
        at = f"{where}.primitives[{p}]"
        if not isinstance(primitive, dict):
            return f"{at} must be an object, got {_shown(primitive)}"
        attributes = primitive.get("attributes")
        if not isinstance(attributes, dict):
            return f"{at}.attributes must be an object, got {_shown(attributes)}"
        targets = primitive.get("targets", [])
        if not isinstance(targets, list) or not all(isinstance(t, dict) for t in targets):
            return f"{at}.targets must be an array of objects, got {_shown(targets)}"
        checks = [_index(primitive, "indices", "accessors", sizes, at),
                  _index(primitive, "material", "materials", sizes, at),
                  *(_index(attributes, name, "accessors", sizes, f"{at}.attributes") for name in attributes),
                  *(_index(target, name, "accessors", sizes, f"{at}.targets[{t}]")
                    for t, target in enumerate(targets) for name in target)]
        found = next((c for c in checks if c), None)
        if found:
            return found
    return None


def _index(holder: dict, key: str, array: str, sizes: dict, where: str = "", required: bool = False) -> str | None:
    if key not in holder:
        return f"{where}.{key} is missing" if required else None
    name = f"{where}.{key}" if where else f"'{key}'"
    return _bad(holder[key], array, sizes, name)


def _indices(holder: dict, key: str, array: str, sizes: dict, where: str) -> str | None:
    values = holder.get(key, [])
    if not isinstance(values, list):
        return f"{where}.{key} must be an array of indices into {array}, got {_shown(values)}"
    return next((m for k, value in enumerate(values) if (m := _bad(value, array, sizes, f"{where}.{key}[{k}]"))),
                None)


def _bad(value: object, array: str, sizes: dict, name: str) -> str | None:
    if not isinstance(value, bool) and isinstance(value, int) and 0 <= value < sizes[array]:
        return None
    span = f"0 to {sizes[array] - 1}" if sizes[array] else "it has none"
    return f"{name} must be an index into {array} ({span}), got {_shown(value)}"


def _shown(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."
