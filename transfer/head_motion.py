"""Head motion on a target rig: the driver's head turn (and move) applied to the head node and to the
nodes that turn with it, in their parents' frames, about the head's pivot; eye nodes turned by the gaze.

Used by :mod:`facecast.transfer.retarget` (step 7 of its module doc), offline and live.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Protocol

import numpy as np
from scipy.spatial.transform import Rotation

from facecast.transfer.rigs import NodePose, Rig


class PoseOptions(Protocol):
    """What of :class:`~facecast.transfer.retarget.RetargetConfig` head motion reads."""

    rotation: bool
    translation: bool
    translation_scale: float
    pose_relative: bool
    eye_gaze: bool
    mirror: bool


def head_pose(quats: np.ndarray, translation: np.ndarray, reference: tuple[np.ndarray, np.ndarray],
              rig: Rig, config: PoseOptions) -> tuple[np.ndarray | None, np.ndarray | None]:
    """Driver quaternions ``(T, 4)`` and cm ``(T, 3)`` -> the head node's ``(T, 4)``, ``(T, 3)`` m.

    reference: the quaternion ``(4,)`` and translation ``(3,)`` of the reference frame.
    """
    if rig.head_node is None:
        return None, None
    return _node_pose(rig.head_pose, quats, translation, reference, config)


def companion_poses(quats: np.ndarray, translation: np.ndarray, reference: tuple[np.ndarray, np.ndarray],
                    rig: Rig, config: PoseOptions, turns: dict | None = None
                    ) -> tuple[tuple[int, np.ndarray, np.ndarray], ...]:
    """``(node, rotation (T, 4), translation (T, 3))`` of each of the rig's ``companions`` (eyes, teeth:
    meshes beside the head node), moved as the head is, about the same pivot; ``turns``: ``{node:
    Rotation (T,)}`` head-relative gaze turns of the eye nodes, about their own origins."""
    out = []
    for node, pose in getattr(rig, "companions", ()):
        if turns and node in turns:
            parent = Rotation.from_quat(pose.parent_rotation)
            pose = replace(pose, rotation=(parent.inv() * turns[node] * parent
                                           * Rotation.from_quat(pose.rotation)).as_quat())
        rotation, moved = _node_pose(pose, quats, translation, reference, config)
        if rotation is not None or moved is not None:
            out.append((node, np.tile(pose.rotation, (len(quats), 1)) if rotation is None else continuous(rotation),
                        np.tile(pose.translation, (len(quats), 1)) if moved is None else moved))
    return tuple(out)


def _node_pose(pose: NodePose, quats: np.ndarray, translation: np.ndarray, reference: tuple[np.ndarray, np.ndarray],
               config: PoseOptions) -> tuple[np.ndarray | None, np.ndarray | None]:
    """One node's rotation ``(T, 4)`` and translation ``(T, 3)`` (or None) under the driver's pose: the
    driver's turn, written in the parent's axes, about ``pose.pivot`` (the node's origin if None)."""
    parent = Rotation.from_quat(pose.parent_rotation)
    rotation = moved = None
    turn = None
    if config.rotation:
        driver = Rotation.from_quat(quats)
        if config.pose_relative:
            driver = driver * Rotation.from_quat(reference[0]).inv()
        turn = parent.inv() * driver * parent
        rotation = (turn * Rotation.from_quat(pose.rotation)).as_quat()
    if turn is not None and pose.pivot is not None:  # about the pivot: the origin swings round it
        moved = pose.pivot + turn.apply(pose.translation - pose.pivot)
    if config.translation:
        shift = config.translation_scale * (translation - reference[1]) / 100.0
        moved = (pose.translation if moved is None else moved) + parent.inv().apply(shift)
    return rotation, moved


def continuous(quats: np.ndarray, previous: np.ndarray | None = None) -> np.ndarray:
    """Flip signs of ``(T, 4)`` quaternions so neighbours (and ``previous`` ``(4,)``) agree."""
    out = quats.copy()
    for k in range(len(out)):
        before = previous if k == 0 else out[k - 1]
        if before is not None and np.dot(out[k], before) < 0:
            out[k] = -out[k]
    return out


def eye_turns(gaze: np.ndarray | None, frames: int, rig: Rig, config: PoseOptions) -> dict:
    """``{eye node: Rotation (T,)}`` from ``gaze (T, 6)`` radians (left yaw / pitch / roll, right ...; the
    head angles' convention), for a rig whose eyes are nodes of their own; empty without either."""
    eyes = getattr(rig, "eyes", (None, None))
    if gaze is None or not config.eye_gaze or eyes == (None, None):
        return {}
    gaze = np.asarray(gaze, dtype=np.float64)
    if gaze.shape != (frames, 6) or not np.isfinite(gaze).all():
        raise ValueError(f"gaze must be finite with shape ({frames}, 6), got {gaze.shape}")
    gaze = gaze.copy()
    if config.mirror:  # left and right swap, yaw turns the other way
        gaze = gaze[:, [3, 4, 5, 0, 1, 2]]
        gaze[:, [0, 3]] *= -1.0
    if rig.facing == "-z":  # the half turn about y: pitch turns the other way
        gaze[:, [1, 4]] *= -1.0
    turns = {}
    for node, (yaw, pitch) in zip(eyes, ((0, 1), (3, 4))):
        if node is not None:
            turns[node] = Rotation.from_euler("YX", gaze[:, [yaw, pitch]])
    return turns
