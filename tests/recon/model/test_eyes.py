"""Eyes that read as eyes: the iris shows through the sclera, nothing opaque in front of it, gaze moves it."""

from __future__ import annotations

import numpy as np
import pytest

from facecast.pipelines.export.avatar import build_avatar
from facecast.pipelines.export.avatar_view import render_avatar, turned, view_camera
from facecast.recon.fit.skin_colour import srgb_to_linear
from facecast.recon.model.eyes import PUPIL_MATERIAL, eye_layout, iris_colour
from facecast.recon.model.topology import triangulate


def _luminance(rgb: np.ndarray) -> np.ndarray:
    return srgb_to_linear(rgb) @ np.array([0.2126, 0.7152, 0.0722])


def _eye_render(mesh):
    """Unlit frontal render centred on the eyes: image and per-pixel material."""
    names = list(mesh.material_names)
    vertices = turned(mesh.vertices, 0.0, 45.0)
    iris = np.isin(mesh.face_material, [names.index("M_IrisLeft"), names.index("M_IrisRight")])
    centre = vertices[np.unique(mesh.polygons[iris].clip(0))].mean(0)
    focal, side = 1500.0, 384
    principal = (side / 2 - focal * centre[0] / -centre[2], side / 2 + focal * centre[1] / -centre[2])
    return render_avatar(mesh, vertices, view_camera((side, side), focal, principal))


@pytest.fixture(scope="module")
def avatar(model):
    return build_avatar(model, np.zeros(100))


def test_layout_finds_a_cornea_and_a_pupil_per_eye(ict_data):
    layout = eye_layout(ict_data)
    assert layout.centres[0, 0] > 0 > layout.centres[1, 0]  # left eye on +x
    assert np.allclose(layout.centres[0] * [-1, 1, 1], layout.centres[1], atol=1e-3)
    assert (layout.axes[:, 2] > 0.95).all()  # both look forwards
    assert 15 < layout.limbus_deg.min() and layout.limbus_deg.max() < 30
    sclera = ict_data.material_face_mask(["M_ScleraLeft", "M_ScleraRight"])
    iris = ict_data.material_face_mask(["M_IrisLeft", "M_IrisRight"])
    assert layout.cornea.any() and (layout.cornea <= sclera).all() and layout.cornea.sum() < sclera.sum() / 2
    assert layout.pupil.any() and (layout.pupil <= iris).all()


def test_iris_and_pupil_show_in_a_frontal_render(avatar, model):
    image, material = _eye_render(avatar)
    names = list(avatar.material_names)
    iris = np.isin(material, [names.index("M_IrisLeft"), names.index("M_IrisRight")])
    sclera = np.isin(material, [names.index("M_ScleraLeft"), names.index("M_ScleraRight")])
    pupil = material == names.index(PUPIL_MATERIAL)
    assert iris.sum() > 500 and pupil.sum() > 50 and sclera.sum() > 500
    ratio = np.median(_luminance(image[iris])) / np.median(_luminance(image[sclera]))
    assert ratio <= 0.6
    # the closed ICT sclera (as exported before) hides the iris completely
    closed = build_avatar(model, np.zeros(100), open_eyes=False)
    _, material = _eye_render(closed)
    names = list(closed.material_names)
    assert not np.isin(material, [names.index("M_IrisLeft"), names.index("M_IrisRight")]).any()


def _first_hits(mesh, vertices: np.ndarray, origins: np.ndarray, direction: np.ndarray) -> np.ndarray:
    """Material of the first polygon each ray ``origin + t * direction`` (t > 0) meets (-1: none);
    Moller-Trumbore against every triangle of the mesh."""
    triangles = triangulate(mesh.polygons)
    material = np.repeat(mesh.face_material, np.where(mesh.polygons[:, 3] >= 0, 2, 1))
    a, b, c = (vertices[triangles[:, k]] for k in range(3))
    e1, e2 = b - a, c - a
    p = np.cross(direction, e2)
    det = (e1 * p).sum(1)
    usable = np.abs(det) > 1e-12
    first = np.full(len(origins), -1)
    for k, origin in enumerate(origins + 1e-3 * direction):  # start just off the iris surface
        s = origin - a
        u = (s * p).sum(1) / np.where(usable, det, 1)
        q = np.cross(s, e1)
        v = (q @ direction) / np.where(usable, det, 1)
        t = (e2 * q).sum(1) / np.where(usable, det, 1)
        hit = usable & (u >= 0) & (v >= 0) & (u + v <= 1) & (t > 0)
        if hit.any():
            first[k] = material[np.flatnonzero(hit)[np.argmin(t[hit])]]
    return first


@pytest.mark.parametrize("gaze", [None, "eyeLookOutLeft"])
def test_nothing_opaque_sits_in_front_of_the_iris(avatar, ict_data, gaze):
    names = list(avatar.material_names)
    vertices = avatar.vertices.astype(np.float64)
    if gaze is not None:
        vertices = vertices + avatar.morph_deltas[avatar.morph_names.index(gaze)]
    layout = eye_layout(ict_data)
    left_iris = np.unique(avatar.polygons[avatar.face_material == names.index("M_IrisLeft")].clip(0))
    ids = avatar.source_vertex_ids[left_iris]
    offsets = ict_data.neutral[ids] - layout.centres[0]
    angle = np.degrees(np.arccos(offsets @ layout.axes[0] / np.linalg.norm(offsets, axis=1)))
    front = left_iris[angle < 0.8 * layout.limbus_deg[0]]
    assert len(front) > 50
    if gaze is not None:  # the gaze morph turns the iris: it moves sideways by millimetres
        assert np.abs(vertices[front, 0] - avatar.vertices[front, 0]).mean() > 0.3  # cm, outwards (+x)
        assert (vertices[front, 0] > avatar.vertices[front, 0]).all()
    axis = np.array([0.0, 0.0, 1.0])  # the viewer in front of the face
    hits = _first_hits(avatar, vertices, vertices[front], axis)
    blocked = [names[m] for m in hits if m >= 0 and names[m] not in ("M_IrisLeft", PUPIL_MATERIAL)]
    # eyelids may cover the iris's rim in the neutral pose; the eyeball's own layers never may
    assert not [n for n in blocked if n.startswith(("M_Sclera", "M_Eye", "M_Lacrimal"))]
    assert len(blocked) <= 0.25 * len(front)


def test_iris_colour_comes_from_the_iris_points():
    image = np.full((200, 300, 3), 230, np.uint8)
    points = np.zeros((478, 2))
    for centre_id, centre in ((468, (100.0, 100.0)), (473, (200.0, 100.0))):
        ys, xs = np.mgrid[:200, :300]
        image[np.hypot(xs - centre[0], ys - centre[1]) < 10] = (40, 90, 160)  # blue irises
        image[np.hypot(xs - centre[0], ys - centre[1]) < 3] = 5  # pupils
        points[centre_id] = centre
        points[centre_id + 1:centre_id + 5] = np.array(centre) + 10 * np.array([[1, 0], [0, -1], [-1, 0], [0, 1]])
    colour = np.array(iris_colour(image, points)) * 255
    assert np.abs(colour - (40, 90, 160)).max() < 3
    assert iris_colour(image, np.zeros((478, 2))) is None  # irises of no size
