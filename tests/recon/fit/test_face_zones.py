"""Zones of the neutral ICT head: where they lie, and the glasses test on rows of the nose's bridge."""

from __future__ import annotations

import numpy as np

from facecast.recon.fit.face_zones import FaceZones, wears_glasses


def test_zones_cover_what_they_name_and_are_symmetric(ict_data):
    zones = FaceZones.of(ict_data)
    marks = ict_data.landmarks68
    assert zones.stacked().shape == (ict_data.n_vertices, 7)
    eyes, nostrils, chin, tip = marks[36:48], marks[31:36], marks[8], marks[30]
    assert zones.feature[eyes].all() and zones.feature[nostrils].all() and zones.feature[chin] == 0
    assert zones.spectacles[eyes].all() and zones.spectacles[chin] == 0 and zones.spectacles[marks[57]] == 0
    assert zones.beard[chin] == 1 and zones.beard[eyes].sum() == 0 and zones.beard[tip] == 0
    assert zones.above_jaw[eyes].min() == 1.0 and zones.above_jaw[chin] < 1.0
    # the bridge: between the eyes, on the nose's midline, above its tip
    bridge = np.flatnonzero(zones.bridge > 0.5)
    neutral = ict_data.neutral
    assert len(bridge) > 20 and np.abs(neutral[bridge, 0]).max() < 0.5
    assert neutral[bridge, 1].min() > neutral[tip, 1]
    # mirror images (x -> -x) of zone vertices are in the zone: the head is symmetric
    for zone in (zones.spectacles, zones.feature, zones.bridge):
        chosen = np.flatnonzero(zone > 0.5)[::7]  # a sample
        mirrored = neutral[chosen] * np.array([-1.0, 1.0, 1.0])
        nearest = np.argmin(((neutral[None] - mirrored[:, None]) ** 2).sum(-1), 1)
        assert np.mean(zone[nearest] > 0.5) > 0.9


def test_glasses_need_dark_rows_across_the_bridge():
    height = np.repeat(np.arange(20) * 0.1 + 0.05, 30)  # 20 rows of 30 texels
    bridge, seen = np.ones(600, bool), np.ones(600, bool)
    dark = np.zeros(600, bool)
    assert not wears_glasses(dark, bridge, seen, height)
    dark[(height > 0.8) & (height < 1.3)] = True  # five rows: a frame's bridge
    assert wears_glasses(dark, bridge, seen, height)
    assert not wears_glasses(dark & (height < 1.1), bridge, seen, height)  # three rows: a crease, a shadow
    patchy = dark & (np.arange(600) % 3 == 0)  # a third of each row: hair strands
    assert not wears_glasses(patchy, bridge, seen, height)
    assert not wears_glasses(dark, bridge, seen & (height < 0.5), height)  # under half the bridge seen
